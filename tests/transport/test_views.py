"""``POST /fhir/$process-message``: the intake rules, through the Flask app.

The agency identity is what the mTLS middleware puts in the environ; here
the test client supplies it, and the clock is injected through app config.
``test_mtls.py`` proves the real handshake and middleware deliver it.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.signing import Signer, TrustAnchor, sign_message, verify_message
from gateway.store import open_store
from gateway.transport.intake import Refused
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake, register_accept_step

SCHOOL = "urn:x-safeguarding:agency:school:999101"
POLICE = "urn:x-safeguarding:agency:police:TST"
GATEWAY = "urn:x-safeguarding:agency:gateway:national"
URL = "/fhir/$process-message"


@pytest.fixture
def clock():
    """The app's clock: tests move ``clock["now"]``."""
    return {"now": dt.datetime.now(dt.timezone.utc)}


@pytest.fixture
def trust_settings(tmp_path, deployment, upgraded_sqlite):
    return Settings(database_url=upgraded_sqlite(tmp_path / "gateway.sqlite3"), certs_dir=deployment.dir,
                    replay_window_seconds=600)


@pytest.fixture
def gateway_app(trust_settings, clock):
    app = create_app(trust_settings)
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: clock["now"]})
    yield app
    close_intake(app)


@pytest.fixture
def post(gateway_app):
    client = gateway_app.test_client()

    def send(body, agency: str | None = SCHOOL):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        environ = {AGENCY_KEY: agency} if agency else {}
        return client.post(URL, data=data, content_type="application/fhir+json", environ_base=environ)

    return send


@pytest.fixture
def trust(deployment):
    return TrustAnchor.from_files(deployment.ca, deployment.crl)


def _stored(settings, message_id):
    store = open_store(settings.database_url)
    try:
        return store.find_accepted(message_id)
    finally:
        store.close()


def _issue(response):
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def test_accepts_signs_stores_and_answers(post, make_message, trust_settings, trust, clock):
    message = make_message(SCHOOL)
    raw = json.dumps(message, indent=1).encode()
    response = post(raw)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"

    answer = response.get_json()
    header = answer["entry"][0]["resource"]
    assert answer["type"] == "message"
    assert {k: header["response"][k] for k in ("identifier", "code")} == {"identifier": "hdr-1", "code": "ok"}
    # Accepted, with the national standard's feedback (what is missing) for the referrer.
    feedback = next(e["resource"] for e in answer["entry"]
                    if e["fullUrl"] == header["response"]["details"]["reference"])
    assert feedback["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "warning" for i in feedback["issue"])
    assert header["destination"] == [{"endpoint": SCHOOL}]
    assert verify_message(answer, trust, now=clock["now"]).signature.agency == GATEWAY

    stored = _stored(trust_settings, message["identifier"]["value"])
    assert stored.raw_message == raw.decode()  # exactly as received
    assert stored.sender_agency == SCHOOL
    assert stored.received_at == clock["now"]
    assert stored.message_timestamp == dt.datetime.fromisoformat(message["timestamp"])
    signed = json.loads(stored.signed_message)
    assert signed["timestamp"] == message["timestamp"]  # not re-dumped
    assert verify_message(signed, trust, now=clock["now"]).signature.agency == GATEWAY


def test_replay_returns_the_same_response(post, make_message, clock):
    message = make_message(SCHOOL)
    first = post(message)
    clock["now"] += dt.timedelta(days=2)  # even outside the window
    again = post(message)
    assert again.status_code == first.status_code == 200
    assert again.get_data() == first.get_data()


def test_replay_inside_the_window_is_the_stored_response_and_recorded_once(post, make_message, clock,
                                                                             trust_settings):
    # Nothing is looked up before the checks: the second insert of the id is what finds the replay.
    message = make_message(SCHOOL)
    first = post(message)
    clock["now"] += dt.timedelta(seconds=5)  # a new answer would carry another time
    again = post(message)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    stored = _stored(trust_settings, message["identifier"]["value"])
    assert stored.received_at == clock["now"] - dt.timedelta(seconds=5)


def test_same_id_other_content_is_a_conflict(post, make_message):
    message = make_message(SCHOOL)
    assert post(message).status_code == 200
    message["entry"][3]["resource"]["valueString"] = "changed"
    response = post(message)
    assert response.status_code == 409
    assert "different content" in _issue(response)["diagnostics"]


def test_same_id_from_another_agency_is_a_conflict(post, make_message):
    school_message = make_message(SCHOOL)
    assert post(school_message).status_code == 200
    police_message = make_message(POLICE, message_id=school_message["identifier"]["value"])
    response = post(police_message, agency=POLICE)
    assert response.status_code == 409
    assert "another sender" in _issue(response)["diagnostics"]


def test_no_certificate_identity_is_401(post, make_message):
    response = post(make_message(SCHOOL), agency=None)
    assert response.status_code == 401
    assert _issue(response)["code"] == "login"


def test_source_endpoint_of_another_agency_is_403(post, make_message, trust_settings):
    message = make_message(POLICE)
    response = post(message, agency=SCHOOL)
    assert response.status_code == 403
    issue = _issue(response)
    assert issue["expression"] == ["MessageHeader.source.endpoint"] and POLICE in issue["diagnostics"]
    assert _stored(trust_settings, message["identifier"]["value"]) is None


def test_sender_organisation_of_another_agency_is_403(post, make_message):
    response = post(make_message(SCHOOL, sender_code="999102"))
    assert response.status_code == 403
    assert _issue(response)["expression"] == ["MessageHeader.sender"]


def test_sender_reference_must_resolve(post, make_message):
    message = make_message(SCHOOL)
    message["entry"][0]["resource"]["sender"] = {"reference": "Organization/missing"}
    assert post(message).status_code == 400


@pytest.mark.parametrize("offset, word", [(dt.timedelta(hours=-2), "before"), (dt.timedelta(hours=2), "after")])
def test_message_sent_outside_the_window_is_refused(post, make_message, clock, offset, word):
    sent = (clock["now"] + offset).isoformat()
    response = post(make_message(SCHOOL, timestamp=sent))
    assert response.status_code == 422
    issue = _issue(response)
    assert issue["expression"] == ["Bundle.timestamp"]
    assert f"s {word} the gateway's time" in issue["diagnostics"]
    assert "600 s" in issue["diagnostics"]


def test_old_events_sent_now_are_accepted(post, make_message):
    # A PPN about a 2018 incident, sent today.
    assert post(make_message(SCHOOL, incident_date="2018-01-02")).status_code == 200


def test_missing_timestamp_is_refused(post, make_message):
    message = make_message(SCHOOL)
    del message["timestamp"]
    response = post(message)
    assert response.status_code == 400
    assert _issue(response)["expression"] == ["Bundle.timestamp"]


def test_sender_signature_is_verified_and_kept(post, make_message, deployment, trust_settings, trust, clock):
    school = Signer.from_files(f"{deployment.school}.crt", f"{deployment.school}.key")
    signed_by_school = sign_message(make_message(SCHOOL), school, now=clock["now"])
    assert post(signed_by_school).status_code == 200

    stored = json.loads(_stored(trust_settings, signed_by_school["identifier"]["value"]).signed_message)
    verified = verify_message(stored, trust, now=clock["now"])
    assert verified.signature.agency == GATEWAY
    assert verified.sender_signature.agency == SCHOOL


def test_bad_sender_signature_is_refused(post, make_message, deployment, clock):
    school = Signer.from_files(f"{deployment.school}.crt", f"{deployment.school}.key")
    signed = sign_message(make_message(SCHOOL), school, now=clock["now"])
    signed["entry"][2]["resource"]["birthDate"] = "2012-03-05"
    response = post(signed)
    assert response.status_code == 422
    issue = _issue(response)
    assert issue["code"] == "security" and "payload-changed" in issue["diagnostics"]


def test_signed_by_another_agency_is_refused(post, make_message, deployment, clock):
    police = Signer.from_files(f"{deployment.police}.crt", f"{deployment.police}.key")
    response = post(sign_message(make_message(SCHOOL), police, now=clock["now"]))
    assert response.status_code == 403
    assert POLICE in _issue(response)["diagnostics"]


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400), (b"\xff\xfe", 400), (b'{"resourceType": "Patient"}', 400),
    (b'{"resourceType": "Bundle", "type": "collection"}', 400),
    (b'{"resourceType": "Bundle", "type": "message", "entry": []}', 400),
])
def test_malformed_bodies_are_400(post, body, status):
    response = post(body)
    assert response.status_code == status
    assert _issue(response)["severity"] == "error"


def test_message_header_id_is_required(post, make_message):
    message = make_message(SCHOOL)
    del message["entry"][0]["resource"]["id"]
    assert _issue(post(message))["expression"] == ["MessageHeader.id"]


def test_accept_steps_run_in_the_same_transaction(gateway_app, post, make_message, trust_settings):
    seen = []

    def route(unit, record, signed_bundle):
        # The message is visible inside the transaction it is being accepted in.
        seen.append((unit.messages.get(record.message_id).message_id, signed_bundle["signature"]["sigFormat"]))

    register_accept_step(gateway_app, route)
    message = make_message(SCHOOL)
    assert post(message).status_code == 200
    assert seen == [(message["identifier"]["value"], "application/jose")]


def test_an_accept_step_can_refuse_and_nothing_is_kept(gateway_app, post, make_message, trust_settings):
    def no_route(unit, record, signed_bundle):
        raise Refused(422, "business-rule", "no local authority covers this child's address")

    register_accept_step(gateway_app, no_route)
    message = make_message(SCHOOL)
    response = post(message)
    assert response.status_code == 422
    assert _issue(response)["code"] == "business-rule"
    assert _stored(trust_settings, message["identifier"]["value"]) is None


def test_connection_check_without_identity(gateway_app):
    assert gateway_app.test_client().get("/connection-check").status_code == 401


def test_gateway_without_certificates_answers_503(tmp_path, make_message):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}", certs_dir=tmp_path / "none"))
    response = app.test_client().post(URL, data=json.dumps(make_message(SCHOOL)), content_type="application/fhir+json",
                                      environ_base={AGENCY_KEY: SCHOOL})
    assert response.status_code == 503
    assert _issue(response)["code"] == "transient"


def test_a_message_missing_a_must_item_is_refused_with_every_reason(post, make_message):
    message = make_message(SCHOOL)
    referral = next(e["resource"] for e in message["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    del referral["category"], referral["note"]
    response = post(json.dumps(message).encode())
    assert response.status_code == 422
    body = response.get_json()
    errors = [i for i in body["issue"] if i["severity"] == "error"]
    assert len(errors) >= 2  # both missing items, at once
    assert all(i.get("expression") for i in errors)


def test_who_an_accepted_message_is_about_is_recorded_with_it(post, make_message, trust_settings):
    from sqlalchemy import select

    from gateway.store.models import MessagePersonRow

    message = make_message(SCHOOL)
    assert post(message).status_code == 200
    store = open_store(trust_settings.database_url)
    try:
        with store.transaction() as unit:
            rows = unit.session.execute(select(MessagePersonRow).where(
                MessagePersonRow.message_id == message["identifier"]["value"])).scalars().all()
            found = [(r.role, r.nhs_number, r.family, r.postcode_district) for r in rows]
    finally:
        store.close()
    assert found == [("child", "9990000018", "testchild", "SP10")]

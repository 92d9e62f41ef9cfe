"""The whole access-control matrix, walked with real certificates over mutual TLS against a real ``gateway serve``.

Every cell of the message table (agency kind x message kind x destination
relation) is sent by an agency of that kind with its own certificate and must
be accepted (200, a signed ``ok`` response) or refused (403, an
OperationOutcome ``forbidden``) as ``MESSAGE_RULES`` says. The endpoint and
page tables of ``docs/access-control.md`` are read and each kind's 403s
checked against the same server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pytest

from gateway.model import systems as S
from gateway.routing import Agency, Directory
from gateway.routing.messages import build_acknowledgement, build_outcome_message
from gateway.signing import pki
from gateway.store import schema
from gateway.store.engine import make_engine
from gateway.transport.access import DOCS, MESSAGE_RULES, RESPONSE, RULES_BY_KIND
from gateway.transport.client import AgencyClient
from tests.transport.conftest import start_server, stop_server

SCHOOL = "urn:x-safeguarding:agency:school:999101"
OTHER_SCHOOL = "urn:x-safeguarding:agency:school:999102"
POLICE = "urn:x-safeguarding:agency:police:TST"
LA = "urn:x-safeguarding:agency:la:850"
OTHER_LA = "urn:x-safeguarding:agency:la:851"
GATEWAY = "urn:x-safeguarding:agency:gateway:national"
#: One agency of each kind sends; another of a different kind is "another agency".
SENDER = {"school": SCHOOL, "police": POLICE, "la": LA, "gateway": GATEWAY}
ANOTHER = {"school": POLICE, "police": SCHOOL, "la": POLICE, "gateway": SCHOOL}
KINDS = tuple(SENDER)


@dataclasses.dataclass
class Walk:
    base_url: str
    clients: dict[str, AgencyClient]

    def post(self, agency: str, bundle: dict, path: str = "/fhir/$process-message", content_type: str =
             "application/fhir+json"):
        reply = self.clients[agency].request("POST", self.base_url + path, json.dumps(bundle).encode(),
                                             {"Content-Type": content_type})
        return reply.status, json.loads(reply.body)

    def get(self, agency: str, path: str, method: str = "GET"):
        return self.clients[agency].request(method, self.base_url + path, b"" if method == "POST" else None,
                                            {"Content-Type": "application/x-www-form-urlencoded"}
                                            if method == "POST" else None)


@pytest.fixture(scope="module")
def walk(deployment, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("access")
    url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        directory = Directory(engine)
        for uri, name in ((SCHOOL, "Fictional Primary School"), (OTHER_SCHOOL, "Fictional Junior School"),
                          (POLICE, "Fictional Constabulary"), (LA, "Fictional Borough"), (OTHER_LA, "Fictional County"),
                          (GATEWAY, "Safeguarding gateway")):
            kind, code = S.parse_agency_uri(uri)
            directory.add_agency(Agency(kind=kind, code=code, name=name, delivery="mailbox"))
        directory.add_district("SP10", "850")  # the fictional child's home (make_message: SP10 1AA)
    finally:
        engine.dispose()
    prefixes = {SCHOOL: deployment.school, POLICE: deployment.police,
                GATEWAY: deployment.dir / "gateway"}
    for uri in (OTHER_SCHOOL, LA, OTHER_LA):
        kind, code = S.parse_agency_uri(uri)
        prefixes[uri] = deployment.issue(workdir / f"{kind}-{code}", kind=kind, code=code, name=f"Fictional {kind}")
    process, server = start_server(deployment, workdir)
    clients = {uri: AgencyClient(ca_file=deployment.ca, cert_file=Path(f"{prefix}.crt"),
                                 key_file=Path(f"{prefix}.key"), crl_file=deployment.crl)
               for uri, prefix in prefixes.items()}
    try:
        yield Walk(server.base_url, clients)
    finally:
        for client in clients.values():
            client.close()
        stop_server(process)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture
def message(make_message):
    """``message(sender, event, destination=None)``: a fresh small message of that kind (unique ids)."""

    def build(sender: str, event: str, destination: str | None = None) -> dict:
        bundle = make_message(sender)
        header = bundle["entry"][0]["resource"]
        header["id"] = str(uuid.uuid4())  # MessageHeader.id is what a response answers: unique here
        header["eventCoding"] = {"system": S.MESSAGE_EVENT, "code": event}
        if destination is not None:
            header["destination"] = [{"endpoint": destination}]
        return bundle

    return build


def _accepted(status: int, body: dict) -> bool:
    if status == 200:
        assert body["entry"][0]["resource"]["response"]["code"] == "ok", body
        return True
    assert status == 403, (status, body)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "forbidden", body
    return False


@pytest.fixture
def referral_to_la(walk, message):
    """A school referral, routed (by the child's home postcode) to LA 850: the referral as sent."""
    bundle = message(SCHOOL, S.EVENT_REFERRAL)
    assert _accepted(*walk.post(SCHOOL, bundle))
    return bundle


def _may(kind: str, event: str) -> bool:
    return kind in RULES_BY_KIND[event].senders


# Referrals and concerns: routing decides, so the only relation is "as itself" ------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("event", [S.EVENT_REFERRAL, S.EVENT_CONCERN])
def test_referrals_and_concerns(walk, message, kind, event):
    sender = SENDER[kind]
    assert _accepted(*walk.post(sender, message(sender, event))) is _may(kind, event)


# Referral outcomes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_an_outcome_to_the_referrer_about_a_referral_delivered_to_it(walk, referral_to_la, kind):
    sender = SENDER[kind]
    outcome = build_outcome_message(referral_to_la, "no-further-action", "Fictional reason.", sender, _now())
    assert _accepted(*walk.post(sender, outcome)) is _may(kind, S.EVENT_OUTCOME)


def test_an_las_outcome_to_another_agency_than_the_referrer_is_refused(walk, referral_to_la):
    outcome = build_outcome_message(referral_to_la, "declined", "Fictional reason.", LA, _now())
    outcome["entry"][0]["resource"]["destination"] = [{"endpoint": POLICE}]
    status, body = walk.post(LA, outcome)
    assert not _accepted(status, body)
    assert body["issue"][0]["expression"] == ["MessageHeader.destination"]


def test_an_las_outcome_about_a_referral_delivered_to_another_la_is_refused(walk, referral_to_la):
    outcome = build_outcome_message(referral_to_la, "declined", "Fictional reason.", OTHER_LA, _now())
    status, body = walk.post(OTHER_LA, outcome)
    assert not _accepted(status, body)
    assert body["issue"][0]["expression"] == ["Task.input"] and "not delivered to" in body["issue"][0]["diagnostics"]


def test_an_las_outcome_about_a_message_never_received_is_refused(walk, message):
    never = message(SCHOOL, S.EVENT_REFERRAL)  # built, never sent
    outcome = build_outcome_message(never, "declined", "Fictional reason.", LA, _now())
    assert not _accepted(*walk.post(LA, outcome))


def test_an_las_outcome_about_a_concern_it_never_received_is_refused(walk, message):
    concern = message(SCHOOL, S.EVENT_CONCERN)
    assert _accepted(*walk.post(SCHOOL, concern))  # kept, sent to nobody
    outcome = build_outcome_message(concern, "declined", "Fictional reason.", LA, _now())
    assert not _accepted(*walk.post(LA, outcome))


# What only the gateway builds: Operation Encompass notifications, alerts, overdue reminders ------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("relation", ["itself", "another agency", "another agency of its kind"])
@pytest.mark.parametrize("event", [S.EVENT_ENCOMPASS, S.EVENT_ALERT, S.EVENT_OVERDUE])
def test_gateway_built_messages(walk, message, kind, relation, event):
    sender = SENDER[kind]
    destination = {"itself": sender, "another agency": ANOTHER[kind],
                   "another agency of its kind": {"school": OTHER_SCHOOL, "la": OTHER_LA}.get(kind, ANOTHER[kind])
                   }[relation]
    assert _accepted(*walk.post(sender, message(sender, event, destination))) is _may(kind, event)


# Responses: to the sender of a message delivered to the responder -----------------------------------------

@pytest.fixture
def delivered_to(walk, message):
    """``delivered_to(agency)``: a message the gateway sent to ``agency`` (delivered to its mailbox)."""

    def send(agency: str) -> dict:
        bundle = message(GATEWAY, S.EVENT_ENCOMPASS, agency)
        assert _accepted(*walk.post(GATEWAY, bundle))
        return bundle

    return send


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("relation", ["to its sender", "to another agency", "about a message not delivered to it"])
def test_responses(walk, delivered_to, kind, relation):
    sender = SENDER[kind]
    original = delivered_to(ANOTHER[kind] if relation == "about a message not delivered to it" else sender)
    response = build_acknowledgement(original, "ok", None, sender, _now())
    if relation == "to another agency":
        response["entry"][0]["resource"]["destination"] = [{"endpoint": OTHER_LA}]
    expected = relation == "to its sender" and kind in RULES_BY_KIND[RESPONSE].senders
    assert _accepted(*walk.post(sender, response)) is expected


def test_an_la_may_answer_a_referral_delivered_to_it(walk, referral_to_la):
    response = build_acknowledgement(referral_to_la, "ok", None, LA, _now())
    assert _accepted(*walk.post(LA, response))
    assert not _accepted(*walk.post(OTHER_LA, build_acknowledgement(referral_to_la, "ok", None, OTHER_LA, _now())))


# As itself, and only itself ----------------------------------------------------------------------------------

def test_a_sender_organisation_naming_two_agencies_is_refused(walk, message):
    bundle = message(SCHOOL, S.EVENT_REFERRAL)
    organisation = bundle["entry"][1]["resource"]
    organisation["identifier"].append({"system": S.POLICE_FORCE, "value": "TST"})
    status, body = walk.post(SCHOOL, bundle)
    assert not _accepted(status, body)
    assert body["issue"][0]["expression"] == ["MessageHeader.sender"]
    # An identifier in a system that names no agency does not count.
    organisation["identifier"][1] = {"system": "https://example.org/Id/phone-book", "value": "42"}
    assert _accepted(*walk.post(SCHOOL, bundle))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_may_only_send_as_itself(walk, message, kind):
    sender = SENDER[kind]
    assert not _accepted(*walk.post(sender, message(ANOTHER[kind], S.EVENT_REFERRAL)))


def test_every_message_kind_of_the_table_is_walked():
    walked = {S.EVENT_REFERRAL, S.EVENT_CONCERN, S.EVENT_OUTCOME, S.EVENT_ENCOMPASS, S.EVENT_ALERT, S.EVENT_OVERDUE,
              RESPONSE}
    assert {rule.kind for rule in MESSAGE_RULES} == walked
    assert {k for rule in MESSAGE_RULES for k in rule.senders} <= set(KINDS)


# Endpoints and pages: the docs' tables, checked against the server ---------------------------------------------

_ROW = re.compile(r"^\| `(GET|POST) (/[^`]*)` \| (.+) \|$")


def _documented_access() -> list[tuple[str, str, dict[str, bool]]]:
    """(method, path, kind -> refused with 403) for each row of the endpoint and page tables."""
    rows = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            cells = [c.strip() for c in match.group(3).split(" | ")][:len(KINDS)]
            rows.append((match.group(1), match.group(2), dict(zip(KINDS, (cell == "403" for cell in cells)))))
    return rows


def _concrete(path: str) -> str:
    """A URL for a documented path: ids that exist nowhere (a page of another's data answers 403 or 404)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_docs_list_every_endpoint_and_page(app):
    from gateway.api.metadata import openapi_document

    documented = {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path, _ in _documented_access()}
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            assert (method.upper(), re.sub(r"\{[^}]+\}", "{}", path)) in documented, f"{method} {path}"
    pages = [rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("console.") and rule.endpoint != "console.static"]
    assert pages
    for rule in pages:
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, f"console page {method} {rule.rule} is not in docs/access-control.md"


def test_each_kind_is_refused_exactly_where_the_docs_say(walk):
    checked = 0
    for method, path, refused in _documented_access():
        if path.endswith("...") or path == "/fhir/$process-message":  # static files; the message table above
            continue
        url = _concrete(path)
        for kind, agency in SENDER.items():
            reply = walk.get(agency, url, method)
            assert (reply.status == 403) is refused[kind], (method, url, kind, reply.status, reply.body[:300])
            checked += 1
    assert checked > 80


def test_own_data_and_another_agencys_over_mtls(walk, delivered_to):
    notification = delivered_to(SCHOOL)
    mid = notification["identifier"]["value"]
    listing = json.loads(walk.get(SCHOOL, "/mailbox").body)
    (delivery_id,) = [e["fullUrl"].rsplit("/", 1)[1] for e in listing["entry"]
                      if e["resource"]["identifier"]["value"] == mid]
    assert walk.get(SCHOOL, f"/mailbox/{delivery_id}").status == 200
    assert walk.get(GATEWAY, f"/messages/{mid}/status").status == 200  # its sender
    for other in (OTHER_SCHOOL, POLICE, LA, GATEWAY):
        assert mid not in walk.get(other, "/mailbox").body.decode()
        assert walk.get(other, f"/mailbox/{delivery_id}").status == 404
        assert walk.get(other, f"/mailbox/{delivery_id}/$ack", "POST").status == 404
    for other in (SCHOOL, OTHER_SCHOOL, POLICE, LA):
        assert walk.get(other, f"/messages/{mid}/status").status == 404
    assert walk.get(SCHOOL, f"/mailbox/{delivery_id}/$ack", "POST").status == 200

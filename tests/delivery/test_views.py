"""Mailbox and status endpoints through the Flask app, with messages accepted by the real intake.

The agency identity is what the mTLS middleware puts in the environ (here
the test client supplies it; tests/transport/test_mtls.py proves the real
handshake does). Routing here is the real one: the messages are addressed
(``MessageHeader.destination``), which routing delivers to that agency.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.delivery.models import DEAD_LETTERED, DeliveryRow
from gateway.delivery.services import SqlOutbox
from gateway.delivery.views import EXT_DELIVERY_DUE, close_store
from gateway.model.systems import EVENT_ENCOMPASS, MESSAGE_EVENT
from gateway.routing import Agency, Directory
from gateway.signing import TrustAnchor, verify_message
from gateway.store import open_store
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake

from tests.shared_delivery import GATEWAY, LA, LA2, POLICE, SCHOOL


@pytest.fixture
def clock():
    return {"now": dt.datetime.now(dt.timezone.utc).replace(microsecond=0)}


@pytest.fixture
def gateway_app(sqlite_url, deployment, clock):
    settings = Settings(database_url=sqlite_url, certs_dir=deployment.dir)
    store = open_store(sqlite_url)
    directory = Directory(store.engine)
    directory.add_agency(Agency(kind="la", code="999", name="Fictional Borough", delivery="mailbox"))
    directory.add_agency(Agency(kind="school", code="999101", name="Fictional Primary School", delivery="mailbox"))
    app = create_app(settings)
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: clock["now"]})
    app.extensions["test.store"] = store
    yield app
    close_intake(app)
    close_store(app)
    store.close()


@pytest.fixture
def call(gateway_app):
    client = gateway_app.test_client()

    def request(method: str, url: str, agency: str | None, body: dict | None = None):
        environ = {AGENCY_KEY: agency} if agency else {}
        data = json.dumps(body).encode() if body is not None else None
        return client.open(url, method=method, data=data, content_type="application/fhir+json",
                           environ_base=environ)

    return request


@pytest.fixture
def send(call, make_message, clock):
    """Send, as the gateway (the only sender of these: docs/access-control.md), an Operation Encompass
    notification addressed to ``destination``; return its message id."""

    def post(destination: str = LA) -> str:
        bundle = make_message(GATEWAY, timestamp=clock["now"].isoformat())
        header = bundle["entry"][0]["resource"]
        header["eventCoding"] = {"system": MESSAGE_EVENT, "code": EVENT_ENCOMPASS}
        header["destination"] = [{"endpoint": destination}]
        response = call("POST", "/fhir/$process-message", GATEWAY, bundle)
        assert response.status_code == 200, response.get_json()
        return bundle["identifier"]["value"]

    return post


def test_accepted_message_waits_in_the_mailbox_until_acknowledged(call, send, deployment, clock):
    mid = send()
    listing = call("GET", "/mailbox", LA)
    assert listing.status_code == 200 and listing.mimetype == "application/fhir+json"
    body = listing.get_json()
    assert body["type"] == "searchset" and body["total"] == 1
    (entry,) = body["entry"]
    assert entry["resource"]["identifier"]["value"] == mid and entry["search"] == {"mode": "match"}
    delivery_id = entry["fullUrl"].rsplit("/", 1)[1]

    item = call("GET", f"/mailbox/{delivery_id}", LA)
    assert item.status_code == 200
    verified = verify_message(item.get_json(), TrustAnchor.from_files(deployment.ca, deployment.crl),
                              now=clock["now"])
    assert verified.signature.agency == GATEWAY  # as the gateway signed it on acceptance

    clock["now"] += dt.timedelta(minutes=3)
    first = call("POST", f"/mailbox/{delivery_id}/$ack", LA)
    again = call("POST", f"/mailbox/{delivery_id}/$ack", LA)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()  # idempotent: the same answer, the first ack's time
    assert call("GET", "/mailbox", LA).get_json()["total"] == 0
    assert call("GET", f"/mailbox/{delivery_id}", LA).status_code == 200  # still readable after the ack

    status = call("GET", f"/messages/{mid}/status", GATEWAY)
    assert status.status_code == 200
    (delivery,) = status.get_json()["deliveries"]
    assert delivery["destination"] == LA and delivery["state"] == "acknowledged" and delivery["mode"] == "mailbox"
    assert delivery["acknowledgedAt"] > delivery["createdAt"]


def test_agencies_see_only_their_own_mailbox_and_messages(call, send):
    mid = send()
    (entry,) = call("GET", "/mailbox", LA).get_json()["entry"]
    delivery_id = entry["fullUrl"].rsplit("/", 1)[1]
    assert call("GET", "/mailbox", POLICE).get_json()["total"] == 0
    for method, url in (("GET", f"/mailbox/{delivery_id}"), ("POST", f"/mailbox/{delivery_id}/$ack")):
        response = call(method, url, POLICE)
        assert response.status_code == 404 and response.get_json()["resourceType"] == "OperationOutcome"
    # Only the sender may see where its message got to; others get the same 404 as a message that does not exist.
    assert call("GET", f"/messages/{mid}/status", LA).status_code == 404
    assert call("GET", "/messages/urn:uuid:nope/status", SCHOOL).status_code == 404
    assert call("GET", "/mailbox", LA).get_json()["total"] == 1  # nothing was acknowledged by another agency


def test_without_a_certificate_identity_every_endpoint_refuses(call):
    for method, url in (("GET", "/mailbox"), ("GET", "/mailbox/x"), ("POST", "/mailbox/x/$ack"),
                        ("GET", "/messages/x/status")):
        response = call(method, url, None)
        assert response.status_code == 401
        assert response.get_json()["issue"][0]["code"] == "login"
    assert call("GET", "/mailbox", "not-an-agency").status_code == 403


def test_mailbox_page_size_is_checked(call, send):
    for _ in range(3):
        send()
    page = call("GET", "/mailbox?_count=2", LA).get_json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    bad = call("GET", "/mailbox?_count=0", LA)
    assert bad.status_code == 400 and bad.get_json()["issue"][0]["expression"] == ["_count"]


def test_status_shows_unroutable_parts_and_due_times(call, send, gateway_app, make_message, clock):
    mid = send("urn:x-safeguarding:agency:la:997")  # not in the directory
    (held,) = call("GET", f"/messages/{mid}/status", GATEWAY).get_json()["unroutable"]
    assert "la:997" in held["reason"] and held["resolved"] is False

    mid = send()
    store = gateway_app.extensions["test.store"]
    with store.transaction() as unit:
        row = unit.session.query(DeliveryRow).filter_by(message_id=mid).one()
        row.due_at = clock["now"] + dt.timedelta(hours=1)
    (entry,) = [e for e in call("GET", "/mailbox", LA).get_json()["entry"]
                if e["resource"]["identifier"]["value"] == mid]
    assert entry["extension"][0]["url"] == EXT_DELIVERY_DUE
    clock["now"] += dt.timedelta(hours=2)
    (delivery,) = call("GET", f"/messages/{mid}/status", GATEWAY).get_json()["deliveries"]
    assert delivery["overdue"] is True and delivery["state"] == "pending"


def test_a_dead_lettered_mailbox_message_is_gone(call, send, gateway_app, clock):
    send()
    (entry,) = call("GET", "/mailbox", LA).get_json()["entry"]
    delivery_id = entry["fullUrl"].rsplit("/", 1)[1]
    with gateway_app.extensions["test.store"].transaction() as unit:
        unit.session.get(DeliveryRow, delivery_id).state = DEAD_LETTERED
    assert call("GET", f"/mailbox/{delivery_id}", LA).status_code == 410
    late = call("POST", f"/mailbox/{delivery_id}/$ack", LA)
    assert late.status_code == 409 and "contact the sender" in late.get_json()["issue"][0]["diagnostics"]


def test_routing_a_message_to_two_agencies(call, make_message, clock, gateway_app):
    Directory(gateway_app.extensions["test.store"].engine).add_agency(
        Agency(kind="la", code="998", name="Fictional County", delivery="push", endpoint="https://127.0.0.1:1/"))
    bundle = make_message(GATEWAY, timestamp=clock["now"].isoformat())
    header = bundle["entry"][0]["resource"]
    header["eventCoding"] = {"system": MESSAGE_EVENT, "code": EVENT_ENCOMPASS}
    header["destination"] = [{"endpoint": LA}, {"endpoint": LA2}]
    assert call("POST", "/fhir/$process-message", GATEWAY, bundle).status_code == 200
    with gateway_app.extensions["test.store"].transaction() as unit:
        deliveries = SqlOutbox(unit.session).deliveries_of(bundle["identifier"]["value"])
    assert {(d.destination, d.mode) for d in deliveries} == {(LA, "mailbox"), (LA2, "push")}

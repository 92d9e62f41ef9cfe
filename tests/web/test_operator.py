"""Operators' page: delivery health, unroutable messages, dead letters redelivered with one action."""

from __future__ import annotations

import datetime as dt
import re

from gateway.delivery.models import DEAD_LETTERED, PENDING, DeliveryRow
from gateway.delivery.worker import OutboxWorker
from gateway.signing import pki
from gateway.signing.signatures import Signer
from gateway.transport.client import AgencyClient
from tests.shared_console import GATEWAY, HAMPSHIRE, SCHOOL, text_of


def _expire_everything(console, demo_pki) -> None:
    """The real worker's expiry round, a year on: every open delivery is dead-lettered."""
    certs = demo_pki.certs
    later = console.clock["now"] + dt.timedelta(days=365)
    client = AgencyClient(ca_file=certs / pki.CA_CERT, cert_file=certs / pki.GATEWAY_CERT,
                          key_file=certs / pki.GATEWAY_KEY, crl_file=certs / pki.CRL)
    signer = Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY)
    with OutboxWorker(console.store, client, signer=lambda: signer, clock=lambda: later, concurrency=1) as worker:
        assert worker.expire() > 0


def test_operators_see_delivery_health_and_redeliver_a_dead_letter(console, demo_pki):
    console.family_a()
    page = text_of(console.get("/operator", GATEWAY))
    assert "Deliveries by state" in page and "Dead letters None." in page
    _expire_everything(console, demo_pki)
    page = console.get("/operator", GATEWAY)
    html = page.get_data(as_text=True)
    assert "not acknowledged within the maximum age" in text_of(page)
    actions = re.findall(r'action="(/operator/deliveries/([^"/]+)/redeliver)"', html)
    assert actions
    path, delivery_id = actions[0]
    assert console.post(path, GATEWAY, {}, token=False).status_code == 400
    assert console.post(path, HAMPSHIRE, {}).status_code == 403
    done = console.post(path, GATEWAY, {})
    assert done.status_code == 303
    (row,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.id == delivery_id)
    assert row.state == PENDING and row.next_attempt_at == console.clock["now"]
    assert f"Delivery {delivery_id} will be tried again now." in text_of(console.get(done.headers["Location"],
                                                                                     GATEWAY))
    again = console.post(path, GATEWAY, {})
    assert again.status_code == 409 and "only a dead-lettered delivery can be retried" in text_of(again)
    dead = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.state == DEAD_LETTERED)
    assert len(dead) >= 1


def test_operator_pages_are_for_the_gateway_certificate_only(console):
    for agency in (HAMPSHIRE, SCHOOL):
        assert console.get("/operator", agency).status_code == 403
    assert console.get("/operator", GATEWAY).status_code == 200
    assert console.post("/operator/deliveries/nope/redeliver", GATEWAY, {}).status_code == 404


def test_operators_see_unroutable_messages(console):
    from gateway.delivery.services import SqlOutbox

    console.family_a()
    (referral,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    assert "Unroutable messages None." in text_of(console.get("/operator", GATEWAY))
    # Held as routing holds a message it has no rule for (the outbox's own call).
    with console.store.transaction() as unit:
        SqlOutbox(unit.session).add_unroutable(message_id=referral.message_id, sender_agency=SCHOOL,
                                               reason="no routing rule for event '<x>'", now=console.clock["now"],
                                               rule="no-routing-rule")
    page = console.get("/operator", GATEWAY)
    section = text_of(page).split("Unroutable messages", 1)[1].split("Dead letters", 1)[0]
    assert "no routing rule for event '<x>'" in section and referral.message_id in section
    assert SCHOOL in section and "gateway operator" in section
    assert "&lt;x&gt;" in page.get_data(as_text=True)

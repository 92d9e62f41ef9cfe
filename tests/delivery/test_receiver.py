"""The receiving endpoint's rules, through its WSGI app (the fault tests run it as a real mTLS server)."""

from __future__ import annotations

import json

import pytest

from gateway.delivery.receiver import ReceiptLog, create_receiver_app, main
from gateway.delivery.responses import read_acknowledgement
from gateway.signing import TrustAnchor, countersign_message, sign_message
from gateway.transport.middleware import AGENCY_KEY

from tests.shared_delivery import GATEWAY, LA, SCHOOL, T0


@pytest.fixture
def receipts(tmp_path) -> ReceiptLog:
    return ReceiptLog(tmp_path / "receipts.sqlite3")


@pytest.fixture
def post(deployment, receipts):
    trust = TrustAnchor.from_files(deployment.ca, deployment.crl)
    client = create_receiver_app(agency=LA, trust=lambda: trust, receipts=receipts, clock=lambda: T0).test_client()

    def send(body, caller: str | None = GATEWAY):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return client.post("/", data=data, content_type="application/fhir+json",
                           environ_base={AGENCY_KEY: caller} if caller else {})

    return send


@pytest.fixture
def signed(make_message, school_signer, gateway_signer):
    bundle = make_message(SCHOOL, timestamp=T0.isoformat())
    return countersign_message(sign_message(bundle, school_signer, now=T0), gateway_signer, now=T0)


def test_applies_a_message_id_once_and_acknowledges_every_time(post, signed, receipts):
    first, second = post(signed), post(signed)
    assert first.status_code == second.status_code == 200
    for response in (first, second):
        ack = read_acknowledgement(response.data, "hdr-1")
        assert ack is not None and ack.code == "ok"
    assert "already received" in read_acknowledgement(second.data, "hdr-1").text
    (applied,) = receipts.applied()
    assert (applied.message_id, applied.sender, applied.receipts) == (signed["identifier"]["value"], SCHOOL, 2)
    assert receipts.raw_counts() == {signed["identifier"]["value"]: 2}


def test_an_untrusted_message_is_refused_for_good(post, signed, receipts):
    signed["entry"][2]["resource"]["birthDate"] = "2011-01-01"  # changed after signing
    response = post(signed)
    assert response.status_code == 422
    ack = read_acknowledgement(response.data, "hdr-1")
    assert ack.code == "fatal-error" and "signature" in ack.text
    assert receipts.applied() == []


def test_only_the_gateway_may_deliver(post, signed):
    assert post(signed, caller=None).status_code == 401
    assert post(signed, caller=SCHOOL).status_code == 403


def test_bodies_that_are_not_messages_get_no_acknowledgement(post, receipts):
    response = post(b"not json")
    assert response.status_code == 400 and read_acknowledgement(response.data, "hdr-1") is None
    assert post({"resourceType": "Bundle", "type": "message"}).status_code == 400
    assert receipts.applied() == []


def test_command_line_reports_missing_certificates(tmp_path, capsys):
    assert main(["--certs", str(tmp_path), "--identity", str(tmp_path / "la"), "--receipts",
                 str(tmp_path / "r.sqlite3")]) == 2
    assert "missing" in capsys.readouterr().err

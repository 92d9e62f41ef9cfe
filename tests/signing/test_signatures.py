"""Signing and verifying message Bundles with the deployment PKI."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from gateway.model.systems import EXT_SENDER_SIGNATURE
from gateway.signing import (
    Signer,
    TrustAnchor,
    UntrustedMessage,
    canonical_json,
    countersign_message,
    sign_message,
    signed_payload,
    verify_message,
)
from gateway.signing import pki

SCHOOL = "urn:x-safeguarding:agency:school:999101"
POLICE = "urn:x-safeguarding:agency:police:TST"
UTC = dt.timezone.utc
SIGNATURE_VECTORS = Path(__file__).parent / "vectors" / "signatures"
VECTORS = sorted(SIGNATURE_VECTORS.glob("*.json"))


@pytest.fixture
def gateway_signer(deployment):
    return Signer.from_files(deployment.dir / pki.GATEWAY_CERT, deployment.dir / pki.GATEWAY_KEY)


def _reason(bundle, trust, now):
    with pytest.raises(UntrustedMessage) as caught:
        verify_message(bundle, trust, now=now)
    return caught.value.reason, str(caught.value)


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path):
    # Signed Bundles kept as data (tests/signing/vectors/signatures/README.md):
    # each must get the same verdict from today's verifier, byte for byte as stored.
    vector = json.loads(path.read_text(encoding="utf-8"))
    trust = TrustAnchor.from_files(SIGNATURE_VECTORS / "ca.crt", SIGNATURE_VECTORS / "crl.pem")
    checked_at = dt.datetime.fromisoformat(vector["checked_at"])
    expect = vector["expect"]
    if "reason" in expect:
        with pytest.raises(UntrustedMessage) as caught:
            verify_message(vector["message"], trust, now=checked_at)
        assert {"reason": caught.value.reason, "role": caught.value.role} == expect
    else:
        verified = verify_message(vector["message"], trust, now=checked_at)
        sender = verified.sender_signature.agency if verified.sender_signature else None
        assert {"signature": verified.signature.agency, "sender_signature": sender} == expect
        # Judged at signing time: still valid long after every certificate expired.
        later = checked_at + dt.timedelta(days=20 * 365)
        assert verify_message(vector["message"], trust, now=later).signature == verified.signature


def test_signature_vectors_found():
    expected = [p for p in VECTORS if "reason" not in json.loads(p.read_text(encoding="utf-8"))["expect"]]
    assert len(VECTORS) >= 8 and len(expected) >= 4


def test_sender_signature_verifies(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    verified = verify_message(signed, trust, now=now)
    assert verified.signature.agency == SCHOOL
    assert abs(verified.signature.when - now) < dt.timedelta(milliseconds=1)
    assert verified.sender_signature is None
    signature = signed["signature"]
    assert signature["sigFormat"] == "application/jose"
    assert signature["type"][0]["code"] == "1.2.840.10065.1.12.1.1"
    assert signature["who"]["identifier"]["value"] == "999101"
    header = json.loads(base64.urlsafe_b64decode(base64.b64decode(signature["data"]).split(b".")[0] + b"=="))
    assert header["alg"] == "ES256" and header["x5c"] and header["sigT"] == signature["when"]


def test_signs_the_json_as_received_not_a_redump(make_message, school, now):
    message = make_message(SCHOOL, timestamp="2025-03-01T10:00:00+00:00")
    signed = sign_message(message, school, now=now)
    assert signed["timestamp"] == "2025-03-01T10:00:00+00:00"
    assert signed_payload(signed) == canonical_json(message)
    assert "signature" not in message  # the input is not modified


def test_one_byte_changed_fails(make_message, school, trust, now):
    text = json.dumps(sign_message(make_message(SCHOOL), school, now=now))
    assert text.count("Testchild") == 1
    tampered = json.loads(text.replace("Testchild", "Testchile"))
    reason, message = _reason(tampered, trust, now)
    assert reason == "payload-changed"
    assert "changed after signing" in message


def test_resigned_with_key_the_ca_did_not_certify_fails(make_message, tmp_path, trust, now):
    # Someone with their own CA makes a certificate naming the same school.
    rogue_ca = pki.create_deployment(tmp_path / "rogue", now=now)
    cert, key = rogue_ca.issue(kind="school", code="999101", name="Fictional Primary School", now=now)
    rogue = Signer.from_objects([cert], key)
    reason, message = _reason(sign_message(make_message(SCHOOL), rogue, now=now), trust, now)
    assert reason == "untrusted-chain"
    assert "does not chain to this CA" in message


def test_real_certificate_with_another_key_fails(make_message, school, tmp_path, trust, now):
    # The x5c names the real certificate, but the signature is by another key.
    rogue_ca = pki.create_deployment(tmp_path / "rogue", now=now)
    _, other_key = rogue_ca.issue(kind="school", code="999101", name="x", now=now)
    impostor = Signer(chain=school.chain, key=other_key, agency=SCHOOL)
    reason, _ = _reason(sign_message(make_message(SCHOOL), impostor, now=now), trust, now)
    assert reason == "payload-changed"


def test_revoked_certificate_fails(deployment, make_message, tmp_path, now):
    prefix = deployment.issue(tmp_path / "revoked", kind="school", code="999101", name="Fictional Primary School")
    signer = Signer.from_files(f"{prefix}.crt", f"{prefix}.key")
    signed = sign_message(make_message(SCHOOL), signer, now=now)
    verify_message(signed, TrustAnchor.from_files(deployment.ca, deployment.crl), now=now)

    pki.CertificateAuthority.open(deployment.dir).write_crl(now=now, revoke=[signer.chain[0].serial_number],
                                                            reason="key-compromise")
    reason, message = _reason(signed, TrustAnchor.from_files(deployment.ca, deployment.crl), now)
    assert reason == "revoked"
    assert "key_compromise" in message
    # Without a CRL, revocation cannot be known.
    verify_message(signed, TrustAnchor.from_files(deployment.ca), now=now)


def test_expired_at_signing_time_fails(deployment, make_message, tmp_path, now):
    issued_at = now - dt.timedelta(days=400)
    prefix = deployment.issue(tmp_path / "old", kind="school", code="999101", name="Fictional Primary School",
                              now=issued_at, days=30)
    signer = Signer.from_files(f"{prefix}.crt", f"{prefix}.key")
    trust = TrustAnchor.from_files(deployment.ca, deployment.crl)
    reason, message = _reason(sign_message(make_message(SCHOOL), signer, now=now), trust, now)
    assert reason == "expired"
    assert "not valid at signing time" in message


def test_after_key_rotation_old_messages_still_verify(make_message, tmp_path, now):
    # A deployment running for two years. The school's old certificate
    # signed while valid; it has since expired and was superseded by a new
    # key. Its signatures still verify, years later.
    ca = pki.create_deployment(tmp_path / "certs", now=now - dt.timedelta(days=730))
    old_time = now - dt.timedelta(days=60)
    old = Signer.from_objects(*ca.issue(kind="school", code="999101", name="Fictional Primary School",
                                        now=old_time, days=30))
    old_message = sign_message(make_message(SCHOOL), old, now=old_time + dt.timedelta(days=1))

    new = Signer.from_objects(*ca.issue(kind="school", code="999101", name="Fictional Primary School", now=now))
    assert new.chain[0].public_key() != old.chain[0].public_key()
    ca.write_crl(now=now, revoke=[old.chain[0].serial_number], reason="superseded")
    new_message = sign_message(make_message(SCHOOL), new, now=now)

    trust = TrustAnchor.from_files(ca.directory / pki.CA_CERT, ca.crl_path)
    years_later = now + dt.timedelta(days=5 * 365)
    assert verify_message(old_message, trust, now=years_later).signature.certificate == old.chain[0]
    assert verify_message(new_message, trust, now=years_later).signature.certificate == new.chain[0]

    # Had the old key been compromised instead, its signatures would not be trusted.
    ca.write_crl(now=now, revoke=[new.chain[0].serial_number], reason="key-compromise")
    trust = TrustAnchor.from_files(ca.directory / pki.CA_CERT, ca.crl_path)
    assert _reason(new_message, trust, years_later)[0] == "revoked"


def test_gateway_countersignature_keeps_the_senders(make_message, school, gateway_signer, trust, now):
    sender_signed = sign_message(make_message(SCHOOL), school, now=now)
    routed = countersign_message(sender_signed, gateway_signer, now=now + dt.timedelta(seconds=2))
    nested = routed["signature"]["extension"][0]
    assert nested["url"] == EXT_SENDER_SIGNATURE
    assert nested["valueSignature"] == sender_signed["signature"]

    verified = verify_message(routed, trust, now=now + dt.timedelta(seconds=3))
    assert verified.signature.agency == gateway_signer.agency
    assert verified.sender_signature.agency == SCHOOL

    broken = copy.deepcopy(routed)
    data = broken["signature"]["extension"][0]["valueSignature"]["data"]
    header, _, sig = base64.b64decode(data).decode().split(".")
    sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    broken["signature"]["extension"][0]["valueSignature"]["data"] = base64.b64encode(
        f"{header}..{sig}".encode()).decode()
    with pytest.raises(UntrustedMessage) as caught:
        verify_message(broken, trust, now=now + dt.timedelta(seconds=3))
    assert caught.value.role == "sender signature"


def test_unsigned_message_countersigned_by_gateway_verifies(make_message, gateway_signer, trust, now):
    routed = countersign_message(make_message(SCHOOL), gateway_signer, now=now)
    assert "extension" not in routed["signature"]
    assert verify_message(routed, trust, now=now).sender_signature is None


def test_signing_time_is_covered_by_the_signature(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    signed["signature"]["when"] = "2020-01-01T00:00:00.000Z"
    assert _reason(signed, trust, now)[0] == "malformed"


def test_who_must_be_the_certificate_agency(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    signed["signature"]["who"]["identifier"]["value"] = "999999"
    assert _reason(signed, trust, now)[0] == "unknown-signer"


def test_signer_must_be_the_sender(make_message, school, trust, now):
    # A school signing a message that names the police as its sender.
    reason, message = _reason(sign_message(make_message(POLICE), school, now=now), trust, now)
    assert reason == "unknown-signer"
    assert POLICE in message


def test_signature_from_the_future_fails(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now + dt.timedelta(hours=1))
    assert _reason(signed, trust, now)[0] == "signed-in-future"


@pytest.mark.parametrize("signature", [
    None, "x", {"sigFormat": "application/jose", "data": "not base64!"},
    {"sigFormat": "application/jose", "data": base64.b64encode(b"a.b.c").decode()},
    {"sigFormat": "application/pkcs7-signature", "data": ""},
])
def test_garbage_signatures_raise_the_one_exception(make_message, trust, now, signature):
    bundle = make_message(SCHOOL)
    bundle["signature"] = signature
    with pytest.raises(UntrustedMessage):
        verify_message(bundle, trust, now=now)


def test_unsigned_and_non_bundles_are_untrusted(make_message, trust, now):
    assert _reason(make_message(SCHOOL), trust, now)[0] == "malformed"
    assert _reason({"resourceType": "Patient"}, trust, now)[0] == "malformed"


def test_already_signed_bundle_is_not_signed_again(make_message, school, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    with pytest.raises(ValueError, match="already signed"):
        sign_message(signed, school, now=now)


def test_signer_key_must_match_certificate(deployment):
    with pytest.raises(pki.PKIError, match="does not belong"):
        Signer.from_files(f"{deployment.school}.crt", f"{deployment.police}.key")


def test_crl_from_another_ca_is_refused(deployment, tmp_path, now):
    pki.create_deployment(tmp_path / "other", now=now)
    with pytest.raises(pki.PKIError, match="not issued by the CA"):
        TrustAnchor.from_files(deployment.ca, tmp_path / "other" / "crl.pem")

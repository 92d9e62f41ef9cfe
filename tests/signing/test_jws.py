"""The JWS, written and read through joserfc: the wire format of every earlier signature, the policy the
gateway adds (refused headers, detached payload only, strict encodings), and the verifier's caches."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from gateway.signing import Signer, TrustAnchor, UntrustedMessage, sign_message, signed_payload, verify_message
from gateway.signing import pki
from gateway.signing import signatures

SCHOOL = "urn:x-safeguarding:agency:school:999101"
UTC = dt.timezone.utc
VECTORS = Path(__file__).parent / "vectors" / "signatures"


def _registry(algorithms=("ES256",), **extra_headers) -> jws.JWSRegistry:
    """A registry of the test's own, apart from the gateway's: it may allow what the gateway refuses."""
    headers = {"sigT": HeaderParameter("signing time", "str"), **extra_headers}
    registry = jws.JWSRegistry(header_registry=headers, algorithms=list(algorithms))
    registry.max_header_length = 64 * 1024
    registry.max_payload_length = 1 << 30
    return registry


def _compact(signature: dict) -> str:
    return base64.b64decode(signature["data"]).decode("ascii")


def _with_compact(signed: dict, compact: str) -> dict:
    return {**signed, "signature": {**signed["signature"], "data": base64.b64encode(compact.encode()).decode()}}


def _reason(bundle, trust, now):
    with pytest.raises(UntrustedMessage) as caught:
        verify_message(bundle, trust, now=now)
    return caught.value.reason


def test_joserfc_verifies_what_the_gateway_signs(make_message, school, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    compact = _compact(signed["signature"])
    header_b64, payload_part, signature_b64 = compact.split(".")
    assert payload_part == "" and len(signature_b64) == 86  # detached; r || s, 64 bytes
    public = ECKey.import_key(school.chain[0].public_key())
    obj = jws.deserialize_compact(compact, public, payload=signed_payload(signed), registry=_registry())
    assert obj.protected == {"alg": "ES256", "x5c": school.x5c, "sigT": signed["signature"]["when"]}
    # And not over any other payload.
    with pytest.raises(Exception):
        jws.deserialize_compact(compact, public, payload=signed_payload(signed) + b" ", registry=_registry())


def test_gateway_verifies_what_joserfc_signs(make_message, school, trust, now):
    message = make_message(SCHOOL)
    signed = sign_message(message, school, now=now)
    when = signed["signature"]["when"]
    header = {"alg": "ES256", "x5c": school.x5c, "sigT": when}
    theirs = jws.detach_content(jws.serialize_compact(header, signed_payload(message), school.jwk,
                                                      registry=_registry()))
    from_joserfc = _with_compact(signed, theirs)
    assert verify_message(from_joserfc, trust, now=now).signature.agency == SCHOOL
    # Byte for byte the same wire format: only the (randomised) ECDSA signature differs.
    ours = _compact(signed["signature"])
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    # joserfc's signature over another message does not verify here.
    other = jws.detach_content(jws.serialize_compact(header, signed_payload(make_message(SCHOOL)), school.jwk,
                                                     registry=_registry()))
    assert _reason(_with_compact(signed, other), trust, now) == "payload-changed"


def _header_text(compact: str) -> bytes:
    return base64.urlsafe_b64decode(compact.split(".")[0] + "==")


def test_wire_format_is_that_of_earlier_signatures(make_message, school, now):
    # Earlier signatures (the vectors, made before joserfc wrote them) have a
    # compact ASCII JSON header, keys in this order; so do today's.
    earlier = json.loads((VECTORS / "school-signed.json").read_text(encoding="utf-8"))["message"]
    signed = sign_message(make_message(SCHOOL), school, now=now)
    for signature in (earlier["signature"], signed["signature"]):
        text = _header_text(_compact(signature))
        header = json.loads(text)
        assert list(header) == ["alg", "x5c", "sigT"] and header["sigT"] == signature["when"]
        assert text == json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    assert json.loads(_header_text(_compact(signed["signature"])))["x5c"] == school.x5c


def _resign(signed: dict, header: dict, key, registry=None) -> dict:
    """Return ``signed`` with a detached JWS over its payload whose protected header is ``header``."""
    compact = jws.serialize_compact(header, signed_payload(signed), ECKey.import_key(key),
                                    registry=registry or _registry())
    return _with_compact(signed, jws.detach_content(compact))


def test_unsupported_header_extensions_are_refused(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    base = {"alg": "ES256", "x5c": school.x5c, "sigT": signed["signature"]["when"]}
    assert verify_message(_resign(signed, base, school.key), trust, now=now)  # the control: same, no extension
    lenient = _registry(exp=HeaderParameter("expiry", "int"))
    for extra in ({"crit": ["exp"], "exp": 1}, {"b64": False, "crit": ["b64"]}, {"b64": True}):
        assert _reason(_resign(signed, {**base, **extra}, school.key, lenient), trust, now) == "malformed", extra
    p384 = ec.generate_private_key(ec.SECP384R1())
    es384 = _resign(signed, {**base, "alg": "ES384"}, p384, _registry(algorithms=["ES384"]))
    with pytest.raises(UntrustedMessage, match="only ES256"):
        verify_message(es384, trust, now=now)


def test_unknown_header_parameters_that_are_not_critical_are_ignored(make_message, school, trust, now):
    # RFC 7515 section 4: a parameter the verifier does not know is ignored unless listed in crit.
    signed = sign_message(make_message(SCHOOL), school, now=now)
    header = {**school.protected_header(signed["signature"]["when"]), "typ": "JOSE", "x-vendor-trace": 42}
    other = _with_compact(signed, signatures.detached_jws(header, signed_payload(signed), school))
    assert verify_message(other, trust, now=now).signature.agency == SCHOOL


def test_registered_header_parameters_of_the_wrong_type_are_refused(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    base = school.protected_header(signed["signature"]["when"])
    anything = HeaderParameter("any value", lambda value: None)
    lenient = _registry(sigT=anything, kid=anything, x5c=anything)
    for wrong in ({"kid": 5}, {"sigT": 20250301}, {"x5c": [*school.x5c, 7]}):
        with pytest.raises(UntrustedMessage, match="header is not valid|not a certificate") as caught:
            verify_message(_resign(signed, {**base, **wrong}, school.key, lenient), trust, now=now)
        assert caught.value.reason == "malformed", wrong


def test_an_attached_payload_is_refused(make_message, school, trust, now):
    # Given an attached payload, a JWS library verifies it, not the message: refuse it even when it is the message.
    message = make_message(SCHOOL)
    signed = sign_message(message, school, now=now)
    header = school.protected_header(signed["signature"]["when"])
    for payload in (signed_payload(signed), signed_payload(make_message(SCHOOL))):
        attached = jws.serialize_compact(header, payload, school.jwk, registry=_registry())
        with pytest.raises(UntrustedMessage, match="not detached") as caught:
            verify_message(_with_compact(signed, attached), trust, now=now)
        assert caught.value.reason == "malformed"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("header", [
    b'"alg b64"', b'["alg", "b64"]', b"[" * 40_000, b"{}", b'{"alg": null}', b"\xff\xfe", b"",
], ids=["string", "list", "deep-nesting", "no-alg", "null-alg", "not-utf8", "empty"])
def test_a_header_that_is_not_a_jws_header_is_malformed(make_message, school, trust, now, header):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    signature_segment = _compact(signed["signature"]).split(".")[2]
    assert _reason(_with_compact(signed, f"{_b64url(header)}..{signature_segment}"), trust, now) == "malformed"


def test_a_header_beyond_64_kib_is_malformed(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    header = {**school.protected_header(signed["signature"]["when"]), "x5c": school.x5c * 80}
    assert len(json.dumps(header)) > 48 * 1024  # over 64 KiB once base64url-encoded
    huge = _resign(signed, header, school.key, _registry())
    with pytest.raises(UntrustedMessage, match="Header size exceeds"):
        verify_message(huge, trust, now=now)


def test_a_large_message_signs_and_verifies(make_message, school, trust, now):
    # joserfc limits attached payloads (128,000 bytes by default); a detached one is the gateway's to bound.
    message = make_message(SCHOOL)
    message["entry"][0]["resource"]["extension"] = [
        {"url": "https://fhir.safeguarding-gateway.example/x/note", "valueString": "Fictional note. " * 20_000}]
    signed = sign_message(message, school, now=now)
    assert len(signed_payload(signed)) > 300_000
    assert verify_message(signed, trust, now=now).signature.agency == SCHOOL


def test_signature_has_one_spelling_only(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    header, _, sig = _compact(signed["signature"]).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    # The last character carries 2 unused bits: another spelling of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    respelt = sig[:-1] + alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(respelt + "==") == raw
    for variant in (respelt, sig + "==", sig.replace("-", "+").replace("_", "/") if ("-" in sig or "_" in sig)
                    else sig + "=", sig[:-1], sig + "A", " " + sig):
        assert _reason(_with_compact(signed, f"{header}..{variant}"), trust, now) == "payload-changed", variant
    assert verify_message(_with_compact(signed, f"{header}..{sig}"), trust, now=now)


def test_header_segment_must_be_base64url(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    header, _, sig = _compact(signed["signature"]).split(".")
    for variant in (header + "==", header[:10] + "+" + header[11:], header[:10] + "!" + header[11:]):
        assert _reason(_with_compact(signed, f"{variant}..{sig}"), trust, now) == "malformed"


def test_a_certificate_key_other_than_p256_cannot_verify(deployment, make_message, school, trust, now):
    # A certificate from the deployment CA for a P-384 key: nothing it names can verify ES256.
    p384 = ec.generate_private_key(ec.SECP384R1())
    cert, _ = pki.CertificateAuthority.open(deployment.dir).issue(
        kind="school", code="999101", name="Fictional Primary School", now=now, key=p384)
    signed = sign_message(make_message(SCHOOL), school, now=now)
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
    header = {**school.protected_header(signed["signature"]["when"]), "x5c": x5c}
    assert _reason(_resign(signed, header, school.key), trust, now) == "payload-changed"
    with pytest.raises(ValueError, match="P-256"):
        Signer.from_objects(cert, p384).jwk


# --- caches -----------------------------------------------------------------

def _chain_key(signed: dict, trust: TrustAnchor):
    header = json.loads(base64.urlsafe_b64decode(_compact(signed["signature"]).split(".")[0] + "=="))
    return tuple(header["x5c"]), trust._ca_identity[0]


def test_revocation_in_a_new_crl_is_seen_after_the_chain_was_cached(deployment, make_message, tmp_path, now):
    prefix = deployment.issue(tmp_path / "cached", kind="school", code="999101", name="Fictional Primary School")
    signer = Signer.from_files(f"{prefix}.crt", f"{prefix}.key")
    signed = sign_message(make_message(SCHOOL), signer, now=now)
    before = TrustAnchor.from_files(deployment.ca, deployment.crl)
    for _ in range(3):  # verified, and its chain cached
        verify_message(signed, before, now=now)
    assert _chain_key(signed, before) in signatures._VERIFIED_CHAINS

    pki.CertificateAuthority.open(deployment.dir).write_crl(now=now, revoke=[signer.chain[0].serial_number],
                                                            reason="key-compromise")
    after = TrustAnchor.from_files(deployment.ca, deployment.crl)
    assert _reason(signed, after, now) == "revoked"
    assert _reason(signed, after, now) == "revoked"  # and again, with everything cached
    # The old CRL did not list it, and still does not.
    verify_message(signed, before, now=now)


def test_a_failed_chain_is_never_cached(make_message, tmp_path, trust, now):
    rogue_ca = pki.create_deployment(tmp_path / "rogue", now=now)
    cert, key = rogue_ca.issue(kind="school", code="999101", name="Fictional Primary School", now=now)
    rogue = Signer.from_objects([cert], key)
    signed = sign_message(make_message(SCHOOL), rogue, now=now)
    for _ in range(2):
        assert _reason(signed, trust, now) == "untrusted-chain"
    assert _chain_key(signed, trust) not in signatures._VERIFIED_CHAINS
    # Under its own CA it verifies; that success does not carry over to another CA.
    own = TrustAnchor.from_files(tmp_path / "rogue" / pki.CA_CERT, tmp_path / "rogue" / pki.CRL)
    verify_message(signed, own, now=now)
    assert _reason(signed, trust, now) == "untrusted-chain"


def test_a_cached_chain_is_judged_again_at_another_signing_time(make_message, school, trust, now):
    signed = sign_message(make_message(SCHOOL), school, now=now)
    verify_message(signed, trust, now=now)
    x5c, _ = _chain_key(signed, trust)
    certificates = signatures._parse_x5c(x5c)
    assert signatures._chain_problem(x5c, certificates, trust, now) is None
    ca_end = trust.ca.not_valid_after_utc
    # After the CA expired (the leaf's own validity is checked before), the
    # cached success does not apply: the chain is verified again and fails.
    assert signatures._chain_problem(x5c, certificates, trust, ca_end + dt.timedelta(days=1)) is not None
    before_ca = trust.ca.not_valid_before_utc - dt.timedelta(days=1)
    assert signatures._chain_problem(x5c, certificates, trust, before_ca) is not None


def test_parsed_x5c_is_cached_by_its_exact_text(school):
    x5c = tuple(school.x5c)
    first = signatures._parse_x5c(x5c)
    assert signatures._parse_x5c(tuple(s[:] for s in x5c)) is first
    assert first.leaf == school.chain[0]
    assert signatures._parse_x5c(("AAAA",)) is None


def test_only_a_p256_key_signs(make_message, school, now):
    signer = Signer(chain=school.chain, key=ec.generate_private_key(ec.SECP384R1()), agency=SCHOOL)
    with pytest.raises(ValueError, match="P-256"):
        sign_message(make_message(SCHOOL), signer, now=now)

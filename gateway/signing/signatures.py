"""Sign and verify FHIR message Bundles: a detached JWS in ``Bundle.signature``.

The signed bytes are the RFC 8785 canonical JSON of the Bundle without its
``signature`` element. The JWS is ES256 with the signer's certificate chain
in ``x5c`` and the signing time in ``sigT`` (so ``Signature.when``, which
validity is judged at, is covered by the signature too). The compact JWS,
with its payload part empty, is base64-encoded into ``Signature.data``.

When the gateway counter-signs a Bundle its sender signed, the sender's
Signature moves into an extension of the gateway's
(:data:`~gateway.model.systems.EXT_SENDER_SIGNATURE`); both cover the same
payload, so a receiver can check both offline with :func:`verify_message`.

This module needs neither Flask nor a database: a receiving agency can
embed it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import json
import threading
from pathlib import Path

import pybase64
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.model.systems import EXT_SENDER_SIGNATURE, parse_agency_uri
from gateway.signing import pki
from gateway.signing.canonical import CanonicalizationError, canonical_json
from gateway.signing.messages import agency_identifier, format_instant, message_header, parse_instant, source_endpoint

SIGNATURE_TYPE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1",
                  "display": "Author's Signature"}
SIG_FORMAT = "application/jose"
TARGET_FORMAT = "application/fhir+json"
ALGORITHM = "ES256"
# A signer's clock may run a little fast; a signature from further in the
# future than this is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)
# Reasons for :class:`UntrustedMessage`, one per thing that can be wrong.
REASONS = ("malformed", "payload-changed", "unknown-signer", "untrusted-chain", "revoked", "expired",
           "signed-in-future")
# Revocations that do not mean the key was compromised: signatures made
# before the revocation date stay valid (routine key rotation).
_BENIGN_REVOCATIONS = {x509.ReasonFlags.superseded, x509.ReasonFlags.cessation_of_operation,
                       x509.ReasonFlags.affiliation_changed}


# ES256 (RFC 7518 3.4): ECDSA on P-256 with SHA-256; the JWS signature is
# r || s, 32 bytes each, where ``cryptography`` speaks DER.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ES256_HALF = 32
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64url(data: bytes) -> bytes:
    """Return base64url without padding (RFC 7515 section 2).

    pybase64 (SIMD) writes the same bytes as :func:`base64.urlsafe_b64encode`
    about ten times faster; it matters for the ~12 KB payload segment.
    """
    return pybase64.urlsafe_b64encode(data).rstrip(b"=")


def _b64url_decode(segment: bytes) -> bytes:
    """Return the bytes of an unpadded base64url segment; raise ValueError unless it is exactly that.

    Stricter than :func:`base64.urlsafe_b64decode`: no padding, no characters
    outside the base64url alphabet, and (checked by the callers that need it)
    no second spelling of the same bytes.
    """
    if b"+" in segment or b"/" in segment or b"=" in segment:
        raise ValueError("not base64url without padding")
    return binascii.a2b_base64(segment.translate(_FROM_URLSAFE) + b"=" * (-len(segment) % 4), strict_mode=True)


def _es256_sign(signing_input: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{ALGORITHM} needs an EC P-256 key")
    r, s = decode_dss_signature(key.sign(signing_input, _ECDSA_SHA256))
    return r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")


def _es256_verify(signature: bytes, signing_input: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    if len(signature) != 2 * _ES256_HALF:
        return False
    r = int.from_bytes(signature[:_ES256_HALF], "big")
    s = int.from_bytes(signature[_ES256_HALF:], "big")
    try:
        key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


class UntrustedMessage(Exception):
    """A message or signature that cannot be trusted; the one exception for that.

    ``reason`` is one of :data:`REASONS`; ``str(exc)`` says exactly what is
    wrong in words a receiving agency can act on; ``role`` says which
    signature (``"signature"`` or ``"sender signature"``).
    """

    def __init__(self, reason: str, message: str, role: str = "signature"):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.role = role


@dataclasses.dataclass(frozen=True)
class Signer:
    """A signing certificate chain and its private key."""

    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePrivateKey
    agency: str

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path) -> "Signer":
        """Return the signer in ``cert_path`` (leaf first, then any intermediates) and ``key_path``.

        Raises :class:`~gateway.signing.pki.PKIError` when the files cannot be
        read, the key does not belong to the certificate, or the certificate
        names no agency.
        """
        chain = tuple(pki.load_certificates(cert_path))
        key = pki.load_private_key(key_path)
        return cls.from_objects(chain, key, where=str(cert_path))

    @classmethod
    def from_objects(cls, chain, key, where: str = "certificate") -> "Signer":
        """Return a signer from a certificate (or chain, leaf first) and its key.

        Raises :class:`~gateway.signing.pki.PKIError` as :meth:`from_files`.
        """
        chain = (chain,) if isinstance(chain, x509.Certificate) else tuple(chain)
        if chain[0].public_key() != key.public_key():
            raise pki.PKIError(f"{where}: the key does not belong to this certificate")
        agency = pki.certificate_agency(chain[0])
        if agency is None:
            raise pki.PKIError(f"{where}: the certificate names no agency (SAN URI urn:x-safeguarding:agency:...)")
        return cls(chain, key, agency)

    @functools.cached_property
    def x5c(self) -> list[str]:
        """The chain as JWS ``x5c`` values (base64 DER, leaf first)."""
        return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in self.chain]

    @functools.cached_property
    def jwk(self):
        """The private key in joserfc's form (for interoperability checks; signing does not use it)."""
        from joserfc.jwk import ECKey

        return ECKey.import_key(self.key)

    @functools.cached_property
    def _header_prefix(self) -> str:
        # The protected header as joserfc writes it (json.dumps, ASCII,
        # compact, in this key order) up to the value of sigT, which is
        # the one part that changes.
        text = json.dumps({"alg": ALGORITHM, "x5c": self.x5c, "sigT": ""}, ensure_ascii=True, separators=(",", ":"))
        return text[:-len('""}')]

    def _protected_header(self, when: str) -> bytes:
        """Return the JWS protected header (JSON, ASCII) for a signature made at ``when``."""
        return (self._header_prefix + json.dumps(when, ensure_ascii=True) + "}").encode("ascii")


@dataclasses.dataclass(frozen=True)
class TrustAnchor:
    """What a verifier trusts: the deployment CA and, optionally, its CRL."""

    ca: x509.Certificate
    crl: x509.CertificateRevocationList | None = None

    @classmethod
    def from_files(cls, ca_path: Path, crl_path: Path | None = None) -> "TrustAnchor":
        """Return the trust anchor in ``ca_path`` (and ``crl_path``).

        Raises :class:`~gateway.signing.pki.PKIError` when a file cannot be
        read or the CRL is not signed by the CA.
        """
        ca = pki.load_certificate(ca_path)
        crl = pki.load_crl(crl_path) if crl_path is not None else None
        if crl is not None and (crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key())):
            raise pki.PKIError(f"{crl_path}: this CRL was not issued by the CA in {ca_path}")
        return cls(ca, crl)

    @functools.cached_property
    def _ca_identity(self) -> tuple[bytes, dt.datetime, dt.datetime]:
        # The CA's DER (the key of cached chains) and its validity.
        return (self.ca.public_bytes(serialization.Encoding.DER), self.ca.not_valid_before_utc,
                self.ca.not_valid_after_utc)


@dataclasses.dataclass(frozen=True)
class VerifiedSignature:
    """One signature that verified: who signed, when, with which certificate."""

    agency: str
    when: dt.datetime
    certificate: x509.Certificate


@dataclasses.dataclass(frozen=True)
class VerifiedMessage:
    """A Bundle whose signature (and sender signature, if any) verified."""

    signature: VerifiedSignature
    sender_signature: VerifiedSignature | None = None


def signed_payload(bundle: dict) -> bytes:
    """Return the bytes a Bundle's signatures cover: canonical JSON without ``signature``.

    Raises :class:`UntrustedMessage` (``malformed``) when the Bundle holds a
    value canonical JSON cannot represent.
    """
    try:
        return canonical_json({key: value for key, value in bundle.items() if key != "signature"})
    except CanonicalizationError as exc:
        raise UntrustedMessage("malformed", f"the Bundle cannot be canonicalised (RFC 8785): {exc}") from None


def _detached_jws(protected_header: bytes, payload: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Return the compact ES256 JWS of ``payload`` with its payload part empty (RFC 7515 appendix F).

    ``header..signature``, where the signature covers
    ``base64url(header) "." base64url(payload)``: exactly what
    ``joserfc.jws.detach_content(jws.serialize_compact(...))`` returns.
    """
    header_segment = _b64url(protected_header)
    signature = _es256_sign(header_segment + b"." + _b64url(payload), key)
    return header_segment + b".." + _b64url(signature)


def _signature_element(payload: bytes, signer: Signer, now: dt.datetime) -> dict:
    when = format_instant(now)
    detached = _detached_jws(signer._protected_header(when), payload, signer.key)
    return {
        "type": [dict(SIGNATURE_TYPE)],
        "when": when,
        "who": {"type": "Organization", "identifier": agency_identifier(signer.agency)},
        "targetFormat": TARGET_FORMAT,
        "sigFormat": SIG_FORMAT,
        "data": pybase64.b64encode(detached).decode("ascii"),
    }


def sign_message(bundle: dict, signer: Signer, *, now: dt.datetime) -> dict:
    """Return a copy of ``bundle`` signed by ``signer`` at ``now`` (a sender signing its own message).

    Raises :class:`ValueError` when the Bundle already carries a signature
    and :class:`UntrustedMessage` (``malformed``) when it cannot be
    canonicalised.
    """
    if "signature" in bundle:
        raise ValueError("the Bundle is already signed (Bundle.signature); remove it to sign again")
    signed = dict(bundle)
    signed["signature"] = _signature_element(signed_payload(bundle), signer, now)
    return signed


def countersign_message(bundle: dict, signer: Signer, *, now: dt.datetime, payload: bytes | None = None) -> dict:
    """Return a copy of ``bundle`` with ``signer``'s signature, keeping any sender signature.

    A signature already present (the sender's) moves into the new
    signature's :data:`EXT_SENDER_SIGNATURE` extension. Verify it first:
    this function does not. ``payload``, when the caller already has
    :func:`signed_payload` of the Bundle, saves computing it again. Raises
    as :func:`sign_message`.
    """
    signed = dict(bundle)
    previous = signed.pop("signature", None)
    element = _signature_element(payload if payload is not None else signed_payload(signed), signer, now)
    if previous is not None:
        element = {"extension": [{"url": EXT_SENDER_SIGNATURE, "valueSignature": previous}], **element}
    signed["signature"] = element
    return signed


class _Certificates:
    """An ``x5c`` chain (leaf first), parsed once, with what verifying reads from it."""

    def __init__(self, chain: tuple[x509.Certificate, ...]):
        self.chain = chain
        self.leaf = chain[0]
        # Each certificate's validity, for re-checking a cached chain at another time.
        self.windows = tuple((c.not_valid_before_utc, c.not_valid_after_utc, c) for c in chain)

    @functools.cached_property
    def es256_key(self) -> ec.EllipticCurvePublicKey | None:
        """The leaf's public key if it can verify ES256 (EC P-256), else ``None``."""
        try:
            key = self.leaf.public_key()
        except (ValueError, UnsupportedAlgorithm):
            return None
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        return None

    @functools.cached_property
    def agency(self) -> str | None:
        return pki.certificate_agency(self.leaf)

    @functools.cached_property
    def subject(self) -> str:
        return self.leaf.subject.rfc4514_string()


@functools.lru_cache(maxsize=1024)
def _parse_x5c(x5c: tuple[str, ...]) -> _Certificates | None:
    """Return the parsed chain of an ``x5c`` header, or ``None`` when an item is not a certificate.

    Cached by the exact base64 strings: parsing the same bytes always gives
    the same certificates, and nothing here depends on time or trust.
    """
    try:
        return _Certificates(tuple(x509.load_der_x509_certificate(base64.b64decode(item, validate=True))
                                   for item in x5c))
    except (ValueError, TypeError, binascii.Error):
        return None


def _decode_jws(signature: dict, role: str) -> tuple[bytes, bytes, dict, tuple[str, ...], _Certificates]:
    """Return the header segment, signature segment, header, x5c and parsed chain of a Signature's JWS."""
    if not isinstance(signature, dict) or signature.get("sigFormat") != SIG_FORMAT:
        raise UntrustedMessage("malformed", f"the {role} is not a JWS (sigFormat must be {SIG_FORMAT})", role)
    try:
        data = signature.get("data") or ""
        # As base64.b64decode(validate=True), without its regular expression.
        compact = binascii.a2b_base64(data, strict_mode=True) if data else b""
        header_segment, payload_part, signature_segment = compact.split(b".")
        header = json.loads(_b64url_decode(header_segment))
    except (ValueError, TypeError, binascii.Error):
        raise UntrustedMessage("malformed", f"the {role}'s data is not a base64 compact JWS", role) from None
    if payload_part:
        raise UntrustedMessage("malformed", f"the {role}'s JWS is not detached (its payload part is not empty)", role)
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        alg = header.get("alg") if isinstance(header, dict) else None
        raise UntrustedMessage("malformed", f"the {role} uses algorithm {alg!r}; only {ALGORITHM} is accepted", role)
    if "crit" in header or "b64" in header:
        # RFC 7515 4.1.11: extensions this verifier does not implement
        # (e.g. RFC 7797's unencoded payload) must not be accepted.
        raise UntrustedMessage("malformed", f"the {role}'s JWS header uses extensions this verifier does not "
                               f"support ({', '.join(k for k in ('crit', 'b64') if k in header)})", role)
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise UntrustedMessage("unknown-signer", f"the {role} carries no certificate (x5c)", role)
    x5c = tuple(x5c)
    certificates = _parse_x5c(x5c) if all(type(item) is str for item in x5c) else None
    if certificates is None:
        raise UntrustedMessage("malformed", f"the {role}'s x5c holds something that is not a certificate", role)
    return header_segment, signature_segment, header, x5c, certificates


def _signature_matches(header_segment: bytes, signature_segment: bytes, payload: bytes,
                       key: ec.EllipticCurvePublicKey | None) -> bool:
    """Return whether ``signature_segment`` is an ES256 signature by ``key`` of the detached JWS."""
    if key is None:
        return False
    try:
        raw = _b64url_decode(signature_segment)
    except (ValueError, binascii.Error):
        return False
    if _b64url(raw) != signature_segment:  # one spelling only
        return False
    return _es256_verify(raw, header_segment + b"." + _b64url(payload), key)


def verify_signature(signature: dict, payload: bytes, trust: TrustAnchor, *, now: dt.datetime,
                     role: str = "signature") -> VerifiedSignature:
    """Return who made ``signature`` over ``payload`` and when, if it can be trusted.

    Checks, in order: the JWS over ``payload`` with the certificate's key;
    that ``Signature.when`` is the signed time and not in the future of
    ``now``; that ``who`` is the certificate's agency; that the certificate
    was issued by ``trust.ca``, valid at signing time, and chains to it;
    that it is not revoked in ``trust.crl`` (a certificate revoked as
    superseded, ceased or affiliation-changed still vouches for signatures
    made before the revocation). Raises :class:`UntrustedMessage` naming the
    first failure.
    """
    header_segment, signature_segment, header, x5c, certificates = _decode_jws(signature, role)
    if not _signature_matches(header_segment, signature_segment, payload, certificates.es256_key):
        raise UntrustedMessage("payload-changed", f"the {role} does not match the message: it was changed after "
                               "signing, or signed with a key other than the certificate's", role)

    when = parse_instant(signature.get("when"))
    if when is None or header.get("sigT") != signature.get("when"):
        raise UntrustedMessage("malformed", f"the {role}'s time (when={signature.get('when')!r}) is missing or is "
                               "not the signed time (sigT)", role)
    if when > now + CLOCK_SKEW:
        raise UntrustedMessage("signed-in-future", f"the {role} was made at {signature['when']}, "
                               f"after the time of checking ({format_instant(now)})", role)

    leaf = certificates.leaf
    agency = certificates.agency
    if agency is None:
        raise UntrustedMessage("unknown-signer", f"the {role}'s certificate ({certificates.subject}) names no "
                               "agency", role)
    who = signature.get("who")
    who_identifier = who.get("identifier") if isinstance(who, dict) else None
    if who_identifier != agency_identifier(agency):
        raise UntrustedMessage("unknown-signer", f"the {role} claims to be by {who_identifier!r} but its "
                               f"certificate is {agency}'s", role)

    if leaf.issuer != trust.ca.subject:
        raise UntrustedMessage("untrusted-chain", f"the {role}'s certificate ({agency}) was issued by "
                               f"{leaf.issuer.rfc4514_string()}, not by this CA "
                               f"({trust.ca.subject.rfc4514_string()})", role)
    not_before, not_after, _ = certificates.windows[0]
    if not not_before <= when <= not_after:
        raise UntrustedMessage("expired", f"the {role}'s certificate ({agency}, serial "
                               f"{pki.serial_hex(leaf.serial_number)}) was not valid at signing time "
                               f"{signature['when']}: valid {format_instant(not_before)} to "
                               f"{format_instant(not_after)}", role)
    problem = _chain_problem(x5c, certificates, trust, when)
    if problem is not None:
        raise UntrustedMessage("untrusted-chain", f"the {role}'s certificate ({agency}) does not chain to this "
                               f"CA at signing time: {problem}", role)

    # Revocation is judged afresh on every call, with this anchor's CRL:
    # nothing about it is cached, so a new CRL is seen at once.
    if trust.crl is not None:
        entry = trust.crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        if entry is not None:
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                reason = x509.ReasonFlags.unspecified
            if not (reason in _BENIGN_REVOCATIONS and when < entry.revocation_date_utc):
                raise UntrustedMessage("revoked", f"the {role}'s certificate ({agency}, serial "
                                       f"{pki.serial_hex(leaf.serial_number)}) was revoked "
                                       f"({reason.name}) at {format_instant(entry.revocation_date_utc)}", role)
    return VerifiedSignature(agency=agency, when=when, certificate=leaf)


# Chains already proven to lead to a CA, keyed by the exact x5c strings and
# the CA's DER. A receiver checks many messages signed with the same
# certificate; path building and the signature checks on the chain need doing
# once. Only successes are stored. Validity is time-dependent, so a cached
# chain is reused only when every certificate in it, and the CA, is valid at
# the signing time at hand; otherwise the chain is verified in full again at
# that time. Revocation is not part of this (see verify_signature).
_VERIFIED_CHAINS: dict[tuple[tuple[str, ...], bytes], bool] = {}
_VERIFIED_CHAINS_MAX = 4096
_VERIFIED_CHAINS_LOCK = threading.Lock()


def _chain_problem(x5c: tuple[str, ...], certificates: _Certificates, trust: TrustAnchor,
                   when: dt.datetime) -> str | None:
    """Return why the chain (leaf first) does not lead to ``trust.ca`` at ``when``, or ``None`` when it does."""
    ca_der, ca_not_before, ca_not_after = trust._ca_identity
    key = (x5c, ca_der)
    if (key in _VERIFIED_CHAINS and ca_not_before <= when <= ca_not_after
            and all(not_before <= when <= not_after for not_before, not_after, _ in certificates.windows)):
        return None
    chain = certificates.chain
    try:
        PolicyBuilder().store(Store([trust.ca])).time(when).build_client_verifier().verify(chain[0], chain[1:])
    except VerificationError as exc:
        return str(exc)
    with _VERIFIED_CHAINS_LOCK:
        if len(_VERIFIED_CHAINS) >= _VERIFIED_CHAINS_MAX:
            _VERIFIED_CHAINS.clear()
        _VERIFIED_CHAINS[key] = True
    return None


def sender_signature(signature: dict) -> dict | None:
    """Return the sender's Signature nested in the gateway's, or ``None``."""
    for extension in signature.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == EXT_SENDER_SIGNATURE:
            return extension.get("valueSignature")
    return None


def verify_message(bundle: dict, trust: TrustAnchor, *, now: dt.datetime) -> VerifiedMessage:
    """Return the verified signature(s) of a signed message Bundle (a JSON dict as parsed).

    Verifies ``Bundle.signature`` and, when it carries one, the sender
    signature nested in it (see :func:`verify_signature`). The signer must
    be the sender named in ``MessageHeader.source.endpoint`` or a gateway;
    a nested sender signature must be the sender's and the outer one a
    gateway's. Raises :class:`UntrustedMessage` when anything cannot be
    trusted, naming what and why.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise UntrustedMessage("malformed", "the message is not a FHIR Bundle")
    signature = bundle.get("signature")
    if not isinstance(signature, dict):
        raise UntrustedMessage("malformed", "the Bundle is not signed (no Bundle.signature)")
    header = message_header(bundle)
    sender = source_endpoint(header) if header is not None else None
    payload = signed_payload(bundle)

    outer = verify_signature(signature, payload, trust, now=now)
    nested = sender_signature(signature)
    inner = None
    if nested is not None:
        inner = verify_signature(nested, payload, trust, now=now, role="sender signature")
        if inner.agency != sender:
            raise UntrustedMessage("unknown-signer", f"the sender signature is by {inner.agency}, but the message "
                                   f"names {sender} as its sender (MessageHeader.source.endpoint)",
                                   "sender signature")
        if _kind(outer.agency) != "gateway":
            raise UntrustedMessage("unknown-signer", f"a sender signature is nested in a signature by "
                                   f"{outer.agency}, which is not a gateway")
    elif outer.agency != sender and _kind(outer.agency) != "gateway":
        raise UntrustedMessage("unknown-signer", f"the signature is by {outer.agency}, which is neither the sender "
                               f"named in MessageHeader.source.endpoint ({sender}) nor a gateway")
    return VerifiedMessage(signature=outer, sender_signature=inner)


def _kind(agency: str) -> str | None:
    parsed = parse_agency_uri(agency)
    return parsed[0] if parsed else None

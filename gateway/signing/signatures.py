"""Sign and verify FHIR message Bundles: a detached JWS in ``Bundle.signature``.

The signed bytes are the RFC 8785 canonical JSON of the Bundle without its
``signature`` element. The JWS is ES256 with the signer's certificate chain
in ``x5c`` and the signing time in ``sigT`` (so ``Signature.when``, which
validity is judged at, is covered by the signature too). The compact JWS,
with its payload part empty, is base64-encoded into ``Signature.data``.

``joserfc`` writes, parses and checks the JWS (ES256 only, from one
registry, :data:`_JWS_REGISTRY`); this module keeps the policy around it:
which headers are refused, that the payload is detached, which certificate
signs, its chain to the deployment CA and its CRL, validity at signing time,
and who the signer may be.

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
import threading
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

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

# Header parameters that switch on JWS extensions (RFC 7515 4.1.11 ``crit``,
# RFC 7797's unencoded payload ``b64``). The gateway never writes them and a
# verifier refuses them rather than let them change what is signed.
_REFUSED_HEADERS = ("crit", "b64")


def _jws_registry() -> jws.JWSRegistry:
    """Return the joserfc registry every JWS here is written and read with.

    ES256 only; ``sigT`` (the signing time) registered as a string. Other
    header parameters joserfc does not know are ignored, as RFC 7515 4
    requires of parameters that are not critical. The header holds the
    signer's certificate chain, so it may be longer than joserfc's default
    limit of 512 bytes.
    """
    registry = jws.JWSRegistry(header_registry={"sigT": HeaderParameter("Signing time", "str")},
                               algorithms=[ALGORITHM], strict_check_header=False)
    registry.max_header_length = 64 * 1024
    return registry


_JWS_REGISTRY = _jws_registry()


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
    def jwk(self) -> ECKey:
        """The private key as joserfc's JWK; raises :class:`ValueError` unless it is EC P-256 (ES256)."""
        if not isinstance(self.key, ec.EllipticCurvePrivateKey) or not isinstance(self.key.curve, ec.SECP256R1):
            raise ValueError(f"{ALGORITHM} needs an EC P-256 key; {self.agency}'s key is not one")
        return ECKey.import_key(self.key)

    def protected_header(self, when: str) -> dict:
        """Return the JWS protected header of a signature made at ``when``.

        In this key order: joserfc writes it as compact ASCII JSON, which is
        the wire format every signature so far has used.
        """
        return {"alg": ALGORITHM, "x5c": self.x5c, "sigT": when}


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


def detached_jws(header: dict, payload: bytes, signer: Signer) -> str:
    """Return the compact ES256 JWS of ``payload`` by ``signer`` with its payload part empty (RFC 7515 appendix F).

    ``header..signature``, the signature covering ``base64url(header) "."
    base64url(payload)``. Raises :class:`ValueError` when the signer's key is
    not EC P-256 and :class:`joserfc.errors.JoseError` when joserfc refuses
    ``header``.
    """
    return jws.detach_content(jws.serialize_compact(header, payload, signer.jwk, registry=_JWS_REGISTRY))


def _signature_element(payload: bytes, signer: Signer, now: dt.datetime) -> dict:
    when = format_instant(now)
    detached = detached_jws(signer.protected_header(when), payload, signer)
    return {
        "type": [dict(SIGNATURE_TYPE)],
        "when": when,
        "who": {"type": "Organization", "identifier": agency_identifier(signer.agency)},
        "targetFormat": TARGET_FORMAT,
        "sigFormat": SIG_FORMAT,
        "data": base64.b64encode(detached.encode("ascii")).decode("ascii"),
    }


def sign_message(bundle: dict, signer: Signer, *, now: dt.datetime) -> dict:
    """Return a copy of ``bundle`` signed by ``signer`` at ``now`` (a sender signing its own message).

    Raises :class:`ValueError` when the Bundle already carries a signature
    or the signer's key is not EC P-256, and :class:`UntrustedMessage`
    (``malformed``) when it cannot be canonicalised.
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
    def es256_jwk(self) -> ECKey | None:
        """The leaf's public key as joserfc's JWK, or ``None`` when it cannot verify ES256."""
        key = self.es256_key
        return ECKey.import_key(key) if key is not None else None

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


def _decode_jws(signature: dict, payload: bytes, role: str
                ) -> tuple[jws.CompactSignature, dict, tuple[str, ...], _Certificates]:
    """Return joserfc's parsed JWS over ``payload``, its header, x5c and parsed chain, from a Signature.

    Raises :class:`UntrustedMessage` (``malformed``, or ``unknown-signer``
    without a certificate) for anything this verifier does not accept.
    """
    if not isinstance(signature, dict) or signature.get("sigFormat") != SIG_FORMAT:
        raise UntrustedMessage("malformed", f"the {role} is not a JWS (sigFormat must be {SIG_FORMAT})", role)
    try:
        data = signature.get("data") or ""
        # As base64.b64decode(validate=True), without its regular expression.
        compact = binascii.a2b_base64(data, strict_mode=True) if data else b""
    except (ValueError, TypeError):
        raise UntrustedMessage("malformed", f"the {role}'s data is not base64", role) from None
    parts = compact.split(b".")
    if len(parts) == 3 and parts[1]:
        # Checked before joserfc reads it: given a payload part, joserfc
        # would verify that instead of the message.
        raise UntrustedMessage("malformed", f"the {role}'s JWS is not detached (its payload part is not empty)", role)
    try:
        parsed = jws.extract_compact(compact, payload, registry=_JWS_REGISTRY)
    except (JoseError, ValueError, TypeError, RecursionError) as exc:
        # joserfc raises its own errors for what it refuses, but a header that
        # is JSON yet not an object can reach Python's own errors inside it.
        detail = f" ({exc})" if isinstance(exc, JoseError) else ""
        raise UntrustedMessage("malformed", f"the {role}'s data is not a compact JWS{detail}", role) from None
    header = parsed.protected
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        alg = header.get("alg") if isinstance(header, dict) else None
        raise UntrustedMessage("malformed", f"the {role} uses algorithm {alg!r}; only {ALGORITHM} is accepted", role)
    refused = [name for name in _REFUSED_HEADERS if name in header]
    if refused:
        raise UntrustedMessage("malformed", f"the {role}'s JWS header uses extensions this verifier does not "
                               f"support ({', '.join(refused)})", role)
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise UntrustedMessage("unknown-signer", f"the {role} carries no certificate (x5c)", role)
    try:
        # The registered parameters' types (x5c a list of strings, sigT a string, ...).
        _JWS_REGISTRY.check_header(header)
    except JoseError as exc:
        raise UntrustedMessage("malformed", f"the {role}'s JWS header is not valid: {exc}", role) from None
    x5c = tuple(x5c)
    certificates = _parse_x5c(x5c)
    if certificates is None:
        raise UntrustedMessage("malformed", f"the {role}'s x5c holds something that is not a certificate", role)
    return parsed, header, x5c, certificates


def _signature_matches(parsed: jws.CompactSignature, certificates: _Certificates) -> bool:
    """Return whether joserfc verifies the parsed JWS with the leaf certificate's key (ES256 only)."""
    key = certificates.es256_jwk
    if key is None:
        return False
    try:
        return jws.validate_compact(parsed, key, registry=_JWS_REGISTRY)
    except JoseError:
        return False


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
    parsed, header, x5c, certificates = _decode_jws(signature, payload, role)
    if not _signature_matches(parsed, certificates):
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

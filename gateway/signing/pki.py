"""The deployment PKI: a CA, the gateway's certificate, agency certificates, the CRL.

Layout of a certificates directory (``gateway certs init DIR``)::

    DIR/ca.crt        the deployment CA (trust anchor for TLS and signatures)
    DIR/ca.key        its private key (mode 0600)
    DIR/crl.pem       the CA's certificate revocation list
    DIR/gateway.crt   the gateway's certificate: TLS server, TLS client, signing
    DIR/gateway.key   its private key (mode 0600)
    DIR/issued/       a copy of every certificate the CA issued, by serial

An agency's identity is in its certificate as a SAN URI,
``urn:x-safeguarding:agency:<kind>:<code>`` (see :func:`certificate_agency`);
never read from a CN.

Every function that depends on the time takes ``now``; none reads the clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.model.systems import agency_uri, parse_agency_uri

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CRL = "crl.pem"
GATEWAY_CERT = "gateway.crt"
GATEWAY_KEY = "gateway.key"
ISSUED_DIR = "issued"

CA_DAYS = 3650
GATEWAY_DAYS = 825
AGENCY_DAYS = 365
CRL_DAYS = 365
# Certificates are back-dated a little so a peer whose clock runs slow
# does not see a brand-new certificate as not yet valid.
BACKDATE = dt.timedelta(minutes=5)

REVOCATION_REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
}


class PKIError(Exception):
    """A certificates directory, certificate or key cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class IssuedCertificate:
    """One certificate issued by the deployment CA, as ``certs list`` shows it."""

    serial: str
    agency: str | None
    name: str
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None


# Small helpers ---------------------------------------------------------------------


def serial_hex(serial: int) -> str:
    """Return a serial number as the upper-case hex string ``certs list`` shows."""
    return format(serial, "X")


def parse_serial(text: str) -> int:
    """Return the serial number written as hex (colons allowed), or raise :class:`PKIError`."""
    cleaned = text.strip().replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return int(cleaned, 16)
    except ValueError:
        raise PKIError(f"serial {text!r} is not a hexadecimal number (as shown by 'gateway certs list')") from None


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM readable by its owner only (0600).

    Raises :class:`PKIError` when ``path`` already exists: keys are never
    overwritten silently.
    """
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PKIError(f"{path} already exists; refusing to overwrite a private key") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def _write_atomic(path: Path, data: bytes) -> None:
    # Readers (the TLS server watching the CRL) must never see half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM))


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Return every certificate in a PEM file, leaf first; raise :class:`PKIError` if none."""
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except FileNotFoundError:
        raise PKIError(f"{path}: no such certificate file") from None
    except ValueError as exc:
        raise PKIError(f"{path}: not a PEM certificate file ({exc})") from None
    return certs


def load_certificate(path: Path) -> x509.Certificate:
    """Return the first certificate in a PEM file; raise :class:`PKIError` if none."""
    return load_certificates(path)[0]


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Return the P-256 private key in a PEM file; raise :class:`PKIError` otherwise."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise PKIError(f"{path}: no such key file") from None
    except (ValueError, TypeError) as exc:
        raise PKIError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise PKIError(f"{path}: the key must be an EC P-256 key (ES256)")
    return key


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """Return the CRL in a PEM file; raise :class:`PKIError` otherwise."""
    try:
        return x509.load_pem_x509_crl(Path(path).read_bytes())
    except FileNotFoundError:
        raise PKIError(f"{path}: no such CRL file") from None
    except ValueError as exc:
        raise PKIError(f"{path}: not a PEM CRL ({exc})") from None


def certificate_agency(cert: x509.Certificate) -> str | None:
    """Return the agency URI in the certificate's SAN, or ``None`` when it has none.

    Exactly one ``urn:x-safeguarding:agency:`` URI is allowed; a certificate
    naming two agencies is treated as naming none.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    agencies = [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
                if parse_agency_uri(uri) is not None]
    return agencies[0] if len(agencies) == 1 else None


@functools.lru_cache(maxsize=1024)
def der_certificate_agency(der: bytes) -> str | None:
    """:func:`certificate_agency` of a DER certificate (a TLS peer's); cached, as the same few agencies
    connect all day. Only the parse is cached: the handshake checks validity and revocation first."""
    return certificate_agency(x509.load_der_x509_certificate(der))


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return value.astimezone(dt.timezone.utc)


def _san(agency: str, hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(agency)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


# The CA ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertificateAuthority:
    """The deployment CA of one certificates directory."""

    directory: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def open(cls, directory: Path) -> "CertificateAuthority":
        """Return the CA in ``directory``; raise :class:`PKIError` if it has none."""
        directory = Path(directory)
        if not (directory / CA_CERT).is_file() or not (directory / CA_KEY).is_file():
            raise PKIError(f"{directory} holds no deployment CA ({CA_CERT}, {CA_KEY}); "
                           f"create one with 'gateway certs init {directory}'")
        return cls(directory, load_certificate(directory / CA_CERT), load_private_key(directory / CA_KEY))

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL

    def issue(self, *, kind: str, code: str, name: str, now: dt.datetime, days: int = AGENCY_DAYS,
              hosts: Sequence[str] = (), key: ec.EllipticCurvePrivateKey | None = None,
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Return a new certificate for agency ``kind:code`` and its (new) key.

        The certificate is valid from ``now`` (less a few minutes) for
        ``days`` days, is good for TLS client and server use and for signing
        messages, and names the agency as a SAN URI plus any ``hosts``
        (DNS names or IP addresses) the agency serves on. A copy is kept in
        ``issued/``. Raises :class:`ValueError` for an unknown kind and
        :class:`PKIError` for a bad validity.
        """
        now = _aware(now)
        if days < 1:
            raise PKIError(f"--days must be at least 1, not {days}")
        uri = agency_uri(kind, code)
        key = key or ec.generate_private_key(ec.SECP256R1())
        not_before = now - BACKDATE
        not_after = min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(_san(uri, hosts), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = self.directory / ISSUED_DIR
        issued.mkdir(exist_ok=True)
        _write_cert(issued / f"{serial_hex(cert.serial_number)}.crt", cert)
        return cert, key

    def issued(self) -> list[x509.Certificate]:
        """Return every certificate this CA issued, oldest first."""
        folder = self.directory / ISSUED_DIR
        certs = [load_certificate(path) for path in sorted(folder.glob("*.crt"))] if folder.is_dir() else []
        return sorted(certs, key=lambda cert: (cert.not_valid_before_utc, cert.serial_number))

    def revoked(self) -> dict[int, x509.RevokedCertificate]:
        """Return the CRL's entries by serial number (empty when there is no CRL yet)."""
        if not self.crl_path.is_file():
            return {}
        return {entry.serial_number: entry for entry in load_crl(self.crl_path)}

    def write_crl(self, *, now: dt.datetime, revoke: Iterable[int] = (), reason: str = "unspecified",
                  days: int = CRL_DAYS) -> x509.CertificateRevocationList:
        """Write a fresh CRL with the current entries plus ``revoke``, and return it.

        The file is replaced atomically, so a server watching it picks up
        the new list on its next connection. Raises :class:`PKIError` for
        an unknown ``reason``.
        """
        now = _aware(now)
        if reason not in REVOCATION_REASONS:
            raise PKIError(f"unknown revocation reason {reason!r}; expected one of {', '.join(REVOCATION_REASONS)}")
        entries = self.revoked()
        for serial in revoke:
            if serial in entries:
                continue
            builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
            flag = REVOCATION_REASONS[reason]
            if flag is not x509.ReasonFlags.unspecified:
                builder = builder.add_extension(x509.CRLReason(flag), critical=False)
            entries[serial] = builder.build()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        )
        for entry in entries.values():
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self.key, hashes.SHA256())
        _write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return crl

    def listing(self) -> list[IssuedCertificate]:
        """Return what ``certs list`` shows: every issued certificate and its revocation."""
        revoked = self.revoked()
        rows = []
        for cert in self.issued():
            entry = revoked.get(cert.serial_number)
            reason = None
            if entry is not None:
                reason = "unspecified"
                try:
                    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
                except x509.ExtensionNotFound:
                    pass
            common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            rows.append(IssuedCertificate(
                serial=serial_hex(cert.serial_number), agency=certificate_agency(cert),
                name=str(common_name[0].value) if common_name else "",
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                revoked_at=entry.revocation_date_utc if entry is not None else None, revocation_reason=reason))
        return rows


def create_deployment(directory: Path, *, now: dt.datetime, name: str = "Safeguarding gateway (development)",
                      gateway_code: str = "national", hosts: Sequence[str] = ("localhost", "127.0.0.1"),
                      ) -> CertificateAuthority:
    """Create a deployment CA, the gateway's certificate and an empty CRL in ``directory``.

    Returns the new CA. Raises :class:`PKIError` when ``directory``
    already holds any of the files (nothing is overwritten).
    """
    now = _aware(now)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    existing = [n for n in (CA_CERT, CA_KEY, CRL, GATEWAY_CERT, GATEWAY_KEY) if (directory / n).exists()]
    if existing:
        raise PKIError(f"{directory} already holds {', '.join(existing)}; refusing to overwrite. "
                       "Use an empty directory.")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"{name} deployment CA", "Safeguarding gateway")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private_key(directory / CA_KEY, key)
    _write_cert(directory / CA_CERT, ca_cert)
    ca = CertificateAuthority(directory, ca_cert, key)
    ca.write_crl(now=now)
    cert, gateway_key = ca.issue(kind="gateway", code=gateway_code, name=f"{name} gateway", now=now,
                                 days=GATEWAY_DAYS, hosts=hosts)
    write_private_key(directory / GATEWAY_KEY, gateway_key)
    _write_cert(directory / GATEWAY_CERT, cert)
    return ca


def write_issued(prefix: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """Write ``PREFIX.crt`` and ``PREFIX.key`` (0600) and return both paths.

    Raises :class:`PKIError` when the key file already exists.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = Path(f"{prefix}.crt"), Path(f"{prefix}.key")
    write_private_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path

"""Put the calling agency, from its verified TLS certificate, into the WSGI environ.

gunicorn gives the application its connection as ``environ["gunicorn.socket"]``
(undocumented, so it is kept in this one place and covered by an
integration test). On an mTLS connection the certificate there has already
been verified in the handshake (chain, validity, CRL). Nothing in the
request itself can set these keys: HTTP headers arrive as ``HTTP_*``.

The handshake judged the certificate when the connection opened; a keep-alive
connection can outlive a revocation. So every request is also checked
against the CRL as it is now (:class:`CurrentRevocations`): a certificate
revoked since the connection opened gets 401, on that connection too.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from gateway.signing import pki
from gateway.signing.pki import der_certificate_agency
from gateway.transport.watch import Reloading

AGENCY_KEY = "gateway.agency"                   # urn:x-safeguarding:agency:<kind>:<code>, or absent
CERTIFICATE_KEY = "gateway.client_certificate"  # the peer certificate (DER), or absent
FHIR_JSON = "application/fhir+json"


def peer_certificate(environ: dict) -> bytes | None:
    """Return the verified peer certificate (DER) of the request's connection, or ``None``."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return getpeercert(binary_form=True) or None
    except (ValueError, OSError):  # not connected, or no handshake done
        return None


@functools.lru_cache(maxsize=1024)
def der_certificate_serial(der: bytes) -> int:
    """Return a DER certificate's serial number (cached: the same few agencies connect all day)."""
    return x509.load_der_x509_certificate(der).serial_number


class CurrentRevocations:
    """The serial numbers the deployment CA's CRL revokes now, re-read only when the CA or CRL file changes.

    Checking costs one ``stat`` per file and a set look-up.
    """

    def __init__(self, ca_file: Path, crl_file: Path):
        self.ca_file, self.crl_file = Path(ca_file), Path(crl_file)
        self._current = Reloading([self.ca_file, self.crl_file], self._load)

    def _load(self) -> tuple[frozenset[int], dt.datetime]:
        from gateway.signing.signatures import TrustAnchor  # checks the CRL is the CA's, signature included

        crl = TrustAnchor.from_files(self.ca_file, self.crl_file).crl
        return frozenset(entry.serial_number for entry in crl), crl.next_update_utc

    def is_revoked(self, serial: int, *, now: dt.datetime) -> bool:
        """Return whether ``serial`` is revoked by the current CRL.

        Raises :class:`~gateway.signing.pki.PKIError` (or :class:`OSError`)
        when the CRL cannot be read, is not the CA's, or is past its next
        update at ``now``: the caller fails closed.
        """
        serials, next_update = self._current.get()
        if next_update is not None and now > next_update:
            raise pki.PKIError(f"{self.crl_file}: the CRL was due to be re-issued at {next_update.isoformat()}; "
                               "run 'gateway certs crl'")
        return serial in serials


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _refuse(start_response, status: str, code: str, text: str) -> list[bytes]:
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": text, "details": {"text": text}}]}).encode()
    start_response(status, [("Content-Type", FHIR_JSON), ("Content-Length", str(len(body)))])
    return [body]


class ClientCertificateMiddleware:
    """WSGI middleware: sets :data:`AGENCY_KEY` and :data:`CERTIFICATE_KEY` from the TLS peer.

    With ``revocations``, a peer certificate the current CRL revokes is
    answered 401 (an OperationOutcome) before the app runs, and 503 when the
    CRL cannot be read (fail closed, as the handshake does).
    """

    def __init__(self, app, revocations: CurrentRevocations | None = None,
                 clock: Callable[[], dt.datetime] = _system_clock):
        self.app = app
        self.revocations = revocations
        self.clock = clock

    def __call__(self, environ, start_response):
        environ.pop(AGENCY_KEY, None)
        environ.pop(CERTIFICATE_KEY, None)
        der = peer_certificate(environ)
        if der is not None:
            if self.revocations is not None:
                serial = der_certificate_serial(der)
                try:
                    revoked = self.revocations.is_revoked(serial, now=self.clock())
                except (pki.PKIError, OSError) as exc:
                    environ["wsgi.errors"].write(f"cannot check client certificates' revocation: {exc}\n")
                    return _refuse(start_response, "503 Service Unavailable", "transient",
                                   "the gateway cannot check certificate revocation at the moment; try again later")
                if revoked:
                    return _refuse(start_response, "401 Unauthorized", "login",
                                   f"the client certificate (serial {pki.serial_hex(serial)}) has been revoked; "
                                   "connect with a current certificate issued by the deployment CA")
            environ[CERTIFICATE_KEY] = der
            agency = der_certificate_agency(der)
            if agency is not None:
                environ[AGENCY_KEY] = agency
        return self.app(environ, start_response)

"""Put the calling agency, from its verified TLS certificate, into the WSGI environ.

gunicorn gives the application its connection as ``environ["gunicorn.socket"]``
(undocumented, so it is kept in this one place and covered by an
integration test). On an mTLS connection the certificate there has already
been verified in the handshake (chain, validity, CRL). Nothing in the
request itself can set these keys: HTTP headers arrive as ``HTTP_*``.
"""

from __future__ import annotations

from gateway.signing.pki import der_certificate_agency

AGENCY_KEY = "gateway.agency"                   # urn:x-safeguarding:agency:<kind>:<code>, or absent
CERTIFICATE_KEY = "gateway.client_certificate"  # the peer certificate (DER), or absent


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


class ClientCertificateMiddleware:
    """WSGI middleware: sets :data:`AGENCY_KEY` and :data:`CERTIFICATE_KEY` from the TLS peer."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop(AGENCY_KEY, None)
        environ.pop(CERTIFICATE_KEY, None)
        der = peer_certificate(environ)
        if der is not None:
            environ[CERTIFICATE_KEY] = der
            agency = der_certificate_agency(der)
            if agency is not None:
                environ[AGENCY_KEY] = agency
        return self.app(environ, start_response)

"""TLS contexts for mutual TLS with the deployment CA only, CRL checked and reloaded.

Both directions use one recipe: TLS 1.2 or later, the deployment CA as the
only trust anchor (never the system store), the peer's certificate checked
against the CA's CRL, and the context rebuilt when the CRL file changes, so
a revocation takes effect on the next connection without a restart. A new
context also has new session-ticket keys, so a revoked client cannot resume
a session made before its revocation.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from gateway.transport.watch import Reloading


def _harden(context: ssl.SSLContext, ca_file: Path, crl_file: Path | None) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if crl_file is not None:
        context.load_verify_locations(cafile=str(crl_file))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def server_context(*, ca_file: Path, cert_file: Path, key_file: Path, crl_file: Path | None) -> ssl.SSLContext:
    """Return a server context that requires a client certificate from ``ca_file``'s CA, not revoked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    context.load_verify_locations(cafile=str(ca_file))
    return _harden(context, ca_file, crl_file)


def client_context(*, ca_file: Path, cert_file: Path, key_file: Path, crl_file: Path | None,
                   check_hostname: bool = True) -> ssl.SSLContext:
    """Return a client context presenting ``cert_file`` and trusting only ``ca_file``'s CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    context.load_cert_chain(str(cert_file), str(key_file))
    context.load_verify_locations(cafile=str(ca_file))
    return _harden(context, ca_file, crl_file)


class GunicornSSLContext:
    """gunicorn's documented ``ssl_context`` hook, returning a context rebuilt when the CRL changes.

    gunicorn asks for a context for every new connection (in the worker
    thread that does the handshake); this answers from a cache while the
    CA, certificate, key and CRL files are unchanged. A missing or broken
    CRL fails closed: the connection is refused.
    """

    def __init__(self, *, ca_file: Path, cert_file: Path, key_file: Path, crl_file: Path):
        self.files = dict(ca_file=Path(ca_file), cert_file=Path(cert_file), key_file=Path(key_file),
                          crl_file=Path(crl_file))
        self._context = Reloading(list(self.files.values()), lambda: server_context(**self.files))

    def __call__(self, conf, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        # The default factory would load the files again on every connection;
        # the cached context carries the same settings plus the CRL.
        return self._context.get()

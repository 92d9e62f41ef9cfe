"""The production server: gunicorn, ``gthread`` worker, mutual TLS.

Why gunicorn gthread (see docs/trust.md): the TLS handshake runs in a worker
thread, so a client that connects and stays silent holds one thread, not
the whole server; its ``ssl_context`` hook lets us add the CRL and is asked
for every connection, so the CRL is re-read without a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from gunicorn.app.base import BaseApplication

from gateway.config import Settings
from gateway.signing import pki
from gateway.transport.middleware import ClientCertificateMiddleware, CurrentRevocations
from gateway.transport.tls import GunicornSSLContext


class GatewayServer(BaseApplication):
    """gunicorn serving :func:`gateway.app.create_app` behind :class:`ClientCertificateMiddleware`."""

    def __init__(self, settings: Settings, *, host: str, port: int, workers: int = 1, threads: int = 16,
                 access_log: str | None = "-"):
        self.settings = settings
        certs = Path(settings.certs_dir)
        files = dict(ca_file=certs / pki.CA_CERT, cert_file=certs / pki.GATEWAY_CERT,
                     key_file=certs / pki.GATEWAY_KEY, crl_file=certs / pki.CRL)
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise pki.PKIError(f"missing {', '.join(missing)}; create them with 'gateway certs init {certs}'")
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "worker_class": "gthread",
            "workers": workers,
            "threads": threads,
            "certfile": str(files["cert_file"]),
            "keyfile": str(files["key_file"]),
            "ca_certs": str(files["ca_file"]),
            "cert_reqs": ssl.CERT_REQUIRED,
            "ssl_context": GunicornSSLContext(**files),
            "accesslog": access_log,
            "errorlog": "-",
            "graceful_timeout": 10,
            "proc_name": "safeguarding-gateway",
            # gunicorn >= 25.1 opens a control socket at one fixed path per
            # user; the gateway does not use it and instances would collide.
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # control_socket_disable is newer than gunicorn 22
                self.cfg.set(key, value)

    def load(self):
        # In the worker, after the fork: database engines are not shared
        # between processes.
        from gateway.app import create_app
        from gateway.runtime import settle
        from gateway.transport.views import warm_up

        app = create_app(self.settings)
        settle(lambda: warm_up(app))  # the start-up heap leaves garbage collection (gateway.runtime)
        certs = Path(self.settings.certs_dir)
        # Every request, not only each handshake: a keep-alive connection can outlive a revocation.
        return ClientCertificateMiddleware(app, CurrentRevocations(certs / pki.CA_CERT, certs / pki.CRL))

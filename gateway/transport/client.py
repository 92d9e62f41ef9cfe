"""The outbound mTLS client: the gateway calling an agency's endpoint.

It presents the gateway's certificate, trusts only the deployment CA (never
the system store, whatever ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` say),
checks the endpoint's certificate against the CRL and, when told which
agency it is calling, that the certificate is that agency's. Connections are
kept alive and reused, per host, across threads.

Built on :mod:`http.client` rather than ``requests`` because the endpoint's
certificate must be read after the handshake to check the agency, which
``requests`` does not expose.
"""

from __future__ import annotations

import dataclasses
import http.client
import select
import ssl
import threading
import urllib.parse
from collections import defaultdict
from pathlib import Path

from gateway.signing import pki
from gateway.transport.tls import client_context
from gateway.transport.watch import Reloading


class DeliveryError(Exception):
    """The endpoint could not be reached, or is not who it must be."""


@dataclasses.dataclass(frozen=True)
class Reply:
    """An endpoint's answer, and the agency its certificate names."""

    status: int
    headers: dict[str, str]
    body: bytes
    peer_agency: str | None


class AgencyClient:
    """Make HTTPS requests to agency endpoints over mutual TLS, reusing connections.

    ``AgencyClient.for_certs_dir(DIR)`` uses the gateway's files in a
    certificates directory. Use it as a context manager, or call
    :meth:`close`.

    ``connect_timeout`` bounds the TCP connection and the TLS handshake (an
    endpoint that accepts connections and never answers is given up on
    after it; default: ``timeout``); ``timeout`` bounds each wait for the
    endpoint once connected (sending, and reading its answer).
    """

    def __init__(self, *, ca_file: Path, cert_file: Path, key_file: Path, crl_file: Path | None = None,
                 timeout: float = 30.0, connect_timeout: float | None = None, reuse_connections: bool = True):
        files = dict(ca_file=Path(ca_file), cert_file=Path(cert_file), key_file=Path(key_file),
                     crl_file=Path(crl_file) if crl_file else None)
        self._context = Reloading([p for p in files.values() if p is not None], lambda: client_context(**files))
        self._context.get()  # fail now, not at the first delivery, when a file is unusable
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.reuse_connections = reuse_connections
        self._idle: dict[tuple[str, int], list[http.client.HTTPSConnection]] = defaultdict(list)
        self._lock = threading.Lock()

    @classmethod
    def for_certs_dir(cls, directory: Path, **options) -> "AgencyClient":
        """Return a client presenting the gateway certificate of a ``gateway certs init`` directory."""
        directory = Path(directory)
        return cls(ca_file=directory / pki.CA_CERT, cert_file=directory / pki.GATEWAY_CERT,
                   key_file=directory / pki.GATEWAY_KEY, crl_file=directory / pki.CRL, **options)

    def __enter__(self) -> "AgencyClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            connections = [c for pool in self._idle.values() for c in pool]
            self._idle.clear()
        for connection in connections:
            connection.close()

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, expected_agency: str | None = None) -> Reply:
        """Send one request and return the endpoint's :class:`Reply`.

        With ``expected_agency``, the endpoint's certificate must name that
        agency. A kept-alive connection the endpoint has closed meanwhile is
        not used (:meth:`_checkout` looks first); one that closes as the
        request goes out is replaced by a new connection once. Raises
        :class:`DeliveryError` when the endpoint cannot be reached, its
        certificate is not trusted, or it is another agency.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise DeliveryError(f"{url}: agency endpoints must be https:// URLs")
        target = (parts.hostname, parts.port or 443)
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = {"Connection": "keep-alive" if self.reuse_connections else "close", **(headers or {})}
        for attempt in (1, 2):
            # The second attempt never takes another idle connection: those are as old as the first.
            connection, reused = self._checkout(target, fresh=attempt == 2)
            waiting = "to connect"
            try:
                if connection.sock is None:
                    connection.connect()  # with the connection's timeout: connect_timeout
                    connection.sock.settimeout(self.timeout)
                waiting = "for the answer"
                peer_agency = self._peer_agency(connection, expected_agency, url)
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
                # A TLS endpoint that closed an idle kept-alive connection shows up as an EOF.
                connection.close()
                if reused and attempt == 1:
                    continue  # the endpoint closed an idle connection; try a fresh one
                raise DeliveryError(f"{url}: connection lost ({exc})") from None
            except ssl.SSLCertVerificationError as exc:
                connection.close()
                raise DeliveryError(f"{url}: the endpoint's certificate is not trusted: {exc.verify_message}") from None
            except TimeoutError:
                connection.close()
                limit = self.connect_timeout if waiting == "to connect" else self.timeout
                raise DeliveryError(f"{url}: timed out after {limit:g} s waiting {waiting}") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise DeliveryError(f"{url}: {exc}") from None
            except DeliveryError:
                connection.close()
                raise
            reply = Reply(response.status, dict(response.getheaders()), data, peer_agency)
            if self.reuse_connections and not response.will_close:
                self._checkin(target, connection)
            else:
                connection.close()
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _checkout(self, target: tuple[str, int], *, fresh: bool = False) -> tuple[http.client.HTTPSConnection, bool]:
        """An idle connection to ``target`` that is still open (the most recently used first), else a new one."""
        while not fresh:
            with self._lock:
                pool = self._idle.get(target)
                if not pool:
                    break
                connection = pool.pop()
            if not _dropped(connection):
                return connection, True
            connection.close()
        connection = http.client.HTTPSConnection(target[0], target[1], timeout=self.connect_timeout,
                                                 context=self._context.get())
        return connection, False

    def _checkin(self, target: tuple[str, int], connection: http.client.HTTPSConnection) -> None:
        with self._lock:
            self._idle[target].append(connection)

    @staticmethod
    def _peer_agency(connection: http.client.HTTPSConnection, expected: str | None, url: str) -> str | None:
        der = connection.sock.getpeercert(binary_form=True)
        agency = pki.der_certificate_agency(der) if der else None
        if expected is not None and agency != expected:
            raise DeliveryError(f"{url}: the endpoint's certificate is {agency or 'no agency'}'s, not {expected}'s")
        return agency


def _dropped(connection: http.client.HTTPSConnection) -> bool:
    """Whether the endpoint has closed an idle connection (as urllib3 checks before reusing one).

    Between requests nothing is owed on a kept-alive connection, so a socket
    with something to read holds the endpoint's close (EOF or TLS
    close_notify). Servers close idle connections after their own keep-alive
    time (gunicorn: 2 s), and sending a delivery into one would fail it.
    """
    sock = connection.sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))

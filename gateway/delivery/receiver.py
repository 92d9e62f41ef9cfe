"""A small receiving endpoint for agencies: verify, apply each message id once, acknowledge.

It is what an agency's system must do to receive pushed messages, in a
form the demo and the fault tests run as the agencies' endpoints:

* mutual TLS (gunicorn ``gthread``, like ``gateway serve``), with the
  agency's own certificate; only a gateway may post;
* every signature is verified against the deployment CA
  (:func:`gateway.signing.verify_message`); an untrusted message is
  answered ``fatal-error`` (sending it again cannot help);
* each message id is applied ONCE: the ids are kept in the receiver's own
  SQLite file, and a message id seen before is acknowledged again without
  being applied again. The gateway delivers at least once (a worker that
  dies after the message arrived but before it recorded the answer sends it
  again), so this is what makes each message count once;
* the answer is a FHIR response message (``MessageHeader.response.code``
  ``ok``) for the message's ``MessageHeader.id``.

Run it with ``python -m gateway.delivery.receiver --certs DIR --identity PREFIX
--receipts FILE [--host H] [--port P]`` (PREFIX.crt and PREFIX.key are the
agency's certificate and key, e.g. from ``gateway certs issue``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, request
from gunicorn.app.base import BaseApplication

from gateway.delivery.responses import response_message
from gateway.model.systems import parse_agency_uri
from gateway.runtime import settle
from gateway.signing import pki
from gateway.signing.messages import message_header, message_id
from gateway.signing.signatures import TrustAnchor, UntrustedMessage, verify_message
from gateway.transport.intake import FHIR_JSON
from gateway.transport.middleware import AGENCY_KEY, ClientCertificateMiddleware
from gateway.transport.tls import GunicornSSLContext
from gateway.transport.watch import Reloading
from gateway.web import operation_outcome

HOLD_LIMIT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Receipt:
    """One message id at a receiver: when it was first applied and how many times it was received."""

    message_id: str
    sender: str | None
    applied_at: str
    receipts: int


class ReceiptLog:
    """The receiver's record of applied message ids, in its own SQLite file (safe across threads and processes)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS applied (message_id TEXT PRIMARY KEY, sender TEXT, "
                               "applied_at TEXT NOT NULL, receipts INTEGER NOT NULL)")
            connection.execute("CREATE TABLE IF NOT EXISTS received (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                               "message_id TEXT, at TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        return connection

    def _thread_connection(self) -> sqlite3.Connection:
        """This thread's own connection, opened once (the server's threads live as long as it does)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def received(self, message_id: str | None, now: dt.datetime) -> None:
        """Count one HTTP receipt of ``message_id`` that will not be applied (unreadable or untrusted)."""
        self._thread_connection().execute("INSERT INTO received (message_id, at) VALUES (?, ?)",
                                          (message_id, now.isoformat()))

    def apply_once(self, message_id: str, sender: str | None, now: dt.datetime) -> bool:
        """Count the receipt and record ``message_id`` as applied, in one transaction; return ``True``
        the first time, ``False`` for a resubmission (it is counted, not applied again)."""
        connection = self._thread_connection()
        # One writer at a time in this process: a thread waiting on a Python lock wakes as soon as it is
        # free, while one waiting on SQLite's busy handler sleeps in steps of up to 100 ms.
        with self._write_lock:
            return self._apply_once(connection, message_id, sender, now)

    @staticmethod
    def _apply_once(connection: sqlite3.Connection, message_id: str, sender: str | None, now: dt.datetime) -> bool:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("INSERT INTO received (message_id, at) VALUES (?, ?)", (message_id, now.isoformat()))
            updated = connection.execute("UPDATE applied SET receipts = receipts + 1 WHERE message_id = ?",
                                         (message_id,)).rowcount
            if not updated:
                connection.execute("INSERT INTO applied (message_id, sender, applied_at, receipts) VALUES (?, ?, ?, 1)",
                                   (message_id, sender, now.isoformat()))
            connection.execute("COMMIT")
            return not updated
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def applied(self) -> list[Receipt]:
        """Return every applied message id, in the order they were first applied."""
        connection = self._connect()
        try:
            rows = connection.execute("SELECT message_id, sender, applied_at, receipts FROM applied "
                                      "ORDER BY applied_at, message_id").fetchall()
        finally:
            connection.close()
        return [Receipt(*row) for row in rows]

    def raw_counts(self) -> dict[str | None, int]:
        """Return how many HTTP requests carried each message id (``None``: unreadable bodies)."""
        connection = self._connect()
        try:
            rows = connection.execute("SELECT message_id, COUNT(*) FROM received GROUP BY message_id").fetchall()
        finally:
            connection.close()
        return dict(rows)


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_receiver_app(*, agency: str, trust: Callable[[], TrustAnchor], receipts: ReceiptLog,
                        clock: Callable[[], dt.datetime] = _system_clock, hold_file: Path | None = None) -> Flask:
    """Return the receiving endpoint's WSGI app for ``agency`` (serve it behind the mTLS middleware).

    ``POST /`` and ``POST /fhir/$process-message`` take a signed message
    Bundle. ``hold_file`` (tests only): while that file exists, the answer
    to a message is held back after it was applied (at most
    :data:`HOLD_LIMIT_SECONDS`), so a test can stop the sender mid-delivery.
    """
    app = Flask("gateway.delivery.receiver")

    def outcome(status: int, code: str, text: str) -> Response:
        return Response(json.dumps(operation_outcome("error", code, text)), status=status, mimetype=FHIR_JSON)

    def receive() -> Response:
        caller = request.environ.get(AGENCY_KEY)
        if caller is None:
            return outcome(401, "login", "no verified client certificate")
        parsed = parse_agency_uri(caller)
        if parsed is None or parsed[0] != "gateway":
            return outcome(403, "forbidden", f"{caller} is not a gateway; only the gateway delivers here")
        now = clock()
        try:
            bundle = json.loads(request.get_data(cache=False).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            receipts.received(None, now)
            return outcome(400, "invalid", "the body is not JSON")
        # Every arrival is counted (the raw count), before any check; an applied one with its applying.
        mid = message_id(bundle) if isinstance(bundle, dict) else None
        header = message_header(bundle) if isinstance(bundle, dict) else None
        if mid is None or header is None or not isinstance(header.get("id"), str):
            receipts.received(mid, now)
            return outcome(400, "structure", "not a message Bundle with an id and a MessageHeader.id")
        try:
            verified = verify_message(bundle, trust(), now=now)
        except UntrustedMessage as exc:
            receipts.received(mid, now)
            answer = response_message(answers=header["id"], code="fatal-error", source=agency, destination=caller,
                                      now=now, text=f"signature not trusted: {exc} ({exc.reason})")
            return Response(json.dumps(answer), status=422, mimetype=FHIR_JSON)
        sender = (verified.sender_signature or verified.signature).agency
        first = receipts.apply_once(mid, sender, now)
        app.logger.info("%s message %s from %s", "applied" if first else "already applied", mid, sender)
        if hold_file is not None:
            deadline = time.monotonic() + HOLD_LIMIT_SECONDS
            while hold_file.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        text = None if first else f"message {mid} was already received; applied once"
        answer = response_message(answers=header["id"], code="ok", source=agency, destination=caller, now=now,
                                  text=text)
        return Response(json.dumps(answer), status=200, mimetype=FHIR_JSON)

    app.add_url_rule("/", "receive", receive, methods=["POST"])
    app.add_url_rule("/fhir/$process-message", "process_message", receive, methods=["POST"])
    return app


class ReceiverServer(BaseApplication):
    """gunicorn (gthread, mutual TLS) serving :func:`create_receiver_app` with an agency's certificate."""

    def __init__(self, *, certs_dir: Path, identity: Path, receipts: Path, host: str = "127.0.0.1", port: int = 9443,
                 threads: int = 8, hold_file: Path | None = None):
        certs_dir, identity = Path(certs_dir), Path(identity)
        files = dict(ca_file=certs_dir / pki.CA_CERT, cert_file=identity.with_name(identity.name + ".crt"),
                     key_file=identity.with_name(identity.name + ".key"), crl_file=certs_dir / pki.CRL)
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise pki.PKIError(f"missing {', '.join(missing)}")
        self.agency = pki.certificate_agency(pki.load_certificate(files["cert_file"]))
        if self.agency is None:
            raise pki.PKIError(f"{files['cert_file']} names no agency")
        self.files, self.receipts_path, self.hold_file = files, Path(receipts), hold_file
        self.options = {
            "bind": f"{host}:{port}", "worker_class": "gthread", "workers": 1, "threads": threads,
            "certfile": str(files["cert_file"]), "keyfile": str(files["key_file"]), "ca_certs": str(files["ca_file"]),
            "cert_reqs": ssl.CERT_REQUIRED, "ssl_context": GunicornSSLContext(**files), "accesslog": None,
            "errorlog": "-", "graceful_timeout": 5, "proc_name": f"receiver {self.agency}",
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        files = self.files
        trust = Reloading([files["ca_file"], files["crl_file"]],
                          lambda: TrustAnchor.from_files(files["ca_file"], files["crl_file"]))
        app = create_receiver_app(agency=self.agency, trust=trust.get, receipts=ReceiptLog(self.receipts_path),
                                  hold_file=self.hold_file)
        settle(trust.get)  # the start-up heap leaves garbage collection (gateway.runtime)
        return ClientCertificateMiddleware(app)


def hang(host: str, port: int) -> None:
    """Stand in for a hung endpoint (tests and fault benchmarks): accept TCP connections, never answer.

    A sender's TLS handshake waits for an answer that never comes; only its
    own timeout ends the attempt. The connections are held open until the
    process is stopped.
    """
    held = []
    with socket.create_server((host, port), backlog=128) as server:
        while True:
            connection, _ = server.accept()
            held.append(connection)


def main(argv: list[str] | None = None) -> int:
    """Run a receiving endpoint from the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gateway.delivery.receiver", description=__doc__.split("\n")[0])
    parser.add_argument("--certs", type=Path, required=True, help="deployment certificates directory (CA, CRL)")
    parser.add_argument("--identity", type=Path, required=True,
                        help="PREFIX of the agency's certificate and key (PREFIX.crt, PREFIX.key)")
    parser.add_argument("--receipts", type=Path, required=True, help="SQLite file of applied message ids")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--hold-file", type=Path, help=argparse.SUPPRESS)  # tests: hold answers while it exists
    parser.add_argument("--hang", action="store_true", help=argparse.SUPPRESS)  # tests: accept, never answer
    args = parser.parse_args(argv)
    if args.hang:
        hang(args.host, args.port)
    try:
        server = ReceiverServer(certs_dir=args.certs, identity=args.identity, receipts=args.receipts, host=args.host,
                                port=args.port, threads=args.threads, hold_file=args.hold_file)
    except pki.PKIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

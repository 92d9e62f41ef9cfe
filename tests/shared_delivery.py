"""Delivery fixtures shared by tests/delivery and tests/audit: signers, LA 999's identity, accepting a message
through an outbox step, and real receiving endpoints.

Registered once for the whole run by ``pytest_plugins`` in tests/conftest.py (a test module that imported
these fixtures would make second copies of the session-scoped ones); import the constants and plain
helpers from here: ``from tests.shared_delivery import LA, T0, StaticDirectory``.

A receiving endpoint is a real ``python -m gateway.delivery.receiver``
process (gunicorn, mutual TLS) on 127.0.0.1 with an agency certificate of
the deployment PKI; tests read what it applied from its receipts file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.demo.processes import free_port
from gateway.delivery.outbox import outbox_step
from gateway.delivery.receiver import ReceiptLog
from gateway.routing import Agency, PlannedDelivery
from gateway.signing import Signer, countersign_message, sign_message
from gateway.store import AcceptedMessage, SqlMessageStore

START_TIMEOUT = 30.0

SCHOOL = "urn:x-safeguarding:agency:school:999101"
POLICE = "urn:x-safeguarding:agency:police:TST"
LA = "urn:x-safeguarding:agency:la:999"
LA2 = "urn:x-safeguarding:agency:la:998"
GATEWAY = "urn:x-safeguarding:agency:gateway:national"
# Certificates are valid from when the test run made them: the injected clock starts at the real now.
T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class StaticDirectory:
    """A directory held in memory: the agencies delivery looks up (the SQL one is routing's, tested there)."""

    def __init__(self, *agencies: Agency):
        self.agencies = {agency.uri: agency for agency in agencies}

    def add(self, agency: Agency) -> None:
        self.agencies[agency.uri] = agency

    def agency(self, uri: str) -> Agency | None:
        return self.agencies.get(uri)

    def __call__(self, _session) -> "StaticDirectory":  # a DirectoryFactory: the same view in every transaction
        return self


def mailbox_agency(kind: str, code: str, name: str) -> Agency:
    return Agency(kind=kind, code=code, name=name, delivery="mailbox")


def push_agency(kind: str, code: str, name: str, endpoint: str) -> Agency:
    return Agency(kind=kind, code=code, name=name, delivery="push", endpoint=endpoint)


# Signing -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def gateway_signer(deployment) -> Signer:
    return Signer.from_files(deployment.dir / "gateway.crt", deployment.dir / "gateway.key")


@pytest.fixture(scope="session")
def school_signer(deployment) -> Signer:
    return Signer.from_files(f"{deployment.school}.crt", f"{deployment.school}.key")


@pytest.fixture(scope="session")
def la_identity(deployment) -> Path:
    """PREFIX of LA 999's certificate and key (a receiving agency)."""
    return deployment.issue(deployment.dir.parent / "la-999", kind="la", code="999",
                            name="Fictional Borough Children's Services", days=365)


@pytest.fixture
def accept(school_signer, gateway_signer, make_message):
    """Accept a school message through a step as the intake does; return ``(record, signed_bundle)``."""

    def run(store: SqlMessageStore, step, *, now: dt.datetime = T0, bundle: dict | None = None):
        bundle = bundle or make_message(SCHOOL, timestamp=now.isoformat())
        signed = countersign_message(sign_message(bundle, school_signer, now=now), gateway_signer, now=now)
        record = AcceptedMessage(
            message_id=bundle["identifier"]["value"], sender_agency=SCHOOL, received_at=now,
            message_timestamp=now, payload_sha256="0" * 64, raw_message=json.dumps(bundle),
            signed_message=json.dumps(signed), response_status=200, response_body="{}")
        with store.transaction() as unit:
            unit.messages.add(record)
            step(unit, record, signed)
        return record, signed

    return run


def to(*destinations: str, due: dt.datetime | None = None):
    """A routing function that sends the message as it is to each of ``destinations``."""

    def route(bundle: dict, now: dt.datetime, directory) -> list[PlannedDelivery]:
        return [PlannedDelivery(d, bundle, "test-rule", "sent by the test", due) for d in destinations]

    return route


@pytest.fixture
def step_to(gateway_signer):
    def make(directory: StaticDirectory, *destinations: str, due: dt.datetime | None = None,
             max_age: dt.timedelta = dt.timedelta(days=5)):
        return outbox_step(to(*destinations, due=due), directory, signer=lambda: gateway_signer, max_age=max_age)

    return make


# Receiving endpoints (real processes) ---------------------------------------------------------------

@dataclasses.dataclass
class Receiver:
    """A receiving endpoint process and what it recorded."""

    url: str
    port: int
    receipts_path: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def receipts(self) -> ReceiptLog:
        return ReceiptLog(self.receipts_path)

    def stop(self) -> None:
        stop_process(self.process)


def _answers(port: int, deployment) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(deployment.ca)
    context.load_cert_chain(deployment.dir / "gateway.crt", deployment.dir / "gateway.key")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return tls.recv(9).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def start_receiver(deployment, identity: Path, workdir: Path, *, port: int | None = None,
                   hold_file: Path | None = None) -> Receiver:
    """Start a receiving endpoint and wait (bounded) until it answers over mTLS."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"receiver-{port}.log"
    receipts = workdir / "receipts.sqlite3"
    args = [sys.executable, "-m", "gateway.delivery.receiver", "--certs", str(deployment.dir), "--identity",
            str(identity), "--receipts", str(receipts), "--port", str(port), "--threads", "8"]
    if hold_file is not None:
        args += ["--hold-file", str(hold_file)]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    receiver = Receiver(f"https://127.0.0.1:{port}/", port, receipts, log, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(port, deployment):
            return receiver
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"the receiver did not start on port {port}:\n{log.read_text()}")


def start_hung(deployment, identity: Path, workdir: Path, *, port: int | None = None) -> Receiver:
    """Start a hung endpoint (accepts TCP connections, never answers) and wait until it listens."""
    from gateway.demo.processes import wait_listening

    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"hung-{port}.log"
    args = [sys.executable, "-m", "gateway.delivery.receiver", "--certs", str(deployment.dir), "--identity",
            str(identity), "--receipts", str(workdir / "receipts.sqlite3"), "--port", str(port), "--hang"]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    hung = Receiver(f"https://127.0.0.1:{port}/", port, workdir / "receipts.sqlite3", log, process)
    try:
        wait_listening(port, timeout=START_TIMEOUT, process=process, name="the hung endpoint")
    except RuntimeError:
        stop_process(process)
        raise
    return hung


def stop_process(process: subprocess.Popen | None, *, kill: bool = False) -> None:
    """Stop a process this test started (SIGKILL with ``kill``), waiting a bounded time."""
    if process is None or process.poll() is not None:
        return
    process.kill() if kill else process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture
def receivers(deployment, tmp_path):
    """Start receiving endpoints with ``receivers.start(identity, ...)``; all are stopped after the test."""

    class Receivers:
        def __init__(self):
            self.started: list[Receiver] = []

        def start(self, identity: Path, *, name: str = "receiver", **options) -> Receiver:
            receiver = start_receiver(deployment, identity, tmp_path / name, **options)
            self.started.append(receiver)
            return receiver

        def hang(self, identity: Path, *, name: str = "hung", **options) -> Receiver:
            hung = start_hung(deployment, identity, tmp_path / name, **options)
            self.started.append(hung)
            return hung

    made = Receivers()
    yield made
    for receiver in made.started:
        receiver.stop()


def wait_until(predicate, *, timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``predicate`` until it holds; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

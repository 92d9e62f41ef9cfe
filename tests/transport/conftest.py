"""A real ``gateway serve`` (gunicorn, mTLS) on 127.0.0.1, for the whole run."""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.demo.processes import free_port
from gateway.store import schema

START_TIMEOUT = 30.0


@dataclasses.dataclass
class RunningServer:
    base_url: str
    port: int
    log: Path


def _ready(port: int, deployment) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(deployment.ca)
    context.load_cert_chain(f"{deployment.school}.crt", f"{deployment.school}.key")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /connection-check HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return tls.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_server(deployment, workdir: Path, *extra_env) -> tuple[subprocess.Popen, RunningServer]:
    """Start ``gateway serve`` and wait (bounded) until an mTLS request succeeds."""
    port = free_port()
    log = workdir / "server.log"
    database_url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
    schema.upgrade(database_url)  # `gateway serve` refuses a database not at the schema's head
    env = dict(os.environ, GATEWAY_DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--certs", str(deployment.dir), "--host", "127.0.0.1",
             "--port", str(port), "--threads", "4"], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _ready(port, deployment):
            return process, RunningServer(f"https://127.0.0.1:{port}", port, log)
        time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"gateway serve did not start on port {port}:\n{log.read_text()}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def gateway_server(deployment, tmp_path_factory):
    """The running server; its log is printed when a test using it fails to start."""
    process, server = start_server(deployment, tmp_path_factory.mktemp("server"))
    try:
        yield server
    finally:
        stop_server(process)


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on (just now)."""
    return free_port()

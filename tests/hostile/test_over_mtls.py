"""The limits on a real ``gateway serve`` (gunicorn gthread, mutual TLS) on 127.0.0.1: a chunked upload
refused as it passes the size limit (gunicorn ends chunked bodies itself: ``wsgi.input_terminated``),
JSON nested 10,000 deep, and one agency holding its requests open while another is served."""

from __future__ import annotations

import select
import socket
import ssl
import time

import pytest

from transport.conftest import start_server, stop_server

from .conftest import SAMPLES

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def limited_server(deployment, tmp_path_factory):
    """``gateway serve`` with a 1 MB body limit and one request in flight per agency."""
    patch = pytest.MonkeyPatch()
    patch.setenv("GATEWAY_MAX_REQUEST_BYTES", str(LIMIT))
    patch.setenv("GATEWAY_MAX_REQUESTS_PER_AGENCY", "1")
    try:
        process, server = start_server(deployment, tmp_path_factory.mktemp("limited-server"))
    finally:
        patch.undo()
    try:
        yield server
    finally:
        stop_server(process)


def _connect(server, deployment, prefix):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(deployment.ca)
    context.load_cert_chain(f"{prefix}.crt", f"{prefix}.key")
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _answer(tls, data: bytes = b"") -> tuple[int, bytes]:
    while True:
        try:
            chunk = tls.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _early_answer(tls, wait: float = 0.05) -> bytes:
    """What the server has sent within ``wait`` seconds, without waiting for more (b"" when nothing but TLS
    records)."""
    tls.settimeout(wait)
    try:
        return tls.recv(65536)
    except (TimeoutError, ssl.SSLWantReadError):
        return b""
    except (ConnectionResetError, ssl.SSLError):
        return b""
    finally:
        tls.settimeout(30)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _start_chunked(tls, path: str, content_type: str = "text/csv") -> None:
    tls.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: {content_type}\r\nConnection: close\r\n\r\n".encode())


def _send(tls, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    tls.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                f"Content-Type: {content_type}\r\nConnection: close\r\n\r\n".encode() + body)
    return _answer(tls)


def test_a_60_mib_chunked_upload_is_refused_at_the_limit(limited_server, deployment):
    header = (SAMPLES / "schoolsafe-sample.csv").read_bytes().split(b"\r\n", 1)[0] + b"\r\n"
    block = b"x" * 65536
    sent, early = 0, b""
    with _connect(limited_server, deployment, deployment.school) as tls:
        _start_chunked(tls, "/ingest/schoolsafe-csv")
        tls.sendall(_chunk(header))
        while sent < 60 * 2**20 and not early:
            if select.select([tls], [], [], 0)[0]:
                early = _early_answer(tls)  # readable: the answer, or only TLS housekeeping (session tickets)
                if early:
                    break
            try:
                tls.sendall(_chunk(block))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += len(block)
        else:
            if not early:
                tls.sendall(b"0\r\n\r\n")
        status, body = _answer(tls, early)
    assert status == 413, body[:300]
    assert b"GATEWAY_MAX_REQUEST_BYTES=1000000" in body
    assert sent < 8 * LIMIT  # refused as it passed the limit, not after reading the 60 MiB


def test_json_nested_10000_deep_is_400_over_mtls(limited_server, deployment):
    body = b'{"resourceType": "Bundle", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    with _connect(limited_server, deployment, deployment.school) as tls:
        status, answer = _send(tls, "/fhir/$process-message", body, "application/fhir+json")
    assert status == 400 and b"GATEWAY_MAX_NESTING_DEPTH=64" in answer


def _hold(server, deployment, prefix, path: str):
    """A connection of ``prefix``'s agency with a chunked request to ``path`` started and left open.

    The agency's request before it (the server's readiness check) may still hold its one place when this one
    arrives: the place is given back once the answer is sent, a moment after the client has read it. Then this
    one is refused 429 at once; so it is made again until it is not (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        held = _connect(server, deployment, prefix)
        _start_chunked(held, path)
        held.sendall(_chunk(b"Incident ID"))  # and no more for now: the request is in flight
        early = _early_answer(held, wait=0.5)
        if not early.startswith(b"HTTP/1.1 429") or time.monotonic() > deadline:
            assert not early, early[:300]
            return held
        held.close()
        time.sleep(0.1)


def test_an_agency_holding_a_request_open_gets_429_and_another_is_served(limited_server, deployment):
    with _hold(limited_server, deployment, deployment.school, "/ingest/schoolsafe-csv") as held:
        deadline = time.monotonic() + 20
        while True:  # until the gateway has the held request in hand
            with _connect(limited_server, deployment, deployment.school) as second:
                status, answer = _send(second, "/fhir/$process-message", b"{}", "application/fhir+json")
            if status == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 429 and b"GATEWAY_MAX_REQUESTS_PER_AGENCY=1" in answer
        with _connect(limited_server, deployment, deployment.police) as other:
            status, answer = _send(other, "/fhir/$process-message", b"{}", "application/fhir+json")
        assert status == 400, answer[:300]  # another agency is served (and told the body is no Bundle)
        held.sendall(_chunk(b",School URN\r\n") + b"0\r\n\r\n")
        status, _ = _answer(held)
        assert status == 400  # the held request is answered in its turn
    with _connect(limited_server, deployment, deployment.school) as again:
        status, _ = _send(again, "/fhir/$process-message", b"{}", "application/fhir+json")
    assert status == 400  # and the school may send again

"""``gateway demo --serve``: the story, then the gateway with its console until interrupted."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.shared_console import HAMPSHIRE


def test_export_p12_round_trips_with_its_password(demo_pki, tmp_path):
    from gateway.web.console.demo import export_p12

    prefix = demo_pki.prefix(HAMPSHIRE)
    path = export_p12(prefix, tmp_path / "la.p12", name="Hampshire children's services", password="pw-123")
    key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), b"pw-123")
    assert cert.public_bytes(serialization.Encoding.PEM) == prefix.with_suffix(".crt").read_bytes()
    assert key is not None and extra == []
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(path.read_bytes(), b"wrong")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _ignoring_ctrl_c() -> None:
    """As a shell starts a background job without job control: SIGINT ignored, inherited through exec."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c in a background job", "sigterm"])
def test_demo_serve_prints_the_console_and_certificates_and_serves_until_interrupted(tmp_path, stop):
    workdir = tmp_path / "demo"
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--serve", "--workdir", str(workdir)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True,
                               preexec_fn=_ignoring_ctrl_c if stop.startswith("ctrl-c") else None)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Import a certificate"):
                break
        output = "\n".join(lines)
        (url,) = re.findall(r"^console: (https://127\.0\.0\.1:\d+/)$", output, flags=re.M)
        certificates = re.findall(r"^certificate (.+): (\S+\.p12) \(password (\S+)\)$", output, flags=re.M)
        names = {name for name, _, _ in certificates}
        assert {"Riverside Infant School", "Dorset Police", "Safeguarding gateway"} <= names, output
        path, password = next((p, pw) for name, p, pw in certificates if name.startswith("Hampshire"))
        key, cert, _ = pkcs12.load_key_and_certificates(Path(path).read_bytes(), password.encode())
        # The LA's certificate from the file opens the console over mutual TLS.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(workdir / "certs" / "ca.crt")
        pem = tmp_path / "la.pem"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context.load_cert_chain(pem)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /la/inbox HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b"Inbox" in answer
        process.send_signal(signal.SIGINT if stop.startswith("ctrl-c") else signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, rest
        assert "stopping" in rest
        deadline = time.monotonic() + 20  # the demo stops the gateway, its worker and the endpoints it started
        while _leftovers(workdir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _leftovers(workdir) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        process.stdout.close()  # left open, a failed run's pipe was reported in whichever test came next
        _kill_leftovers(workdir)


def _leftovers(workdir: Path) -> list[int]:
    """The processes still running whose command line names this demo's folder."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in command and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids


def _kill_leftovers(workdir: Path) -> None:
    """However the test ended, no process of this demo (they run in sessions of their own) outlives it."""
    for pid in _leftovers(workdir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

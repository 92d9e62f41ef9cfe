"""``gateway demo --serve``: after the story, the gateway stays up with its console until interrupted.

Prints ``console: https://127.0.0.1:PORT/`` and, per agency, ``certificate <agency name>: <path>.p12
(password <password>)``: a PKCS#12 file of the agency's demo certificate and key to import into a
browser (the operators' is the gateway's own certificate). Each run makes new passwords.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.model import systems as S
from gateway.signing import pki

OPERATORS_NAME = "Safeguarding gateway operators"


def export_p12(prefix: Path, destination: Path, *, name: str, password: str) -> Path:
    """Write the certificate ``PREFIX.crt`` and key ``PREFIX.key`` as a password-protected PKCS#12 file
    at ``destination`` (the CA is not included: a browser is asked to trust the key pair, not a CA)."""
    cert = x509.load_pem_x509_certificate(prefix.with_suffix(".crt").read_bytes())
    key = serialization.load_pem_private_key(prefix.with_suffix(".key").read_bytes(), password=None)
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(50000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256())
                  .build(password.encode("utf-8")))
    destination.write_bytes(pkcs12.serialize_key_and_certificates(name.encode("utf-8"), key, cert, None,
                                                                  encryption))
    destination.chmod(0o600)
    return destination


def certificates(demo) -> list[tuple[str, Path, str]]:
    """Write a PKCS#12 file for each of the demo's agencies and its operators; return (name, path, password)."""
    from gateway.routing import Directory

    directory = Directory(demo.store.engine)
    out_dir = demo.workdir / "browser-certificates"
    out_dir.mkdir(exist_ok=True)
    made = []
    prefixes = [(uri, prefix) for uri, prefix in demo.identities.items()]
    prefixes.append((S.agency_uri("gateway", "national"), demo.certs / Path(pki.GATEWAY_CERT).stem))
    for uri, prefix in prefixes:
        agency = directory.agency(uri)
        name = agency.name if agency is not None else OPERATORS_NAME
        password = secrets.token_urlsafe(9)
        path = export_p12(prefix, out_dir / f"{prefix.name}.p12", name=name, password=password)
        made.append((name, path, password))
    return made


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Within the block, Ctrl+C (SIGINT) and SIGTERM both raise KeyboardInterrupt, so that the processes the demo
    started are stopped either way. A SIGINT ignored by whoever started the demo (a shell's background job) is
    taken back: this command runs until interrupted. The previous handlers come back after the block."""
    def interrupt(signum, frame):
        for sig in previous:  # stopping: a second signal must not cut the stopping short
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_console(demo, echo=click.echo) -> None:
    """Start the gateway, its worker and the LA endpoints again (the replay clock going on from the story's
    end), print the console's address and the certificates, and wait until interrupted (Ctrl+C or SIGTERM)."""
    with _stopped_by_signals():
        _serve_console(demo, echo)


def _serve_console(demo, echo) -> None:
    from gateway.web import assets

    if not assets.built():
        try:
            assets.build_assets()
        except assets.AssetsError as exc:
            echo(f"warning: the console will have no styles: {exc}", err=True)
    clock_start = demo.replay_now().isoformat()
    try:
        demo.start_receivers()
        demo.start_gateway(clock_start)
        echo("")
        echo(f"console: https://127.0.0.1:{demo.gateway_port}/")
        for name, path, password in certificates(demo):
            echo(f"certificate {name}: {path} (password {password})")
        echo("Import a certificate into the browser (it presents it to the gateway), accept the development "
             f"CA's server certificate ({demo.certs / pki.CA_CERT}), and open the console. Ctrl+C stops.")
        while all(process.poll() is None for process in demo.processes.running.values()):
            time.sleep(0.5)
        stopped = [name for name, process in demo.processes.running.items() if process.poll() is not None]
        raise click.ClickException(f"{', '.join(stopped)} stopped (logs in {demo.workdir})")
    except KeyboardInterrupt:
        echo("\nstopping")
    finally:
        demo.processes.stop_all()
        demo.close()

"""``gateway audit``: verify the hash chain and its signed checkpoints, export AuditEvents, sign a checkpoint now.

The database is ``--database URL`` or ``GATEWAY_DATABASE_URL``; the
certificates (the CA that the checkpoints' signatures chain to, and the
gateway's key that signs them) are ``--certs DIR`` or ``GATEWAY_CERTS_DIR``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Settings, SettingsError
from gateway.signing.messages import parse_instant

_database_option = click.option(
    "--database", "database_url", metavar="URL",
    help="Database URL (sqlite:///PATH or postgresql+psycopg://...); default: GATEWAY_DATABASE_URL.")
_certs_option = click.option(
    "--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
    help="The deployment's certificates directory (default: GATEWAY_CERTS_DIR).")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@contextlib.contextmanager
def _engine(database_url: str | None):
    """The database at this gateway's schema; any database error becomes a message, not a traceback."""
    from gateway.store.engine import StoreConfigError, make_engine
    from gateway.store.schema import require_current

    try:
        engine = make_engine(database_url or Settings.from_env().database_url)
    except (SettingsError, StoreConfigError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        require_current(engine)
        yield engine
    except StoreConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


def _certs(certs_dir: Path | None) -> Path:
    try:
        return certs_dir or Settings.from_env().certs_dir
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("audit")
def audit_group() -> None:
    """The audit log: verify its hash chain and checkpoints, export it as FHIR AuditEvents (docs/audit.md)."""


@audit_group.command("verify")
@_database_option
@_certs_option
@click.option("--no-signatures", is_flag=True, help="Skip the checkpoints' signatures (no certificates at hand).")
def verify_command(database_url: str | None, certs_dir: Path | None, no_signatures: bool) -> None:
    """Walk the whole chain and every signed checkpoint; exit 1 and name the first bad record if anything is wrong."""
    from gateway.audit.verify import verify
    from gateway.signing import pki
    from gateway.signing.signatures import TrustAnchor
    from gateway.store.engine import read_only

    trust = None
    if not no_signatures:
        certs = _certs(certs_dir)
        crl = certs / pki.CRL
        try:
            trust = TrustAnchor.from_files(certs / pki.CA_CERT, crl if crl.exists() else None)
        except (pki.PKIError, OSError, ValueError) as exc:
            raise click.ClickException(f"cannot read the deployment CA in {certs} (or use --no-signatures): "
                                       f"{exc}") from None
    started = time.perf_counter()
    with _engine(database_url) as engine, read_only(engine) as connection:
        report = verify(connection, trust, now=_now())
    seconds = time.perf_counter() - started
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    signatures = "not checked (--no-signatures)" if trust is None else f"{report.checkpoints} checked"
    click.echo(f"{report.records} records in order, chain head {report.head_seq}; checkpoints: {signatures}; "
               f"{seconds:.1f} s")
    if not report.ok:
        click.echo(f"audit log NOT intact: {len(report.problems)} problem(s), the first at record "
                   f"{report.problems[0].seq}", err=True)
        sys.exit(1)
    click.echo("audit log intact")


@audit_group.command("export")
@_database_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the NDJSON here (default: standard output).")
@click.option("--since", metavar="INSTANT", help="Only records recorded at or after this ISO 8601 instant "
              "(with its offset, e.g. 2026-11-29T00:00:00Z).")
def export_command(database_url: str | None, output: Path | None, since: str | None) -> None:
    """Write the audit records as FHIR R4 AuditEvents, one JSON per line, for a SIEM."""
    from gateway.audit.export import write_ndjson
    from gateway.store.engine import read_only

    start = None
    if since is not None:
        start = parse_instant(since)
        if start is None:
            raise click.BadParameter(f"{since!r} is not an ISO 8601 instant with an offset", param_hint="--since")
    with _engine(database_url) as engine, read_only(engine) as connection:
        if output is None:
            count = write_ndjson(connection, sys.stdout, since=start)
        else:
            with output.open("w", encoding="utf-8", newline="\n") as out:
                count = write_ndjson(connection, out, since=start)
    click.echo(f"{count} AuditEvents written{'' if output is None else f' to {output}'}", err=True)


@audit_group.command("checkpoint")
@_database_option
@_certs_option
def checkpoint_command(database_url: str | None, certs_dir: Path | None) -> None:
    """Sign a checkpoint of the chain's head now (the worker does it every audit_checkpoint_minutes)."""
    from gateway.audit.checkpoints import write_checkpoint
    from gateway.signing import pki
    from gateway.signing.signatures import Signer

    certs = _certs(certs_dir)
    try:
        signer = Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY)
    except (pki.PKIError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot sign with the gateway's key in {certs}: {exc}") from None
    with _engine(database_url) as engine, engine.begin() as connection:
        made = write_checkpoint(connection, signer, now=_now())
    if made is None:
        click.echo("nothing to sign: the newest checkpoint already covers the chain's head (or it is empty)")
    else:
        click.echo(f"checkpoint {made.id}: record {made.seq}, hash {made.hash}")

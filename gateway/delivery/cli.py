"""``gateway worker`` (deliver the outbox) and ``gateway operator`` (what needs a person)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from pathlib import Path

import click

from gateway.config import Settings, SettingsError
from gateway.delivery.models import STATES

log = logging.getLogger(__name__)


def _settings(certs_dir: Path | None = None) -> Settings:
    try:
        return Settings.from_env(**({"certs_dir": certs_dir} if certs_dir else {}))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _store(settings: Settings):
    from gateway.store import open_store

    try:
        return open_store(settings.database_url)
    except Exception as exc:  # a bad URL or an unreachable server: say which, without a traceback
        raise click.ClickException(f"cannot open the database {settings.database_url!r}: {exc}") from None


def _directory(store):
    """Routing's directory on the store's database (each lookup its own short transaction)."""
    from gateway.routing import Directory

    return Directory(store.engine)


@click.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (cron, tests).")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Deliveries in flight at the same time in this process [default: GATEWAY_DELIVERY_CONCURRENCY, 16].")
@click.option("--per-destination", type=click.IntRange(min=1),
              help="Of those, at most this many to one agency, so a hung endpoint holds only a few slots "
                   "[default: GATEWAY_DELIVERY_PER_DESTINATION, 4].")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Certificates directory (default: GATEWAY_CERTS_DIR): the gateway certificate is presented "
                   "to endpoints and signs notices to senders.")
@click.option("--lease-seconds", type=click.FloatRange(min=1),
              help="How long a claim lasts; renewed every third of it while a delivery is in flight, so a worker "
                   "that dies leaves its deliveries to others within this [default: GATEWAY_DELIVERY_LEASE_SECONDS, "
                   "60].")
@click.option("--timeout-seconds", type=click.FloatRange(min=0.1),
              help="Read timeout of one delivery attempt: each wait for the endpoint's answer (below the lease) "
                   "[default: GATEWAY_DELIVERY_READ_TIMEOUT_SECONDS, 30].")
@click.option("--connect-timeout-seconds", type=click.FloatRange(min=0.1),
              help="Connect timeout: TCP connection and TLS handshake [default: "
                   "GATEWAY_DELIVERY_CONNECT_TIMEOUT_SECONDS, 5].")
@click.option("--poll-seconds", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Pause after a turn that found nothing due.")
@click.option("--keep-alive/--no-keep-alive", default=True, show_default=True,
              help="Reuse TLS connections to endpoints (one handshake per connection, not per delivery). A "
                   "connection the endpoint closed while idle is passed over, and one lost in a request is "
                   "replaced once.")
@click.option("--backoff-base-seconds", type=click.FloatRange(min=0.01), default=10.0, show_default=True)
@click.option("--backoff-cap-seconds", type=click.FloatRange(min=0.01), default=3600.0, show_default=True)
def worker_command(once: bool, concurrency: int | None, per_destination: int | None, certs_dir: Path | None,
                   lease_seconds: float | None, timeout_seconds: float | None, connect_timeout_seconds: float | None,
                   poll_seconds: float, keep_alive: bool, backoff_base_seconds: float,
                   backoff_cap_seconds: float) -> None:
    """Deliver the outbox: push each due delivery to its agency's endpoint over mutual TLS.

    Run as many workers as you like, on PostgreSQL: each claims disjoint
    deliveries (FOR UPDATE SKIP LOCKED). On SQLite claims are serialised
    (BEGIN IMMEDIATE). Each delivery's outcome is recorded as soon as it
    ends, and its slot is given to the next due delivery. SIGTERM/SIGINT
    finish the deliveries in flight, then stop.
    """
    from gateway.delivery.worker import Backoff, OutboxWorker
    from gateway.runtime import settle
    from gateway.signing import pki
    from gateway.signing.signatures import Signer
    from gateway.transport.client import AgencyClient
    from gateway.transport.watch import Reloading

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(certs_dir)
    certs = Path(settings.certs_dir)
    concurrency = concurrency or settings.delivery_concurrency
    per_destination = per_destination or settings.delivery_per_destination
    lease_seconds = lease_seconds or settings.delivery_lease_seconds
    try:
        client = AgencyClient.for_certs_dir(
            certs, timeout=timeout_seconds or settings.delivery_read_timeout_seconds,
            connect_timeout=connect_timeout_seconds or settings.delivery_connect_timeout_seconds,
            reuse_connections=keep_alive)
        signer = Reloading([certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY],
                           lambda: Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY))
        signer.get()
    except (pki.PKIError, OSError) as exc:
        raise click.ClickException(f"{exc}; create the certificates with 'gateway certs init {certs}'") from None
    store = _store(settings)
    try:
        worker = OutboxWorker(store, client, signer=signer.get, directory=_directory(store), clock=settings.clock(),
                              lease=dt.timedelta(seconds=lease_seconds),
                              max_age=dt.timedelta(seconds=settings.delivery_max_age_seconds),
                              backoff=Backoff(dt.timedelta(seconds=backoff_base_seconds),
                                              dt.timedelta(seconds=backoff_cap_seconds)),
                              concurrency=concurrency, per_destination=per_destination,
                              housekeeping=_deadlines(settings, store, signer.get))
        daily_purge = _daily_purge(settings, store)
    except ValueError as exc:
        store.close()
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    settle()  # the start-up heap leaves garbage collection (gateway.runtime)
    log.info("outbox worker %s started (concurrency %d, %d per destination, lease %.0f s, timeouts %g s connect, "
             "%g s read)", worker.worker_id, concurrency, per_destination, lease_seconds, client.connect_timeout,
             client.timeout)
    try:
        worker.run(stop, poll_interval=poll_seconds, once=once)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if daily_purge is not None:
            daily_purge.stop()
        worker.close()
        store.close()
    log.info("outbox worker %s stopped", worker.worker_id)


@click.group("operator")
def operator_group() -> None:
    """What operators see and do: unroutable messages, dead letters, retries."""


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


@operator_group.command("unroutable")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved entries.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def unroutable_command(include_resolved: bool, limit: int) -> None:
    """List messages held because no destination was found (oldest first)."""
    from gateway.delivery.services import SqlOutbox

    store = _store(_settings())
    try:
        with store.transaction() as unit:
            entries = SqlOutbox(unit.session).unroutable(include_resolved=include_resolved, limit=limit)
    finally:
        store.close()
    if not entries:
        click.echo("No unroutable messages." if not include_resolved else "No unroutable entries.")
        return
    for entry in entries:
        status = f"resolved {_when(entry.resolved_at)}: {entry.resolution}" if entry.resolved else "OPEN"
        click.echo(f"{entry.id}  {_when(entry.created_at)}  message {entry.message_id} from {entry.sender_agency}\n"
                   f"    rule: {entry.rule or '-'}\n    reason: {entry.reason}\n    {status}")
    open_count = sum(not e.resolved for e in entries)
    click.echo(f"{open_count} open of {len(entries)} listed. Resolve one with "
               "'gateway operator resolve ID --note TEXT' once it has been dealt with.")


@operator_group.command("resolve")
@click.argument("entry_id")
@click.option("--note", required=True, help="What was done (e.g. 'sent by secure email to LA 999 MASH').")
def resolve_command(entry_id: str, note: str) -> None:
    """Mark an unroutable entry as dealt with."""
    from gateway.delivery.services import SqlOutbox

    store = _store(_settings())
    try:
        with store.transaction() as unit:
            entry = SqlOutbox(unit.session).resolve_unroutable(entry_id, note=note,
                                                               now=dt.datetime.now(dt.timezone.utc))
    finally:
        store.close()
    if entry is None:
        raise click.ClickException(f"no unroutable entry {entry_id}; list them with 'gateway operator unroutable'")
    click.echo(f"Resolved {entry_id} (message {entry.message_id}).")


@operator_group.command("deliveries")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state.")
@click.option("--destination", help="Only deliveries to this agency URI.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def deliveries_command(state: str | None, destination: str | None, limit: int) -> None:
    """List deliveries, most recently changed first, with counts per state."""
    from gateway.delivery.services import SqlOutbox

    store = _store(_settings())
    now = dt.datetime.now(dt.timezone.utc)
    try:
        with store.transaction() as unit:
            outbox = SqlOutbox(unit.session)
            counts = outbox.counts()
            rows = outbox.deliveries(state=state, destination=destination, limit=limit)
    finally:
        store.close()
    click.echo("  ".join(f"{name}: {counts.get(name, 0)}" for name in STATES))
    for d in rows:
        late = "  OVERDUE" if d.overdue(now) else ""
        click.echo(f"{d.id}  {d.state:<13} {d.mode:<7} to {d.destination}  attempts {d.attempts}  "
                   f"updated {_when(d.updated_at)}  due {_when(d.due_at)}{late}\n"
                   f"    message {d.payload_message_id} (accepted as {d.message_id}, rule {d.rule or '-'})"
                   + (f"\n    last error: {d.last_error}" if d.last_error else ""))


@operator_group.command("retry")
@click.argument("delivery_id")
def retry_command(delivery_id: str) -> None:
    """Put a dead-lettered delivery back in the queue, due now, with a fresh maximum age."""
    from gateway.delivery.services import SqlOutbox

    settings = _settings()
    store = _store(settings)
    try:
        with store.transaction() as unit:
            delivery = SqlOutbox(unit.session).requeue(
                delivery_id, now=dt.datetime.now(dt.timezone.utc),
                max_age=dt.timedelta(seconds=settings.delivery_max_age_seconds))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if delivery is None:
        raise click.ClickException(f"no delivery {delivery_id}; list them with 'gateway operator deliveries'")
    click.echo(f"Delivery {delivery_id} to {delivery.destination} is pending again.")


def _daily_purge(settings: Settings, store):
    """The retention purge, once a day in a thread beside deliveries, when ``retention_purge_daily`` is on
    (docs/retention.md); None when it is off. Raises ValueError for another value."""
    if settings.retention_purge_daily not in ("on", "off"):
        raise ValueError(f"GATEWAY_RETENTION_PURGE_DAILY={settings.retention_purge_daily!r}: use on or off")
    if settings.retention_purge_daily == "off":
        return None
    if settings.retention_days < 1:
        raise ValueError(f"GATEWAY_RETENTION_DAYS={settings.retention_days}: give at least 1 day")
    from gateway.retention.schedule import DailyPurge

    return DailyPurge(store, settings.retention_days, clock=settings.clock()).start()


def _deadlines(settings: Settings, store, signer):
    """The worker's housekeeping: alert agencies whose deadlines passed (gateway.linkage), with expiry; and
    sign a checkpoint of the audit chain every ``audit_checkpoint_minutes`` (gateway.audit)."""
    from gateway.audit.checkpoints import checkpoint_if_due
    from gateway.linkage.services import Linkage

    linkage = Linkage(settings=settings, signer=signer)

    def check(now: dt.datetime) -> None:
        try:
            with store.transaction() as unit:
                linkage.check_deadlines(unit, now)
        finally:  # a checkpoint is due whatever happened to the deadlines
            with store.transaction() as unit:
                checkpoint_if_due(unit.session.connection(), signer(), now=now,
                                  minutes=settings.audit_checkpoint_minutes)

    return check

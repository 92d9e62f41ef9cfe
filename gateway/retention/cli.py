"""``gateway hold ...`` (legal holds) and ``gateway retention purge``.

Both work on the database of ``GATEWAY_DATABASE_URL`` (at the schema's
head: ``gateway db upgrade``) and the retention period of
``GATEWAY_RETENTION_DAYS``. See ``docs/retention.md``.
"""

from __future__ import annotations

import json

import click

from gateway.config import Settings, SettingsError
from gateway.retention.holds import (
    Hold,
    HoldError,
    active_holds,
    all_holds,
    place_hold,
    place_household_holds,
    release_hold,
)
from gateway.store import open_store
from gateway.store.cli_support import store_transaction


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _store(settings: Settings):
    try:
        return open_store(settings.database_url)
    except Exception as exc:  # an unreachable or un-upgraded database: say so, no traceback
        raise click.ClickException(str(exc)) from None


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


@click.group("hold")
def hold_group() -> None:
    """Legal holds: keep every message naming a person, and the person, whatever the retention period says."""


def _change(work) -> object:
    settings = _settings()
    store = _store(settings)
    now = settings.clock()()
    with store_transaction(store, HoldError) as unit:
        return work(unit.session, now)


@hold_group.command("place")
@click.argument("person_id")
@click.option("--reason", required=True, help="Why: the case, inquiry or request reference (no names).")
@click.option("--by", required=True, help="Who places it (name and role).")
@click.option("--household", is_flag=True, help="Hold every member of the person's household too, each on its own.")
def place_command(person_id: str, reason: str, by: str, household: bool) -> None:
    """Place a legal hold on PERSON_ID: the purge keeps every message that names them."""
    if household:
        placed, already = _change(lambda c, now: place_household_holds(c, person_id, reason=reason, by=by, now=now))
        for hold in placed:
            click.echo(f"hold {hold.id} placed on person {hold.person_id}")
        for member in already:
            click.echo(f"person {member} was already held: left as it is")
        return
    hold = _change(lambda c, now: place_hold(c, person_id, reason=reason, by=by, now=now))
    click.echo(f"hold {hold.id} placed on person {person_id}: the purge keeps every message that names them")


@hold_group.command("release")
@click.argument("person_id")
@click.option("--reason", required=True, help="Why the hold ends (e.g. the inquiry closed).")
@click.option("--by", required=True, help="Who releases it (name and role).")
def release_command(person_id: str, reason: str, by: str) -> None:
    """Release the legal hold on PERSON_ID: their messages follow the retention period again."""
    released = _change(lambda c, now: release_hold(c, person_id, reason=reason, by=by, now=now))
    for hold in released:
        click.echo(f"hold {hold.id} on person {person_id} released")


def _row(hold: Hold) -> dict:
    return {"id": hold.id, "person_id": hold.person_id, "reason": hold.reason, "placed_by": hold.placed_by,
            "placed_at": hold.placed_at.isoformat(), "released_by": hold.released_by,
            "released_at": hold.released_at.isoformat() if hold.released_at else None,
            "release_reason": hold.release_reason}


@hold_group.command("list")
@click.option("--all", "everything", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def list_command(everything: bool, as_json: bool) -> None:
    """List the active legal holds (with --all, released ones too), oldest first."""
    settings = _settings()
    store = _store(settings)
    try:
        with store.engine.connect() as connection:
            holds = all_holds(connection) if everything else active_holds(connection)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([_row(h) for h in holds], indent=2))
        return
    if not holds:
        click.echo("No legal holds." if everything else "No active legal holds.")
    for hold in holds:
        click.echo(f"hold {hold.id}  person {hold.person_id}  placed {_when(hold.placed_at)} by {hold.placed_by}: "
                   f"{hold.reason}")
        if not hold.active:
            click.echo(f"    released {_when(hold.released_at)} by {hold.released_by}: {hold.release_reason}")


@click.group("retention")
def retention_group() -> None:
    """Retention: purge what is kept past the retention period."""


@retention_group.command("purge")
@click.option("--dry-run", is_flag=True, help="List and count what would be purged; change nothing.")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Messages (and people) per transaction.")
@click.option("--by", "agent", default="operator", show_default=True,
              help="Who runs it (name and role), for the audit records.")
def purge_command(dry_run: bool, batch: int, agent: str) -> None:
    """Delete the messages and personal data past retention (GATEWAY_RETENTION_DAYS), unless held.

    A message with a delivery still open is kept and listed. Each purged
    message and person gets an audit record. The counts add up: every
    message is purged, kept or held.
    """
    from gateway.retention.purge import DRY_RUN_PEOPLE_LIMIT, Purge

    settings = _settings()
    store = _store(settings)
    try:
        purge = Purge(store, settings.retention_days, settings.clock()(), batch=batch, dry_run=dry_run, agent=agent,
                      progress=None if dry_run else lambda line: click.echo(line, err=True))
        report = purge.run()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"retention {settings.retention_days} days: messages received before {_when(report.cutoff)} "
               "are past it once nobody they name has had one since")
    if dry_run:
        for mid in report.purged_messages:
            click.echo(f"would purge message {mid}")
    click.echo(report.summary())
    for table, rows in sorted(report.rows.items()):
        click.echo(f"  {table}: {rows} rows{' would go' if dry_run else ''}")
    for mid, ident, state in report.pending_deliveries:
        click.echo(f"kept: message {mid} has delivery {ident} still {state}: deliver or dead-letter it first "
                   "(`gateway operator deliveries`)" if state != "unroutable" else
                   f"kept: message {mid} is unroutable entry {ident}, not resolved (`gateway operator unroutable`)")
    people = "would be removed" if dry_run else "removed"
    click.echo(f"people with no message left: {report.people_removed} {people}, {report.people_records + report.people_referenced} left "
               f"as a bare id (named in other records' link history), {report.people_held} held, "
               f"{report.people_recent} active within retention")
    if not report.people_foreseen:
        click.echo(f"(the dry run counts only the people who have no message now: past {DRY_RUN_PEOPLE_LIMIT} "
                   "messages it does not foresee those the purge would leave with none)")
    if report.skipped_batches:
        click.echo(f"{report.skipped_batches} batches gave way to the gateway's traffic and are left for the next run",
                   err=True)
    if not dry_run:
        click.echo(f"{report.purged + report.people_records + report.people_removed} audit records written "
                   "(subtype purge)")

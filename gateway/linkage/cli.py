"""``gateway people ...``, ``gateway chronology``, ``gateway stats`` and ``gateway deadlines``.

They work on the database of ``GATEWAY_DATABASE_URL`` (at the schema's
head: ``gateway db upgrade``). ``people import`` loads an agency's existing
records into the person index exactly as the accept path links a message's
people, in batches of one transaction each.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import click
from sqlalchemy import select

from gateway.adapters.csvcells import spreadsheet_cell
from gateway.config import Settings
from gateway.linkage.chronology import chronology, figures, person
from gateway.linkage.index import PersonIndex, ReviewError, open_matches
from gateway.linkage.matching import MatchModel, PersonRecord, normalise
from gateway.model.identifiers import postcode_district
from gateway.store import open_store
from gateway.store.cli_support import store_transaction
from gateway.store.models import MessagePersonRow

IMPORT_COLUMNS = ("record_id", "source", "given", "family", "birth_date", "sex", "postcode", "nhs_number", "upn",
                  "school_urn")
EXPORT_COLUMNS = ("record_id", "person_id", "decision", "score")
_MP = MessagePersonRow.__table__
_FIELDS = tuple(PersonRecord.__dataclass_fields__)


def _store():
    try:
        return open_store(Settings.from_env().database_url)
    except Exception as exc:  # an unreachable or un-upgraded database: say so, no traceback
        raise click.ClickException(str(exc)) from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@click.group("people")
def people_group() -> None:
    """The person index: load, export and review."""


@people_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=500, show_default=True, help="Records linked per transaction.")
def import_command(path: Path, batch_size: int) -> None:
    """Load an agency's records (CSV with a header: record_id, source, given, family, birth_date, sex,
    postcode, nhs_number, upn, school_urn; any may be empty) into the person index as the accept path would.

    Every row ends linked or in the error list (row number and reason); the
    counts add up. Exits 1 when any row could not be read.
    """
    store = _store()
    model = MatchModel.load()
    counts = {"read": 0, "linked": 0, "possible": 0, "new": 0, "rejected": 0}
    problems: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in ("record_id",) if c not in (reader.fieldnames or ())]
        unknown = [c for c in reader.fieldnames or () if c not in IMPORT_COLUMNS]
        if missing:
            raise click.ClickException(f"{path}: the header has no {', '.join(missing)} column; expected "
                                       f"{', '.join(IMPORT_COLUMNS)}")
        if unknown:
            click.echo(f"{path}: ignoring unknown columns {', '.join(unknown)}", err=True)
        batch: list[tuple[int, dict, PersonRecord]] = []
        for number, row in enumerate(reader, start=2):
            counts["read"] += 1
            values = {k: (row.get(k) or "").strip() or None for k in IMPORT_COLUMNS}
            try:
                if not values["record_id"]:
                    raise ValueError("record_id is empty")
                record = normalise(**{k: values[k] for k in _FIELDS})
            except ValueError as exc:
                counts["rejected"] += 1
                problems.append(f"{path}: row {number}: {exc}")
                continue
            batch.append((number, values, record))
            if len(batch) >= batch_size:
                _link_batch(store, model, batch, counts)
                batch = []
        if batch:
            _link_batch(store, model, batch, counts)
    store.close()
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{counts['read']} rows read = {counts['linked']} linked + {counts['possible']} possible + "
               f"{counts['new']} new + {counts['rejected']} rejected")
    if problems:
        sys.exit(1)


def _link_batch(store, model: MatchModel, batch: list, counts: dict) -> None:
    now = _now()
    with store.transaction() as unit:
        connection = unit.session.connection()
        index = PersonIndex(connection, model)
        for _number, values, record in batch:
            linked = index.add({
                "message_id": None, "source": values["source"] or "import", "source_record": values["record_id"],
                "record_id": None, "resource": "import", "role": "child",
                **dataclasses.asdict(record),
                "postcode_district": postcode_district(record.postcode) if record.postcode else None,
            }, record, kind="child", now=now)
            counts[linked.decision] = counts.get(linked.decision, 0) + 1


@people_group.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="CSV file (default: stdout).")
def export_command(output: Path | None) -> None:
    """Write record_id, person_id, decision, score for every record (a message's record: message id#resource)."""
    store = _store()
    stream = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        writer = csv.writer(stream)
        writer.writerow(EXPORT_COLUMNS)
        with store.engine.connect() as connection:
            rows = connection.execution_options(yield_per=5000).execute(select(
                _MP.c.id, _MP.c.message_id, _MP.c.resource, _MP.c.source_record, _MP.c.person_id, _MP.c.link_decision,
                _MP.c.link_score).order_by(_MP.c.id))
            for row in rows:
                record = row.source_record if row.message_id is None else f"{row.message_id}#{row.resource}"
                writer.writerow([spreadsheet_cell(record), row.person_id or "", row.link_decision or "",
                                 "" if row.link_score is None else f"{row.link_score:.3f}"])
    finally:
        if output:
            stream.close()
        store.close()


@people_group.command("review")
@click.option("--la", "home_la", help="Only this LA's children (agency URI).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def review_command(home_la: str | None, as_json: bool) -> None:
    """List the possible matches waiting for a person, field by field with their weights."""
    store = _store()
    with store.engine.connect() as connection:
        matches = open_matches(connection, home_la=home_la, limit=1000)
    store.close()
    if as_json:
        click.echo(json.dumps(matches, indent=2))
        return
    if not matches:
        click.echo("No possible matches waiting.")
    for match in matches:
        record = match["record"] or {}
        click.echo(f"match {match['id']} (home LA {match['home_la'] or 'unknown'}): record {record.get('record_id')} "
                   f"from {record.get('source')} may be person {match['candidate_person_id']}, score "
                   f"{match['score'] if match['score'] is not None else '-'}")
        explanation = (match.get("explanation") or {})
        click.echo(f"  {explanation.get('reason', '')}")
        for field in ((explanation.get("score") or {}).get("fields") or ()):
            click.echo(f"  {field.get('field'):<12} {str(field.get('left')):<22} {str(field.get('right')):<22} "
                       f"{field.get('level'):<34} {field.get('weight'):+.2f}")


def _decide(action: str, match_id: int, by: str, reason: str) -> None:
    with store_transaction(_store(), ReviewError) as unit:
        index = PersonIndex(unit.session.connection(), MatchModel.load())
        if action == "confirm":
            person = index.confirm(match_id, by=by, reason=reason, now=_now())
            click.echo(f"match {match_id} confirmed: one person {person}")
        else:
            index.reject(match_id, by=by, reason=reason, now=_now())
            click.echo(f"match {match_id} rejected: never proposed again")


@people_group.command("confirm")
@click.argument("match_id", type=int)
@click.option("--by", required=True, help="Who decides (name and agency).")
@click.option("--reason", required=True)
def confirm_command(match_id: int, by: str, reason: str) -> None:
    """Confirm a possible match: the two are one person."""
    _decide("confirm", match_id, by, reason)


@people_group.command("reject")
@click.argument("match_id", type=int)
@click.option("--by", required=True, help="Who decides (name and agency).")
@click.option("--reason", required=True)
def reject_command(match_id: int, by: str, reason: str) -> None:
    """Reject a possible match: the two stay apart for good."""
    _decide("reject", match_id, by, reason)


@people_group.command("link-unlinked")
@click.option("--batch-size", default=500, show_default=True, help="Records linked per transaction.")
def link_unlinked_command(batch_size: int) -> None:
    """Link the records that have no person yet (those stored before the person index, revision 0002),
    oldest first, exactly as the accept path links a new one."""
    from gateway.linkage.index import record_of
    from gateway.linkage.records import kind_of

    store = _store()
    model = MatchModel.load()
    counts: dict[str, int] = {}
    unlinked = select(_MP).where(_MP.c.person_id.is_(None)).order_by(_MP.c.id).limit(batch_size)
    while True:
        with store.transaction() as unit:
            connection = unit.session.connection()
            rows = connection.execute(unlinked).all()
            index = PersonIndex(connection, model)
            for row in rows:
                linked = index.link(row.id, record_of(row), kind=kind_of(row.role), now=_now())
                counts[linked.decision] = counts.get(linked.decision, 0) + 1
        if len(rows) < batch_size:
            break
    store.close()
    total = sum(counts.values())
    click.echo(f"{total} records linked: " + ", ".join(f"{n} {d}" for d, n in sorted(counts.items())) if total
               else "every record already has its person")


@people_group.command("unlink")
@click.argument("record_id", type=int)
@click.option("--by", required=True, help="Who decides (name and agency).")
@click.option("--reason", required=True)
def unlink_command(record_id: int, by: str, reason: str) -> None:
    """Undo a record's link: it becomes a person of its own and is never linked back by score."""
    with store_transaction(_store(), ReviewError) as unit:
        person = PersonIndex(unit.session.connection(), MatchModel.load()).unlink(
            record_id, by=by, reason=reason, now=_now())
    click.echo(f"record {record_id} is now person {person}")


@click.command("chronology")
@click.argument("person_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def chronology_command(person_id: str, as_json: bool) -> None:
    """Print a child's and household's events from every agency, in order."""
    store = _store()
    with store.engine.connect() as connection:
        subject = person(connection, person_id)
        if subject is not None and subject.merged_into is not None:
            # Found to be one with another person: theirs is the chronology (this id's is empty).
            when = subject.merged_at.isoformat() if subject.merged_at else "an unknown time"
            click.echo(f"person {person_id} was joined with person {subject.merged_into} at {when}: "
                       f"the chronology of {subject.merged_into}", err=True)
            person_id = subject.merged_into
        view = chronology(connection, person_id)
    store.close()
    if view["person"]["kind"] is None:
        raise click.ClickException(f"no person {person_id}")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    who = view["person"]
    click.echo(f"{', '.join(who['names']) or person_id} (born {', '.join(who['birth_dates']) or 'unknown'}); "
               f"home LA {who['home_la'] or 'unknown'}; household: {len(view['household'])} other people")
    for event in view["events"]:
        when = (event["occurred_at"] or event["recorded_at"] or event["received_at"])[:16]
        late = f", {event['late_days']} days late" if event["late_days"] else ""
        marks = " [possible duplicate]" if event["possible_duplicates"] else ""
        version = f" (version {event['version']})" if event["version"] > 1 else ""
        click.echo(f"  {when}  {event['about']:<9} {event['agency']:<42} {event['summary']}{late}{version}{marks}")
    for escalation in view["escalations"]:
        click.echo(f"  ALERT {escalation['raised_at'][:16]} {escalation['rule_id']}: {escalation['reason']}")


@click.command("stats")
@click.option("--agency", help="One agency (URI).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats_command(agency: str | None, as_json: bool) -> None:
    """Per agency: sent, received, decided on time and late, overdue, late submissions, reviews waiting."""
    store = _store()
    with store.engine.connect() as connection:
        rows = figures(connection, now=_now(), agency=agency)
    store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'agency':<44}{'sent':>6}{'recvd':>7}{'on time':>9}{'late':>6}{'overdue':>9}{'late subm':>11}"
               f"{'dups':>6}{'matches':>9}")
    for r in rows:
        click.echo(f"{r['agency']:<44}{r['sent']:>6}{r['received']:>7}{r['decided_on_time']:>9}{r['decided_late']:>6}"
                   f"{r['overdue']:>9}{r['late_submissions']:>11}{r['possible_duplicates_awaiting_review']:>6}"
                   f"{r['possible_matches_awaiting_review']:>9}")


@click.command("deadlines")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The gateway's certificates (default: GATEWAY_CERTS_DIR): reminders are signed.")
def deadlines_command(certs_dir: Path | None) -> None:
    """Alert agencies whose deadlines passed, then their escalation contacts (the worker does this every 30 s)."""
    from gateway.linkage.services import Linkage
    from gateway.signing import pki
    from gateway.signing.signatures import Signer

    settings = Settings.from_env()
    certs = certs_dir or settings.certs_dir
    try:
        signer = Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot sign reminders with the gateway's key in {certs}: {exc}") from None
    store = _store()
    linkage = Linkage(settings=settings, signer=lambda: signer)
    with store.transaction() as unit:
        actions = linkage.check_deadlines(unit, _now())
    store.close()
    for action in actions:
        click.echo(f"{action.action} {action.agency}: {action.reason}")
    click.echo(f"{len(actions)} reminders sent")



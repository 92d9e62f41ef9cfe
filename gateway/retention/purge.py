"""The retention purge: delete the messages and personal data kept past the retention period.

The rule (``docs/retention.md`` says why): a message is past retention when
neither it nor any message naming one of the people it names arrived within
``Settings.retention_days`` (the clock is the last activity about anyone the
message is about, so a child's chronology is kept whole while anything about
them is recent). Such a message is purged unless

* a person it names is under a legal hold (:mod:`gateway.retention.holds`):
  counted as *held*;
* a delivery of it is still open (pending or in flight), or an unroutable
  entry of it unresolved: it may not have reached anyone yet, so it is
  counted as *pending* and reported for an operator.

Purging a message deletes it from every table that holds it or its personal
data, found from the models' foreign keys (one source of truth: a table a
later step adds with a foreign key to ``accepted_message`` or
``message_person`` is purged too), children first, and the reads of it in
``personal_data_read``. Each purged message gets an audit record (subtype
``purge``) naming it and the rows purged per table, in the same
transaction. The audit log itself is never purged.

Then the people left with no message: a person with no message record, not
held, whose last activity (created, or a link decision about one of their
records: an agency's initial load) is past retention loses their remaining
records (an initial load's) and, when nothing else refers to them, the
person row, with an audit record each. A person still named in the link
history of another person's record stays as a bare id (no personal data).

Work goes in batches, each its own transaction. On PostgreSQL a batch
locks ``legal_hold`` against changes while it decides (a hold placed during a
purge is seen by the next batch, never half-seen) and gives up a lock wait
after :data:`LOCK_TIMEOUT` (then the batch is tried again, and at worst left
for the next run): the purge always yields to the gateway's own traffic. The
accept path locks the candidate people it reads (``FOR KEY SHARE``,
:mod:`gateway.linkage.index`), so it never links a record to a person the
purge has just removed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import Column, Connection, Table, delete, exists, func, or_, select, text, tuple_
from sqlalchemy.exc import DBAPIError

from gateway.audit import record_audit
from gateway.delivery.models import OPEN_STATES, DeliveryRow, UnroutableRow
from gateway.linkage.models import LinkDecisionRow, PersonalDataReadRow, PersonRow, PossibleMatchRow
from gateway.retention.holds import held_people
from gateway.store.engine import read_only
from gateway.store.models import AcceptedMessageRow, MessagePersonRow
from gateway.store.schema import metadata

log = logging.getLogger(__name__)

_MESSAGE = AcceptedMessageRow.__table__
_MP = MessagePersonRow.__table__
_PERSON = PersonRow.__table__
_DELIVERY = DeliveryRow.__table__
_UNROUTABLE = UnroutableRow.__table__
_DECISION = LinkDecisionRow.__table__
_MATCH = PossibleMatchRow.__table__
_READ = PersonalDataReadRow.__table__

DEFAULT_BATCH = 100
MAX_BATCH = 1000
#: A dry run foresees the people its messages would leave with none up to this many messages (it names them
#: in SQL); past it, it counts only the people who have no message already, and says so.
DRY_RUN_PEOPLE_LIMIT = 5000
#: How long a purge batch on PostgreSQL waits for a lock the gateway's traffic holds before it gives up.
LOCK_TIMEOUT = "500ms"
#: Times a batch that gave up on a lock is tried again before it is left for the next run.
RETRIES = 3
#: SQLSTATEs on which a batch is tried again: a lock wait given up, a deadlock, a serialization failure, and a
#: foreign key violation (a record linked to a person while the batch was removing them: tried again, the
#: batch sees the record and keeps the person).
_RETRYABLE = {"55P03", "40P01", "40001", "23503"}
#: Tables the purge never touches, whatever a later model says.
NEVER_PURGED = frozenset({"audit_event", "audit_chain_head", "audit_checkpoint", "legal_hold"})

# How an examined message ends.
PURGED, HELD, ACTIVE, PENDING = "purged", "held", "active", "pending"


@dataclasses.dataclass
class PurgeReport:
    """What one purge run did (or, in a dry run, would do); the message counts add up to ``total``."""

    cutoff: dt.datetime
    dry_run: bool
    total: int = 0        # messages in the store when the run started
    recent: int = 0       # received within the retention period
    active: int = 0       # older, but a person they name had a message within the period
    pending: int = 0      # older, but a delivery is still open or an unroutable entry unresolved
    held: int = 0         # older, kept by a legal hold on a person they name
    purged: int = 0
    rows: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # table -> rows
    purged_messages: list[str] = dataclasses.field(default_factory=list)
    pending_deliveries: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # message, id, state
    people_removed: int = 0     # person rows deleted
    people_records: int = 0     # their remaining records (an initial load's) purged; the id, still referred to, kept
    people_held: int = 0        # people with no message left, kept by a hold
    people_recent: int = 0      # people with no message left, active within the period
    people_referenced: int = 0  # nothing of theirs left to purge; the id is still referred to (link history)
    skipped_batches: int = 0    # batches left for the next run (locks held by the gateway's traffic)
    stopped: bool = False       # asked to stop between batches: the rest is left for the next run
    people_foreseen: bool = True  # dry run: False when too many messages to foresee the people they leave

    @property
    def kept(self) -> int:
        return self.recent + self.active + self.pending

    @property
    def adds_up(self) -> bool:
        return self.total == self.purged + self.kept + self.held

    def summary(self) -> str:
        verb = "would be purged" if self.dry_run else "purged"
        return (("stopped early: " if self.stopped else "")
                + f"{self.total} messages = {self.purged} {verb} + {self.kept} kept ({self.recent} within retention, "
                f"{self.active} about someone active within it, {self.pending} with a delivery still open) + "
                f"{self.held} held")


# The shape of the schema, from the models' foreign keys ------------------------------------------------------

@functools.cache
def _referencing(table: Table) -> tuple[tuple[Table, tuple[tuple[Column, Column], ...]], ...]:
    """Return the tables with foreign keys to ``table``, each with its (child column, parent column) pairs."""
    found: dict[str, list[tuple[Column, Column]]] = {}
    for child in metadata.sorted_tables:
        if child.name in NEVER_PURGED or child is table:
            continue
        for fk in child.foreign_keys:
            if fk.column.table is table:
                found.setdefault(child.name, []).append((fk.parent, fk.column))
    return tuple((metadata.tables[name], tuple(pairs)) for name, pairs in found.items())


def _single_key(table: Table) -> Column | None:
    columns = list(table.primary_key.columns)
    return columns[0] if len(columns) == 1 else None


def _chunks(values: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


Counts = dict[str, collections.Counter]  # owner (a message or person id) -> table -> rows


def _cascade(connection: Connection, table: Table, column: Column, owners: dict, counts: Counts, *,
             dry_run: bool) -> None:
    """Delete (or, in a dry run, count) the rows of ``table`` whose ``column`` is a key of ``owners``, after every
    row that refers to them, following the models' foreign keys down (children first).

    ``owners`` maps each key to what it is purged for (a message id, a person id); each row is counted in
    ``counts`` under its owner, so one batch's statements give every owner's own figures.
    """
    if not owners:
        return
    keys = list(owners)
    for child, pairs in _referencing(table):
        # Each referenced parent column's values, with their owners (usually the column we were given).
        by_parent: dict[Column, dict] = {}
        for _child_column, parent_column in pairs:
            if parent_column in by_parent:
                continue
            if parent_column is column:
                by_parent[parent_column] = owners
            else:
                by_parent[parent_column] = {value: owners[key] for chunk in _chunks(keys) for key, value in
                                            connection.execute(select(column, parent_column).where(column.in_(chunk)))}
        if len(pairs) == 1 and not _referencing(child):
            (child_column, parent_column), = pairs
            values = by_parent[parent_column]
            for chunk in _chunks(list(values)):
                for value, rows in connection.execute(select(child_column, func.count()).where(
                        child_column.in_(chunk)).group_by(child_column)):
                    counts.setdefault(values[value], collections.Counter())[child.name] += rows
                if not dry_run:
                    connection.execute(delete(child).where(child_column.in_(chunk)))
            continue
        # A row that refers twice (two foreign keys), or that others refer to: found by its key, then followed.
        child_key = _single_key(child)
        if child_key is None:
            raise RuntimeError(f"table {child.name} refers to {table.name} twice or is referred to, but has no "
                               "single-column key to follow")
        child_owners: dict = {}
        for _child_column, parent_column in pairs:
            values = by_parent[parent_column]
            for chunk in _chunks(list(values)):
                for row in connection.execute(select(child_key, *(c for c, _ in pairs)).where(
                        or_(*(c.in_(chunk) for c, p in pairs if p is parent_column)))):
                    for child_column, parent in pairs:
                        owner = by_parent[parent].get(row._mapping[child_column])
                        if owner is not None:
                            child_owners.setdefault(row[0], owner)
                            break
        _cascade(connection, child, child_key, child_owners, counts, dry_run=dry_run)
    for chunk in _chunks(keys):
        for key, rows in connection.execute(select(column, func.count()).where(column.in_(chunk)).group_by(column)):
            counts.setdefault(owners[key], collections.Counter())[table.name] += rows
        if not dry_run:
            connection.execute(delete(table).where(column.in_(chunk)))


def _delete_owned(connection: Connection, column: Column, owners: dict, counts: Counts, *, dry_run: bool) -> None:
    """Delete (or count) the rows whose ``column`` is a key of ``owners``, counted under their owner: rows that
    refer to a purged thing without a foreign key (``personal_data_read.subject``) or that go with a person."""
    for chunk in _chunks(list(owners)):
        for key, rows in connection.execute(select(column, func.count()).where(column.in_(chunk)).group_by(column)):
            counts.setdefault(owners[key], collections.Counter())[column.table.name] += rows
        if not dry_run:
            connection.execute(delete(column.table).where(column.in_(chunk)))


# The run ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Purge:
    """One purge run over a store; :meth:`run` does it.

    ``now`` is the run's clock (passed in: tests and the replay clock);
    ``agent`` names who runs it in the audit records (an operator's name, or
    ``gateway`` for the worker's daily purge).
    """

    store: object  # gateway.store.SqlMessageStore
    retention_days: int
    now: dt.datetime
    batch: int = DEFAULT_BATCH
    dry_run: bool = False
    agent: str = "gateway"
    progress: Callable[[str], None] | None = None
    # Asked between batches: when it answers True the run stops there (a worker shutting down).
    should_stop: Callable[[], bool] | None = None

    def __post_init__(self):
        if self.retention_days < 1:
            raise ValueError(f"retention of {self.retention_days} days: give at least 1 day (GATEWAY_RETENTION_DAYS)")
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch of {self.batch}: give 1 to {MAX_BATCH}")
        self.cutoff = self.now - dt.timedelta(days=self.retention_days)
        self.report = PurgeReport(cutoff=self.cutoff, dry_run=self.dry_run)
        self._doomed: set[str] = set()      # dry run: the messages it would purge

    def run(self) -> PurgeReport:
        """Purge (or, in a dry run, count) what is past retention; return the report."""
        with read_only(self.store.engine) as connection:
            self.report.total = connection.execute(select(func.count()).select_from(_MESSAGE)).scalar_one()
            self.report.recent = connection.execute(select(func.count()).select_from(_MESSAGE).where(
                _MESSAGE.c.received_at >= self.cutoff)).scalar_one()
        after = None
        while not self._stopping():
            done = self._in_batch(lambda connection, audit: self._message_batch(connection, audit, after))
            if done is None:  # given up on a lock every time: move past it, leave it for the next run
                self.report.skipped_batches += 1
                after = self._skip(after)
            else:
                after, tally = done
                self._add(tally)
            if after is None:
                break
        after_person = None
        while not self._stopping():
            done = self._in_batch(lambda connection, audit: self._people_batch(connection, audit, after_person))
            if done is None:
                self.report.skipped_batches += 1
                break
            after_person, tally = done
            self._add(tally)
            if after_person is None:
                break
        return self.report

    def _stopping(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            self.report.stopped = True
        return self.report.stopped

    def _add(self, tally: dict) -> None:
        """Count a committed batch (counted only then, so a batch tried again is not counted twice)."""
        for name, value in tally.items():
            if name == "rows":
                self.report.rows.update(value)
            elif name == "doomed":
                self._doomed.update(value)
            elif isinstance(value, list):
                getattr(self.report, name).extend(value)
            elif isinstance(value, bool):
                self.report.people_foreseen = self.report.people_foreseen and value
            else:
                setattr(self.report, name, getattr(self.report, name) + value)
        if self.progress is not None and tally.get("purged"):
            self.progress(f"{self.report.purged} messages {'to purge' if self.dry_run else 'purged'} so far")

    # -- transactions ---------------------------------------------------------------------------------------

    def _in_batch(self, work):
        """Run ``work(connection, session)`` in a transaction of its own (read-only, and no session, in a dry run);
        return its result, or None when it gave up on a lock :data:`RETRIES` times (its changes rolled back).
        The audit records go to the session: the store appends them as the transaction commits."""
        for attempt in range(RETRIES):
            try:
                if self.dry_run:
                    with read_only(self.store.engine) as connection:
                        return work(connection, None)
                with self.store.transaction() as unit:
                    connection = unit.session.connection()
                    if connection.dialect.name == "postgresql":
                        connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                        # Holds placed or released while this batch decides wait for it to commit.
                        connection.execute(text("LOCK TABLE legal_hold IN SHARE MODE"))
                    return work(connection, unit.session)
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                    raise
                log.warning("retention purge: a batch met the gateway's traffic (%s); attempt %d of %d",
                            exc.orig.sqlstate, attempt + 1, RETRIES)
                time.sleep(0.2 * (attempt + 1))
        return None

    def _skip(self, after):
        """The keyset position past the next batch, read without locks (to move on from a batch given up)."""
        with read_only(self.store.engine) as connection:
            rows = connection.execute(self._candidates(after)).all()
        return (rows[-1].received_at, rows[-1].message_id) if rows else None

    # -- messages ---------------------------------------------------------------------------------------------

    def _candidates(self, after):
        query = (select(_MESSAGE.c.message_id, _MESSAGE.c.received_at).where(_MESSAGE.c.received_at < self.cutoff)
                 .order_by(_MESSAGE.c.received_at, _MESSAGE.c.message_id).limit(self.batch))
        if after is not None:
            query = query.where(tuple_(_MESSAGE.c.received_at, _MESSAGE.c.message_id) > tuple_(*after))
        return query

    def _message_batch(self, connection: Connection, audit, after):
        """Decide and purge one batch of messages received before the cutoff; return the keyset position after it
        (None when there are no more) and what the batch did."""
        rows = connection.execute(self._candidates(after)).all()
        tally: dict = {"held": 0, "active": 0, "pending": 0, "purged": 0, "rows": collections.Counter(),
                       "purged_messages": [], "pending_deliveries": [], "doomed": set()}
        if not rows:
            return None, tally
        outcome, named, pending = self._classify(connection, [r.message_id for r in rows])
        purged = [row.message_id for row in rows if outcome[row.message_id] == PURGED]
        for row in rows:
            kind = outcome[row.message_id]
            if kind != PURGED:
                tally[kind] += 1
            if kind == PENDING:
                tally["pending_deliveries"].extend((row.message_id, ident, state)
                                                   for ident, state in pending[row.message_id])
        counts: Counts = {}
        owners = {mid: mid for mid in purged}
        _cascade(connection, _MESSAGE, _MESSAGE.c.message_id, owners, counts, dry_run=self.dry_run)
        _delete_owned(connection, _READ.c.subject, owners, counts, dry_run=self.dry_run)
        for mid in purged:
            rows_of = counts.get(mid, collections.Counter())
            if audit is not None:
                record_audit(audit, action="D", subtype="purge", agent=self.agent,
                             entities=[("message", mid)] + [("person", p) for p in sorted(named.get(mid, ()))],
                             detail={"rows": dict(sorted(rows_of.items())), "retention_days": self.retention_days,
                                     "cutoff": self.cutoff.isoformat()}, at=self.now)
            tally["purged"] += 1
            tally["rows"].update(rows_of)
            tally["purged_messages"].append(mid)
            tally["doomed"].add(mid)
        return (rows[-1].received_at, rows[-1].message_id), tally

    def _classify(self, connection: Connection, mids: list[str]):
        """Return each message's outcome, the people each names and the open deliveries of each."""
        named: dict[str, set[str]] = collections.defaultdict(set)
        for mid, person in connection.execute(select(_MP.c.message_id, _MP.c.person_id).where(
                _MP.c.message_id.in_(mids), _MP.c.person_id.is_not(None))):
            named[mid].add(person)
        people = sorted(set().union(*named.values())) if named else []
        last: dict[str, dt.datetime] = {}
        for chunk in _chunks(people):
            for person, at in connection.execute(
                    select(_MP.c.person_id, func.max(_MESSAGE.c.received_at))
                    .join(_MESSAGE, _MESSAGE.c.message_id == _MP.c.message_id)
                    .where(_MP.c.person_id.in_(chunk)).group_by(_MP.c.person_id)):
                last[person] = at
        pending: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for mid, ident, state in connection.execute(select(_DELIVERY.c.message_id, _DELIVERY.c.id, _DELIVERY.c.state)
                                                    .where(_DELIVERY.c.message_id.in_(mids),
                                                           _DELIVERY.c.state.in_(OPEN_STATES))):
            pending[mid].append((ident, state))
        for mid, ident in connection.execute(select(_UNROUTABLE.c.message_id, _UNROUTABLE.c.id).where(
                _UNROUTABLE.c.message_id.in_(mids), _UNROUTABLE.c.resolved.is_(False))):
            pending[mid].append((ident, "unroutable"))
        held = held_people(connection)
        outcome = {}
        for mid in mids:
            people_of = named.get(mid, set())
            if people_of & held:
                outcome[mid] = HELD
            elif any(last.get(p) is not None and last[p] >= self.cutoff for p in people_of):
                outcome[mid] = ACTIVE
            elif mid in pending:
                outcome[mid] = PENDING
            else:
                outcome[mid] = PURGED
        return outcome, named, pending

    # -- people -------------------------------------------------------------------------------------------------

    def _people_batch(self, connection: Connection, audit, after: str | None):
        """Purge one batch of the people left with no message; return the last person id examined (None when
        there are no more) and what the batch did."""
        tally: dict = {"people_removed": 0, "people_records": 0, "people_held": 0, "people_recent": 0,
                       "people_referenced": 0, "rows": collections.Counter()}
        with_message = [_MP.c.person_id == _PERSON.c.id, _MP.c.message_id.is_not(None)]
        if self.dry_run and self._doomed:  # in a dry run, the messages it would purge count as gone
            if len(self._doomed) <= DRY_RUN_PEOPLE_LIMIT:
                with_message.append(_MP.c.message_id.not_in(sorted(self._doomed)))
            else:
                tally["people_foreseen"] = False
        query = select(_PERSON.c.id, _PERSON.c.created_at).where(~exists().where(*with_message)).order_by(
            _PERSON.c.id).limit(self.batch)
        if after is not None:
            query = query.where(_PERSON.c.id > after)
        people = connection.execute(query).all()
        if not people:
            return None, tally
        held = held_people(connection)
        ids = [row.id for row in people]
        # What is left of them: records without a message (an agency's initial load), and when anything was last
        # decided about those.
        records: dict[str, list[int]] = collections.defaultdict(list)
        last_decided: dict[str, dt.datetime] = {}
        for chunk in _chunks(ids):
            for record_id, person in connection.execute(select(_MP.c.id, _MP.c.person_id).where(
                    _MP.c.person_id.in_(chunk), _MP.c.message_id.is_(None))):
                records[person].append(record_id)
            last_decided.update(connection.execute(
                select(_MP.c.person_id, func.max(_DECISION.c.decided_at))
                .join(_DECISION, _DECISION.c.record_id == _MP.c.id)
                .where(_MP.c.person_id.in_(chunk), _MP.c.message_id.is_(None)).group_by(_MP.c.person_id)).all())
        due = []
        for person, created_at in people:
            if person in held:
                tally["people_held"] += 1
            elif max(created_at, last_decided.get(person) or created_at) >= self.cutoff:
                tally["people_recent"] += 1
            else:
                due.append(person)
        counts: Counts = {}
        _cascade(connection, _MP, _MP.c.id, {r: p for p in due for r in records[p]}, counts, dry_run=self.dry_run)
        # A dry run cannot tell who would stay referenced once the messages are gone: it counts them all.
        referenced = set() if self.dry_run else self._referenced(connection, due)
        owners = {p: p for p in due if p not in referenced}
        # Proposals and rejection markers naming the person go with them (there is no one left to match), and
        # the reads of their chronology.
        _cascade(connection, _MATCH, _MATCH.c.candidate_person_id, owners, counts, dry_run=self.dry_run)
        _delete_owned(connection, _READ.c.subject, owners, counts, dry_run=self.dry_run)
        _delete_owned(connection, _PERSON.c.id, owners, counts, dry_run=self.dry_run)
        for person in due:
            rows_of = counts.get(person, collections.Counter())
            if person in referenced:
                tally["people_records" if records[person] else "people_referenced"] += 1
                if not records[person]:
                    continue   # nothing of theirs went: no record to write
            else:
                tally["people_removed"] += 1
            if audit is not None:
                record_audit(audit, action="D", subtype="purge", agent=self.agent, entities=[("person", person)],
                             detail={"rows": dict(sorted(rows_of.items())), "retention_days": self.retention_days,
                                     "cutoff": self.cutoff.isoformat()}, at=self.now)
            tally["rows"].update(rows_of)
        return people[-1].id, tally

    def _referenced(self, connection: Connection, people: list[str]) -> set[str]:
        """The people a row other than a proposal naming them (a match candidate) refers to: link history of
        another person's record, an event, a relation or a flag of a message still kept."""
        found: set[str] = set()
        for child, pairs in _referencing(_PERSON):
            if child is _MATCH:
                continue
            for child_column, _parent in pairs:
                for chunk in _chunks(people):
                    found.update(connection.execute(select(child_column).where(child_column.in_(chunk))
                                                    .distinct()).scalars())
        return found

"""Key rotation: every encrypted value brought under the current key, every clear value encrypted.

:func:`rotate` walks each table with encrypted columns (found in the schema's
metadata, never listed by hand) in primary-key order, a batch at a time,
each batch its own short transaction of the store (on SQLite it queues with
the gateway's writers). A value already under the current key is left
alone, so a rotation that stops can simply be run again, and one run while
the gateway accepts messages only meets values the gateway wrote under the
current key (a value changed between the read and the write is not
overwritten: the update names the value it read). Clear values, written
before encryption at rest, are encrypted; clear blocking keys
(``person_link_key``) are replaced by their keyed hashes.

The hash key does not rotate: changing it would need every look-up key
hashed again while look-ups run (docs/encryption.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import Table, Text, and_, delete, func, not_, select, type_coerce, update

from gateway.store import crypto
from gateway.store.crypto import EncryptedText, KeyedHash, KeyRing

DEFAULT_BATCH = 500


@dataclasses.dataclass
class Progress:
    """How far a rotation got in one table: rows read, values rewritten, and whether the table is done."""

    table: str
    rows: int = 0
    rewritten: int = 0
    done: bool = False


def encrypted_tables() -> dict[Table, list]:
    """Return each table with encrypted columns and those columns (from the schema's metadata)."""
    from gateway.store.schema import metadata

    found = {}
    for table in metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, EncryptedText)]
        if columns:
            found[table] = columns
    return found


def hashed_columns() -> list:
    """Return every look-up column (:class:`~gateway.store.crypto.KeyedHash`) of the schema."""
    from gateway.store.schema import metadata

    return [c for table in metadata.sorted_tables for c in table.columns if isinstance(c.type, KeyedHash)]


def rotate(store, *, batch_size: int = DEFAULT_BATCH,
           progress: Callable[[Progress], None] | None = None, agent: str = "gateway",
           now: Callable[[], dt.datetime] | None = None) -> list[Progress]:
    """Re-encrypt every value not under the current key and hash every clear look-up key; return progress.

    ``store`` is a :class:`~gateway.store.SqlMessageStore`; the keys are the
    process's (:func:`gateway.store.crypto.active`: the column types use
    them too). ``progress`` is called after each batch. Writes
    one audit record (subtype ``key-rotation``, ids and counts only) when done.
    Raises :class:`ValueError` when encryption at rest is off or
    ``batch_size`` is not positive, and :class:`~gateway.store.crypto.DecryptionError`
    for a stored value that does not decrypt (tampered, or under a key the
    ring lacks): rotation never writes over a value it cannot read.
    """
    ring = crypto.active()
    if not ring.enabled:
        raise ValueError("encryption at rest is off (GATEWAY_ENCRYPT_AT_REST=off): nothing to rotate to")
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}: give a positive number")
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))
    report = progress or (lambda _p: None)
    results = []
    for table, columns in encrypted_tables().items():
        results.append(_rotate_table(store, ring, table, columns, batch_size, report))
    for column in hashed_columns():
        results.append(_hash_clear_keys(store, ring, column, batch_size, report))
    _audit(store, ring, results, agent, clock())
    return results


def _raw(column):
    """The column as stored (no decryption, no hashing): what rotation compares and rewrites."""
    return type_coerce(column, Text if isinstance(column.type, EncryptedText) else column.type.impl)


def _rotate_table(store, ring: KeyRing, table: Table, columns: list, batch_size: int,
                  report: Callable[[Progress], None]) -> Progress:
    (key,) = table.primary_key.columns  # every encrypted table has a one-column key
    state = Progress(table.name)
    batch = select(key, *(_raw(c).label(c.name) for c in columns)).order_by(key).limit(batch_size)
    after = None
    while True:
        with store.transaction() as unit:
            connection = unit.session.connection()
            rows = connection.execute(batch if after is None else batch.where(key > after)).all()
            for row in rows:
                for column in columns:
                    stored = getattr(row, column.name)
                    if ring.is_current(stored):
                        continue
                    fresh = ring.encrypt(ring.decrypt(stored, column.type.binding), column.type.binding)
                    changed = connection.execute(
                        update(table).where(key == row[0], _raw(column) == stored)
                        .values({column.name: type_coerce(fresh, Text)})).rowcount
                    state.rewritten += changed
        state.rows += len(rows)
        if rows:
            after = rows[-1][0]
        if len(rows) < batch_size:
            state.done = True
        report(state)
        if state.done:
            return state


def _hash_clear_keys(store, ring: KeyRing, column, batch_size: int, report: Callable[[Progress], None]) -> Progress:
    """Replace the clear values of a look-up column by their keyed hashes (the other key columns kept)."""
    table = column.table
    others = [c for c in table.primary_key.columns if c is not column]
    state = Progress(f"{table.name}.{column.name}")
    clear = not_(_raw(column).startswith(crypto.HASH_PREFIX))
    while True:
        with store.transaction() as unit:
            connection = unit.session.connection()
            rows = connection.execute(select(_raw(column).label("value"), *others).where(clear)
                                      .limit(batch_size)).all()
            for row in rows:
                identity = and_(*(c == row._mapping[c.name] for c in others))
                connection.execute(delete(table).where(_raw(column) == row.value, identity))
                exists = connection.execute(select(func.count()).select_from(table).where(
                    column == row.value, identity)).scalar_one()
                if not exists:  # the gateway may have filed the same key under its hash meanwhile
                    connection.execute(table.insert().values(
                        {column.name: row.value, **{c.name: row._mapping[c.name] for c in others}}))
                state.rewritten += 1
        state.rows += len(rows)
        state.done = len(rows) < batch_size
        report(state)
        if state.done:
            return state


def remaining(store) -> dict[str, int]:
    """Return, per ``table.column``, how many stored values are not under the current key (clear or another
    key), and per look-up column how many clear keys remain: all zero after a complete rotation."""
    ring = crypto.active()
    current = f"{crypto.ENVELOPE_PREFIX}{ring.current}:"
    counts = {}
    with store.transaction() as unit:
        connection = unit.session.connection()
        for table, columns in encrypted_tables().items():
            for column in columns:
                counts[f"{table.name}.{column.name}"] = connection.execute(
                    select(func.count()).select_from(table).where(
                        _raw(column).is_not(None), not_(_raw(column).startswith(current)))).scalar_one()
        for column in hashed_columns():
            counts[f"{column.table.name}.{column.name}"] = connection.execute(
                select(func.count()).select_from(column.table).where(
                    not_(_raw(column).startswith(crypto.HASH_PREFIX)))).scalar_one()
    return counts


def _audit(store, ring: KeyRing, results: list[Progress], agent: str, at: dt.datetime) -> None:
    from gateway.audit import record_audit

    with store.transaction() as unit:
        record_audit(unit.session, action="U", subtype="key-rotation", agent=agent, entities=(),
                     detail={"key": ring.current, "rewritten": sum(p.rewritten for p in results),
                             "tables": sorted({p.table.split(".")[0] for p in results})}, at=at)

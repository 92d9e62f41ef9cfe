"""The inbox's count kept in the database: ``inbox_count``, entries per agency, status, kind and risk.

The console's inbox counted its entries at every request (``count(*)`` of the agency's range of one index of
``inbox_entry``): at 10,000 entries the biggest single cost of the page. ``inbox_count`` holds, per (agency,
status, kind, risk rank, risk, slot), how many entries there are (``n``); a page's count is the sum of a few
of its rows (``gateway.web.console.queries._inbox_total``), the overdue being the open ones less those not yet
due (a range of ``ix_inbox_entry_status_due``).

Triggers on ``inbox_entry`` keep it, in the transaction of each write, whatever makes the write (the refresh,
the delete cascaded from a delivery, a repair by hand): after an insert 1 is added to the entry's group, after
a delete 1 is taken away, after an update of the agency, status, kind, risk rank or risk 1 moves from the old
group to the new (a state update names none of them and fires nothing). A status, kind or risk that is NULL is
counted under '' (the key's columns cannot be NULL); a group's count is the sum of its slots' ``n``.

PostgreSQL: one plpgsql function (a TRUNCATE of ``inbox_entry`` empties the counts), the increment an
``INSERT ... ON CONFLICT DO UPDATE``. Concurrent writers must neither wait for one another's count rows until
they commit (an accepting transaction writes its entries early) nor deadlock on them (one transaction writes
several groups, in no fixed order: a message to two agencies, an entry deleted and made again). So each
transaction writes in a slot (0-31) that it holds alone until it ends: the first whose advisory lock (``_LOCK``,
slot) it holds already or can take at once. A slot chosen from the entry's delivery, or the transaction's id,
would be shared by concurrent writers now and then, and two of them taking two rows in opposite orders would
deadlock. A slot's ``n`` may go below 0 (an entry counted in one slot and deleted in another); rows left at 0
stay. Only while 32 transactions hold every slot does another wait (for the lock of the slot its transaction id
names): more than one gateway process has connections (30), so only several processes writing at once can
make one wait. Slots fill from 0, so a group has as many rows as the most writers there were at once.

SQLite (one writer at a time): slot 0, an upsert in each of three triggers; its foreign keys' ``ON DELETE
CASCADE`` fires the triggers of the rows it deletes.

The triggers are made first, then the counts filled from the entries already stored, in the upgrade's
transaction: on PostgreSQL ``CREATE TRIGGER`` locks ``inbox_entry`` against writes until the commit, so no
entry is written between the fill's snapshot and the triggers. A later revision that copies ``inbox_entry`` on
SQLite (Alembic's batch mode) drops its triggers with the old table and must make them again.

Revision ID: 0009_inbox_count
Revises: 0008_inbox_entry
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_inbox_count'
down_revision: str | None = '0008_inbox_entry'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SLOTS = 32
#: The first key of the slots' advisory locks (the second is the slot): 'inbx'.
_LOCK = 0x696E6278
_KEY = 'agency, status, kind, risk_rank, risk, slot'

# Add ``n`` (1 or -1) to the group of row ``row`` (NEW or OLD) in slot ``slot``.
_ADD = ("INSERT INTO inbox_count (" + _KEY + ", n) VALUES ({row}.agency, coalesce({row}.status, ''), "
        "coalesce({row}.kind, ''), {row}.risk_rank, coalesce({row}.risk, ''), {slot}, {n}) "
        "ON CONFLICT (" + _KEY + ") DO UPDATE SET n = inbox_count.n + excluded.n;")

# A transaction writes its counts in a slot it holds alone until it ends: the first of the 32 whose advisory lock
# (``_LOCK``, slot) it holds or can take at once; with every slot held by others, it waits for one.
_PG_FUNCTION = f"""
CREATE FUNCTION inbox_count_keep() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held smallint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM inbox_count;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.agency, OLD.status, OLD.kind, OLD.risk_rank, OLD.risk)
            IS NOT DISTINCT FROM (NEW.agency, NEW.status, NEW.kind, NEW.risk_rank, NEW.risk) THEN
        RETURN NULL;
    END IF;
    FOR candidate IN 0..{_SLOTS - 1} LOOP
        IF pg_try_advisory_xact_lock({_LOCK}, candidate) THEN
            held := candidate;
            EXIT;
        END IF;
    END LOOP;
    IF held IS NULL THEN
        held := txid_current() % {_SLOTS};
        PERFORM pg_advisory_xact_lock({_LOCK}, held);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        {_ADD.format(row='OLD', slot='held', n=-1)}
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_ADD.format(row='NEW', slot='held', n=1)}
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = {
    'inbox_entry_count': "AFTER INSERT OR DELETE OR UPDATE OF agency, status, kind, risk_rank, risk ON inbox_entry "
                         "FOR EACH ROW EXECUTE FUNCTION inbox_count_keep()",
    'inbox_entry_count_truncate': "AFTER TRUNCATE ON inbox_entry FOR EACH STATEMENT EXECUTE FUNCTION "
                                  "inbox_count_keep()",
}
_CHANGED = ' OR '.join(f'old.{c} IS NOT new.{c}' for c in ('agency', 'status', 'kind', 'risk_rank', 'risk'))
_SQLITE_TRIGGERS = {
    'inbox_entry_count_insert': f"AFTER INSERT ON inbox_entry BEGIN {_ADD.format(row='new', slot=0, n=1)} END",
    'inbox_entry_count_delete': f"AFTER DELETE ON inbox_entry BEGIN {_ADD.format(row='old', slot=0, n=-1)} END",
    'inbox_entry_count_update': f"AFTER UPDATE OF agency, status, kind, risk_rank, risk ON inbox_entry "
                                f"WHEN {_CHANGED} BEGIN {_ADD.format(row='old', slot=0, n=-1)} "
                                f"{_ADD.format(row='new', slot=0, n=1)} END",
}

# The groups of the entries already stored, in slot 0.
_FILL = f"""
INSERT INTO inbox_count ({_KEY}, n)
SELECT agency, coalesce(status, ''), coalesce(kind, ''), risk_rank, coalesce(risk, ''), 0, count(*)
FROM inbox_entry
GROUP BY agency, coalesce(status, ''), coalesce(kind, ''), risk_rank, coalesce(risk, '')
"""


def upgrade() -> None:
    op.create_table(
        'inbox_count',
        sa.Column('agency', sa.String(length=255), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('risk_rank', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('risk', sa.String(length=64), nullable=False),
        sa.Column('slot', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('agency', 'status', 'kind', 'risk_rank', 'risk', 'slot'),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        for name, definition in _PG_TRIGGERS.items():
            op.execute(f'CREATE TRIGGER {name} {definition}')
    else:
        for name, definition in _SQLITE_TRIGGERS.items():
            op.execute(f'CREATE TRIGGER {name} {definition}')
    op.execute(_FILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in _PG_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON inbox_entry')
        op.execute('DROP FUNCTION IF EXISTS inbox_count_keep()')
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
    op.drop_table('inbox_count')

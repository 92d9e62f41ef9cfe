"""The inbox read model: ``inbox_entry``, one row per delivery an agency's inbox lists, filled from the store.

The console's inbox sorted, filtered and counted an agency's deliveries by columns of four tables (delivery,
message_event, accepted_message and the inbox deadline), joined at every request: about 13 ms a page at
10,000 messages in-process, 45 ms sorted by risk and filtered to the overdue. Each entry holds those columns
(the delivery's destination, message, receipt time and state; the event's kind as delivered, sender, risk
and its rank, categories, lateness, version and child; the completeness score; the inbox deadline's id, due
and met times, and whether it is open or decided), so a page is one walk of one index and a count one range.

``gateway.delivery.inbox.refresh`` keeps the entries in step in the transactions that write what they copy;
this revision fills the table from the rows already stored, with the same rules in SQL (a test holds the two
to the same entries). An entry goes with its delivery (``ON DELETE CASCADE``; the retention purge follows
the foreign key). Indexes, one per order (``received_rev`` is the receipt time negated, so ties come newest
first walking forwards): due time, due time within a status, receipt, risk, what and sender (the last three
also with ties walked backwards, for descending orders).

Revision ID: 0008_inbox_entry
Revises: 0007_accepted_completeness
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_inbox_entry'
down_revision: str | None = '0007_accepted_completeness'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    'ix_inbox_entry_due': ['agency', 'due_at', 'received_rev', 'delivery_id', 'status', 'kind', 'risk'],
    'ix_inbox_entry_status_due': ['agency', 'status', 'due_at', 'received_rev', 'delivery_id', 'kind', 'risk'],
    'ix_inbox_entry_received': ['agency', 'received_at', 'delivery_id', 'status', 'due_at', 'kind', 'risk'],
    'ix_inbox_entry_risk': ['agency', 'risk_rank', 'received_rev', 'delivery_id', 'status', 'due_at', 'kind',
                            'risk'],
    'ix_inbox_entry_risk_desc': ['agency', 'risk_rank', 'received_at', 'delivery_id', 'status', 'due_at', 'kind',
                                 'risk'],
    'ix_inbox_entry_kind': ['agency', 'kind', 'received_rev', 'delivery_id', 'status', 'due_at', 'risk'],
    'ix_inbox_entry_kind_desc': ['agency', 'kind', 'received_at', 'delivery_id', 'status', 'due_at', 'risk'],
    'ix_inbox_entry_sender': ['agency', 'sender', 'received_rev', 'delivery_id', 'status', 'due_at', 'kind', 'risk'],
    'ix_inbox_entry_sender_desc': ['agency', 'sender', 'received_at', 'delivery_id', 'status', 'due_at', 'kind',
                                   'risk'],
}

# The receipt time as minus microseconds since 1970, per engine (SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff').
_RECEIVED_REV = {
    'sqlite': "-(CAST(strftime('%s', d.created_at) AS INTEGER) * 1000000 + CAST(substr(d.created_at, 21, 6) AS "
              "INTEGER))",
    'postgresql': "-CAST(ROUND(EXTRACT(EPOCH FROM d.created_at) * 1000000) AS BIGINT)",
}

# gateway.delivery.inbox.refresh's rules as of this revision: the deliveries of kinds 'message' and
# 'gateway-message'; what was delivered by the routing rule (an escalation alert, an overdue reminder, an
# Operation Encompass notification), else the event's kind; the inbox deadline (decision or Operation
# Encompass, of the destination, for a routed message only; the first made if two).
_BACKFILL = """
INSERT INTO inbox_entry (delivery_id, agency, message_id, received_at, received_rev, state, kind, has_event,
                         sender, risk, risk_rank, categories, late_days, version, child_person_id, completeness,
                         deadline_id, due_at, met_at, status)
SELECT d.id, d.destination, d.message_id, d.created_at, {received_rev}, d.state,
       CASE WHEN substr(d.rule, 1, 11) = 'escalation:' THEN 'safeguarding-alert'
            WHEN substr(d.rule, 1, 9) = 'deadline-' THEN 'deadline-overdue'
            WHEN d.rule IN ('operation-encompass-to-school', 'operation-encompass-to-la')
                THEN 'operation-encompass-notification'
            ELSE e.kind END,
       e.message_id IS NOT NULL, e.sender_agency, e.risk,
       CASE e.risk WHEN 'high' THEN 0 WHEN 'medium' THEN 1 WHEN 'standard' THEN 2 WHEN 'low' THEN 3 ELSE 4 END,
       e.categories, e.late_days, e.version, e.child_person_id, a.completeness,
       dl.id, dl.due_at, dl.met_at,
       CASE WHEN dl.id IS NULL THEN NULL WHEN dl.met_at IS NULL THEN 'open' ELSE 'decided' END
FROM delivery d
JOIN accepted_message a ON a.message_id = d.message_id
LEFT OUTER JOIN message_event e ON e.message_id = d.message_id
LEFT OUTER JOIN deadline dl ON d.kind = 'message' AND dl.id = (
    SELECT min(x.id) FROM deadline x WHERE x.message_id = d.message_id AND x.agency = d.destination
    AND x.kind IN ('referral-decision', 'operation-encompass'))
WHERE d.kind IN ('message', 'gateway-message')
"""


def upgrade() -> None:
    op.create_table(
        'inbox_entry',
        sa.Column('delivery_id', sa.String(length=36), nullable=False),
        sa.Column('agency', sa.String(length=255), nullable=False),
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_rev', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=True),
        sa.Column('has_event', sa.Boolean(), nullable=False),
        sa.Column('sender', sa.String(length=255), nullable=True),
        sa.Column('risk', sa.String(length=64), nullable=True),
        sa.Column('risk_rank', sa.SmallInteger(), nullable=False),
        sa.Column('categories', sa.Text(), nullable=True),
        sa.Column('late_days', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('child_person_id', sa.String(length=36), nullable=True),
        sa.Column('completeness', sa.SmallInteger(), nullable=True),
        sa.Column('deadline_id', sa.Integer(), nullable=True),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('met_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.String(length=8), nullable=True),
        sa.CheckConstraint("status IN ('open', 'decided')", name='ck_inbox_entry_status'),
        sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('delivery_id'),
    )
    bind = op.get_bind()
    bind.exec_driver_sql(_BACKFILL.format(received_rev=_RECEIVED_REV[bind.dialect.name]))
    with op.batch_alter_table('inbox_entry', schema=None) as batch_op:
        for name, columns in _INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox_entry', schema=None) as batch_op:
        for name in reversed(list(_INDEXES)):
            batch_op.drop_index(name)
    op.drop_table('inbox_entry')

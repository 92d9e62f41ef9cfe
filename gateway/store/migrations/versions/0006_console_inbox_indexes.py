"""Indexes the console's inbox reads its pages from, so a page costs about the same at any inbox size.

* ``ix_deadline_inbox_due`` (agency, due_at, kind, met_at, message_id): an agency's deadlines in due order,
  walked until the page is full (the inbox sorted by due time, its default) and counted under a status
  filter without reading the table;
* ``ix_delivery_inbox_received`` (destination, created_at, kind, message_id, id): an agency's deliveries in
  order of receipt (the inbox sorted by received time, and its rows without a deadline), and their count;
* ``ix_delivery_inbox_message`` (destination, message_id, kind, created_at, id): the agency's delivery of a
  message, found from its deadline, without reading the table (on SQLite a delivery's times are stored after
  its payload, and reading them walks the payload's overflow pages).

bench/console.py measures the pages (docs/console.md, "Speed").

Revision ID: 0006_console_inbox_indexes
Revises: 0005_retention
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006_console_inbox_indexes'
down_revision: str | None = '0005_retention'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.create_index('ix_deadline_inbox_due', ['agency', 'due_at', 'kind', 'met_at', 'message_id'],
                              unique=False)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_inbox_received', ['destination', 'created_at', 'kind', 'message_id', 'id'],
                              unique=False)
        batch_op.create_index('ix_delivery_inbox_message', ['destination', 'message_id', 'kind', 'created_at', 'id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_inbox_message')
        batch_op.drop_index('ix_delivery_inbox_received')
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.drop_index('ix_deadline_inbox_due')

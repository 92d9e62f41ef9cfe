"""Retention: legal holds on people, and an index to walk the messages by when they arrived.

``legal_hold`` keeps each hold's history (placed and released: who, when,
why); its ``person_id`` is not a foreign key, so the history outlives the
person's data once a hold is released and the purge removes them.
``ix_accepted_message_received`` lets the purge read the messages received
before its cutoff, oldest first, without reading the whole table.

Revision ID: 0005_retention
Revises: 0004_encryption_at_rest
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_retention'
down_revision: str | None = '0004_encryption_at_rest'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('legal_hold',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_by', sa.String(length=255), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_by', sa.String(length=255), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.create_index('ix_legal_hold_person', ['person_id', 'released_at'], unique=False)

    with op.batch_alter_table('accepted_message', schema=None) as batch_op:
        batch_op.create_index('ix_accepted_message_received', ['received_at', 'message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accepted_message', schema=None) as batch_op:
        batch_op.drop_index('ix_accepted_message_received')

    with op.batch_alter_table('legal_hold', schema=None) as batch_op:
        batch_op.drop_index('ix_legal_hold_person')

    op.drop_table('legal_hold')

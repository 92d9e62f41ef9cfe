"""Where a merged person went: ``person.merged_into`` and ``person.merged_at``.

When two people of the index are found to be one (a person confirms a possible match, or a record links to
both on its own), everything of one moves to the other and its ``person`` row stays, empty. A link to that
person's chronology (a bookmark, an earlier page, an e-mail) then showed an empty chronology: "0 events", as if
nothing were known. ``merged_into`` names the person kept and ``merged_at`` when, so that the chronology goes
on to the person kept and says why (``gateway.linkage.index.PersonIndex._merge``). Always one step: a person
merged again carries those merged into it along. People merged before this revision have NULL.

Revision ID: 0010_person_merged_into
Revises: 0009_inbox_count
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_person_merged_into'
down_revision: str | None = '0009_inbox_count'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Without a foreign key: on SQLite, adding one (or dropping a column) copies the table, and ``person`` cannot be
# dropped and made again while other tables' rows refer to it. The one writer of ``merged_into``
# (``PersonIndex._merge``) names a person it has just kept. When the retention purge later removes that person,
# a link to one merged into them ends where a link to them does: "not found". Plain ALTER TABLE both ways
# (SQLite 3.35 and later drop a column in place).


def upgrade() -> None:
    op.add_column('person', sa.Column('merged_into', sa.String(length=36), nullable=True))
    op.add_column('person', sa.Column('merged_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_person_merged_into', 'person', ['merged_into'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_person_merged_into', table_name='person')
    op.drop_column('person', 'merged_at')
    op.drop_column('person', 'merged_into')

"""The completeness score of each accepted message, kept beside its response.

``accepted_message.completeness`` (0-100, nullable): the standard's completeness score from the feedback in the
gateway's response. The console's inbox shows it for each of its rows; reading it from the response meant
decrypting and parsing 50 stored responses per page. Messages accepted before this revision keep None, and
their score is still read from their response (``gateway.web.console.queries``).

Revision ID: 0007_accepted_completeness
Revises: 0006_console_inbox_indexes
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_accepted_completeness'
down_revision: str | None = '0006_console_inbox_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accepted_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completeness', sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accepted_message', schema=None) as batch_op:
        batch_op.drop_column('completeness')

"""Encryption at rest: the personal data of ``message_person`` becomes text long enough for its envelopes.

The columns keep their values: rows written before stay clear until
``gateway keys rotate`` encrypts them (and stores the blocking keys'
keyed hashes); the gateway reads both meanwhile (docs/encryption.md). The
indexes on the NHS number, the UPN and family name with birth date go: an
encrypted value is different every time, so they could find nothing, and a
person is found through ``person_link_key``'s keyed hashes. The other
encrypted columns were text already; ``person_link_key.key`` keeps its
64 characters (a keyed hash is 46).

A downgrade restores the old types and indexes; on PostgreSQL it fails while
any envelope (longer than the old columns) is stored: it is for a database
that was never encrypted.

Revision ID: 0004_encryption_at_rest
Revises: 0003_audit_log
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_encryption_at_rest'
down_revision: str | None = '0003_audit_log'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The encrypted columns of message_person and their lengths before.
COLUMNS = {"nhs_number": 10, "upn": 13, "family": 255, "given": 255, "birth_date": 10, "postcode": 8,
           "postcode_district": 4, "sex": 16}
#: The indexes that searched them in clear.
INDEXES = {"ix_message_person_name_dob": ["family", "birth_date"], "ix_message_person_nhs": ["nhs_number"],
           "ix_message_person_upn": ["upn"]}


def upgrade() -> None:
    with op.batch_alter_table('message_person', schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
        for column, length in COLUMNS.items():
            batch_op.alter_column(column, existing_type=sa.VARCHAR(length=length), type_=sa.Text(),
                                  existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('message_person', schema=None) as batch_op:
        for column, length in COLUMNS.items():
            batch_op.alter_column(column, existing_type=sa.Text(), type_=sa.VARCHAR(length=length),
                                  existing_nullable=True)
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)

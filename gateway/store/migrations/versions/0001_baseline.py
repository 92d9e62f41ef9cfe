"""Baseline: the tables as they were when migrations began (store, directory, outbox).

Written out in full, never from the models (which change after it): the
accepted messages and the people they are about, the routing directory,
and the outbox's deliveries and unroutable messages.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The store (gateway/store/models.py).
    op.create_table(
        "accepted_message",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sender_agency", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw_message", sa.Text(), nullable=False),
        sa.Column("signed_message", sa.Text(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index("ix_accepted_message_sender_received", "accepted_message", ["sender_agency", "received_at"])

    op.create_table(
        "message_person",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("resource", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("upn", sa.String(length=13), nullable=True),
        sa.Column("family", sa.String(length=255), nullable=True),
        sa.Column("given", sa.String(length=255), nullable=True),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("postcode", sa.String(length=8), nullable=True),
        sa.Column("postcode_district", sa.String(length=4), nullable=True),
        sa.Column("occurred_at", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["accepted_message.message_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_message_person_message", "message_person", ["message_id"])
    op.create_index("ix_message_person_name_dob", "message_person", ["family", "birth_date"])
    op.create_index("ix_message_person_nhs", "message_person", ["nhs_number"])
    op.create_index("ix_message_person_record", "message_person", ["record_id"])
    op.create_index("ix_message_person_upn", "message_person", ["upn"])

    # The routing directory (gateway/routing/models.py).
    op.create_table(
        "directory_agency",
        sa.Column("uri", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=True),
        sa.CheckConstraint("(delivery = 'push' AND endpoint IS NOT NULL) OR (delivery = 'mailbox' AND endpoint IS NULL)",
                           name="ck_directory_agency_delivery"),
        sa.CheckConstraint("kind IN ('school', 'police', 'la', 'gateway')", name="ck_directory_agency_kind"),
        sa.PrimaryKeyConstraint("uri"),
        sa.UniqueConstraint("kind", "code", name="uq_directory_agency_kind_code"),
    )
    op.create_table(
        "directory_school",
        sa.Column("urn", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("la_code", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("urn"),
    )
    op.create_table(
        "directory_force_area",
        sa.Column("force_code", sa.String(length=16), nullable=False),
        sa.Column("la_code", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("force_code", "la_code"),
    )
    op.create_table(
        "directory_postcode_district",
        sa.Column("district", sa.String(length=4), nullable=False),
        sa.Column("la_code", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("district"),
    )

    # The outbox (gateway/delivery/models.py).
    op.create_table(
        "delivery",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=True),
        sa.Column("rule", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_message_id", sa.String(length=255), nullable=False),
        sa.Column("payload_header_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("mode = 'mailbox' OR endpoint IS NOT NULL", name="ck_delivery_push_endpoint"),
        sa.CheckConstraint("mode IN ('push', 'mailbox')", name="ck_delivery_mode"),
        sa.CheckConstraint("state IN ('pending', 'in-flight', 'acknowledged', 'dead-lettered')",
                           name="ck_delivery_state"),
        sa.ForeignKeyConstraint(["message_id"], ["accepted_message.message_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("destination", "payload_message_id", name="uq_delivery_destination_payload"),
    )
    op.create_index("ix_delivery_claim", "delivery", ["mode", "state", "next_attempt_at"])
    op.create_index("ix_delivery_expiry", "delivery", ["state", "expires_at"])
    op.create_index("ix_delivery_mailbox", "delivery", ["destination", "state"])
    op.create_index("ix_delivery_message", "delivery", ["message_id"])

    op.create_table(
        "delivery_unroutable",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("sender_agency", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["accepted_message.message_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_unroutable_open", "delivery_unroutable", ["resolved", "created_at"])


def downgrade() -> None:
    for table in ("delivery_unroutable", "delivery", "directory_postcode_district", "directory_force_area",
                  "directory_school", "directory_agency", "message_person", "accepted_message"):
        op.drop_table(table)  # its indexes go with it

"""The store's tables: one schema for SQLite and PostgreSQL.

Later steps (routing, outbox) add their tables to the same :class:`Base`, so
one ``create_all`` and one transaction cover them all.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware datetime stored in UTC, read back aware on both engines.

    SQLite has no time zones and would hand back naive values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps aware datetimes only")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every gateway table."""


class AcceptedMessageRow(Base):
    """A message the gateway accepted: what came in and what it answered."""

    __tablename__ = "accepted_message"

    # Bundle.identifier.value (urn:uuid:...), unique across all senders.
    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sender_agency: Mapped[str] = mapped_column(String(255), nullable=False)
    # When the gateway recorded it (its own clock) ...
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    # ... kept apart from when the sender says it sent it (Bundle.timestamp).
    message_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # SHA-256 of the signed payload: a resend with the same id but other
    # content is a conflict, not a replay.
    payload_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    raw_message: Mapped[str] = mapped_column(Text, nullable=False)
    signed_message: Mapped[str] = mapped_column(Text, nullable=False)
    response_status: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_accepted_message_sender_received", "sender_agency", "received_at"),)

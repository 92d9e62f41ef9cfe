"""The store's tables: one schema for SQLite and PostgreSQL.

Later steps (routing, outbox) add their tables to the same :class:`Base`, so
one schema (:mod:`gateway.store.schema`, built only by its Alembic
migrations) and one transaction cover them all.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from gateway.store.crypto import EncryptedText


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
    # Encrypted at rest (gateway.store.crypto): what the sender wrote, and the gateway's answer quoting it.
    raw_message: Mapped[str] = mapped_column(EncryptedText("accepted_message.raw_message"), nullable=False)
    signed_message: Mapped[str] = mapped_column(EncryptedText("accepted_message.signed_message"), nullable=False)
    response_status: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(EncryptedText("accepted_message.response_body"), nullable=False)
    # The completeness score (0-100) in the response's feedback, so that lists do not decrypt and parse the
    # response: None without feedback, or for a message accepted before revision 0007 (read from the response).
    completeness: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_accepted_message_sender_received", "sender_agency", "received_at"),)


class MessagePersonRow(Base):
    """A person a message is about, normalised for searching (one row per Patient / RelatedPerson).

    The message keeps everything as sent; this row keeps only what finding
    the same person again needs, in a few known columns (so the person index
    of a later step, and encryption at rest, have one place to look). An
    identifier that failed its check is never stored here: it must never link.
    """

    __tablename__ = "message_person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The message it came in; None for a record of an agency's initial load (``gateway people import``).
    message_id: Mapped[str | None] = mapped_column(String(255), ForeignKey("accepted_message.message_id"))
    # Who holds the record (the sender agency, or the import's source) and its id there.
    source: Mapped[str | None] = mapped_column(String(255))
    source_record: Mapped[str | None] = mapped_column(String(255))
    # The referral's ServiceRequest id: the same for every version of one source record.
    record_id: Mapped[str | None] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(80), nullable=False)        # e.g. Patient/<id>
    role: Mapped[str] = mapped_column(String(64), nullable=False)            # child, or the RoleCode (MTH, ...)
    # The personal data, encrypted at rest (gateway.store.crypto); a person is found through the keyed hashes
    # of the blocking keys (person_link_key), which include the NHS number and the UPN.
    nhs_number: Mapped[str | None] = mapped_column(EncryptedText("message_person.nhs_number"))  # valid ones only
    upn: Mapped[str | None] = mapped_column(EncryptedText("message_person.upn"))                # valid ones only
    family: Mapped[str | None] = mapped_column(EncryptedText("message_person.family"))          # case-, accent-folded
    given: Mapped[str | None] = mapped_column(EncryptedText("message_person.given"))            # folded, space-joined
    birth_date: Mapped[str | None] = mapped_column(EncryptedText("message_person.birth_date"))  # YYYY-MM-DD
    postcode: Mapped[str | None] = mapped_column(EncryptedText("message_person.postcode"))      # "SP10 1AA"
    postcode_district: Mapped[str | None] = mapped_column(EncryptedText("message_person.postcode_district"))
    sex: Mapped[str | None] = mapped_column(EncryptedText("message_person.sex"))  # male / female / other / unknown
    school_urn: Mapped[str | None] = mapped_column(String(6))
    # The person index (gateway.linkage): the person this record belongs to, and how it was decided.
    person_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("person.id"))
    link_decision: Mapped[str | None] = mapped_column(String(16))             # linked / possible / new / ...
    link_score: Mapped[float | None] = mapped_column(Float)
    link_by_person: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # When it happened (the source's event time) and when it was recorded, kept apart.
    occurred_at: Mapped[str | None] = mapped_column(String(40))
    recorded_at: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        Index("ix_message_person_record", "record_id"),
        Index("ix_message_person_message", "message_id"),
        Index("ix_message_person_person", "person_id"),
        Index("ix_message_person_source", "source", "source_record"),
    )

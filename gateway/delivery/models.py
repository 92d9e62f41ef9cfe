"""The outbox's tables, on the store's :class:`~gateway.store.models.Base`.

They are in the store's schema (:mod:`gateway.store.schema`, built by its
migrations) with the accepted messages, so a message and all its
deliveries commit in one transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.crypto import EncryptedText
from gateway.store.models import Base, UTCDateTime

# Delivery states (docs/delivery.md has the state diagram).
PENDING = "pending"                # waiting for its next attempt (push) or to be fetched (mailbox)
IN_FLIGHT = "in-flight"            # claimed by a worker until lease_until
ACKNOWLEDGED = "acknowledged"      # the destination acknowledged it: closed
DEAD_LETTERED = "dead-lettered"    # given up (fatal-error answer or too old): closed, operators see it
STATES = (PENDING, IN_FLIGHT, ACKNOWLEDGED, DEAD_LETTERED)
OPEN_STATES = (PENDING, IN_FLIGHT)

# How a delivery reaches its destination (the directory's delivery modes).
PUSH = "push"
MAILBOX = "mailbox"

# What a delivery carries.
KIND_MESSAGE = "message"           # a routed message
KIND_NOTICE = "fatal-error-notice"  # a fatal-error response to a sender whose message was not delivered
# A message the gateway built about an accepted one (an escalation alert, an overdue reminder): when it cannot be
# delivered the operators are told (an ERROR record), not the accepted message's sender, who did not send it.
KIND_BUILT = "gateway-message"


class DeliveryRow(Base):
    """One message on its way to one destination agency."""

    __tablename__ = "delivery"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)   # a UUID; the mailbox's <id>
    # The accepted message this delivery comes from (for a notice: the one that was not delivered).
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, default=KIND_MESSAGE)
    destination: Mapped[str] = mapped_column(String(255), nullable=False)          # agency URI
    mode: Mapped[str] = mapped_column(String(16), nullable=False)                  # push | mailbox
    endpoint: Mapped[str | None] = mapped_column(String(2048))                     # push: HTTPS URL
    rule: Mapped[str | None] = mapped_column(String(255))
    # The signed Bundle exactly as it is delivered, its message id and MessageHeader.id
    # (an acknowledgement's response.identifier must be that header id).
    payload: Mapped[str] = mapped_column(EncryptedText("delivery.payload"), nullable=False)  # encrypted at rest
    payload_message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    payload_header_id: Mapped[str] = mapped_column(String(255), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    # When the destination must have it by (Operation Encompass: 08:30 next school day); a deadline, not a delay.
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # When it is dead-lettered if still not acknowledged (created + Settings.delivery_max_age_seconds).
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_error: Mapped[str | None] = mapped_column(EncryptedText("delivery.last_error"))  # may quote the payload
    # The claim: which worker, until when, and a token that fences a worker whose lease ran out.
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claim_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    dead_lettered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # A destination receives a given message id once; a police notice split per child
        # gives the same LA several deliveries from one accepted message, each its own id.
        UniqueConstraint("destination", "payload_message_id", name="uq_delivery_destination_payload"),
        CheckConstraint("state IN ('pending', 'in-flight', 'acknowledged', 'dead-lettered')",
                        name="ck_delivery_state"),
        CheckConstraint("mode IN ('push', 'mailbox')", name="ck_delivery_mode"),
        CheckConstraint("mode = 'mailbox' OR endpoint IS NOT NULL", name="ck_delivery_push_endpoint"),
        # What workers claim: open push deliveries by time.
        Index("ix_delivery_claim", "mode", "state", "next_attempt_at"),
        Index("ix_delivery_mailbox", "destination", "state"),
        Index("ix_delivery_message", "message_id"),
        Index("ix_delivery_expiry", "state", "expires_at"),
        # The console's inbox (revision 0006): an agency's deliveries in order of receipt, and one message's.
        Index("ix_delivery_inbox_received", "destination", "created_at", "kind", "message_id", "id"),
        Index("ix_delivery_inbox_message", "destination", "message_id", "kind", "created_at", "id"),
    )


class UnroutableRow(Base):
    """A message (or part of one) for which routing found no destination: held for an operator."""

    __tablename__ = "delivery_unroutable"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)
    sender_agency: Mapped[str] = mapped_column(String(255), nullable=False)
    rule: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(EncryptedText("delivery_unroutable.reason"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    resolved: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(EncryptedText("delivery_unroutable.resolution"))

    __table_args__ = (Index("ix_delivery_unroutable_open", "resolved", "created_at"),)

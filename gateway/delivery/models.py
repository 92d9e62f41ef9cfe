"""The outbox's tables, on the store's :class:`~gateway.store.models.Base`.

They are in the store's schema (:mod:`gateway.store.schema`, built by its
migrations) with the accepted messages, so a message and all its
deliveries commit in one transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Text,
                        UniqueConstraint)
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


# Inbox entry statuses: the inbox deadline of the entry is open (not met) or decided (met); None without one.
INBOX_OPEN = "open"
INBOX_DECIDED = "decided"


class InboxEntryRow(Base):
    """One row of an agency's inbox (the console's ``/la/inbox``): a delivery of a message to it, with what the
    inbox sorts, filters and shows copied from the delivery, its message's event, its accepted message and its
    inbox deadline, so that a page and its count are each one walk of one index, without joins.

    A read model: :func:`gateway.delivery.inbox.refresh` builds the entries of given deliveries from those
    tables (the only place that says what an entry holds), in the transaction that changed them (revision
    0008). ``overdue`` is not stored (it changes with the clock): ``status = 'open' AND due_at < now``.
    """

    __tablename__ = "inbox_entry"

    delivery_id: Mapped[str] = mapped_column(String(36), ForeignKey("delivery.id", ondelete="CASCADE"),
                                             primary_key=True)
    agency: Mapped[str] = mapped_column(String(255), nullable=False)        # the delivery's destination
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)  # delivery.created_at
    # received_at as a number that sorts the other way (minus microseconds since 1970): an index ordered by
    # (column, received_rev, delivery_id) gives the inbox's order of ties, newest first, walked forwards.
    received_rev: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str | None] = mapped_column(String(64))      # what was delivered (an alert, a reminder, the event)
    has_event: Mapped[bool] = mapped_column(Boolean, nullable=False)       # the message has a message_event
    sender: Mapped[str | None] = mapped_column(String(255))
    risk: Mapped[str | None] = mapped_column(String(64))
    risk_rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)   # high 0 ... low 3, none or other 4
    categories: Mapped[str | None] = mapped_column(Text)                   # JSON list of codes
    late_days: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer)
    child_person_id: Mapped[str | None] = mapped_column(String(36))
    completeness: Mapped[int | None] = mapped_column(SmallInteger)
    # The inbox deadline (the agency's decision or Operation Encompass deadline of the message), if any.
    deadline_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    met_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str | None] = mapped_column(String(8))                  # open / decided / None (no deadline)

    __table_args__ = (
        CheckConstraint("status IN ('open', 'decided')", name="ck_inbox_entry_status"),
        # One index per order: (agency, sort column, ties newest first, delivery id), then the filter columns,
        # so that a page is one walk that stops at its end, filtered inside the index, and a count one range.
        # Descending: the index with received_at walked backwards (ties of one received_at sorted by id).
        Index("ix_inbox_entry_due", "agency", "due_at", "received_rev", "delivery_id", "status", "kind", "risk"),
        Index("ix_inbox_entry_status_due", "agency", "status", "due_at", "received_rev", "delivery_id", "kind",
              "risk"),
        Index("ix_inbox_entry_received", "agency", "received_at", "delivery_id", "status", "due_at", "kind", "risk"),
        Index("ix_inbox_entry_risk", "agency", "risk_rank", "received_rev", "delivery_id", "status", "due_at",
              "kind", "risk"),
        Index("ix_inbox_entry_risk_desc", "agency", "risk_rank", "received_at", "delivery_id", "status", "due_at",
              "kind", "risk"),
        Index("ix_inbox_entry_kind", "agency", "kind", "received_rev", "delivery_id", "status", "due_at", "risk"),
        Index("ix_inbox_entry_kind_desc", "agency", "kind", "received_at", "delivery_id", "status", "due_at",
              "risk"),
        Index("ix_inbox_entry_sender", "agency", "sender", "received_rev", "delivery_id", "status", "due_at",
              "kind", "risk"),
        Index("ix_inbox_entry_sender_desc", "agency", "sender", "received_at", "delivery_id", "status", "due_at",
              "kind", "risk"),
    )


#: ``inbox_count``'s value for a status, kind or risk that is NULL in ``inbox_entry`` (a key column cannot be NULL).
INBOX_COUNT_NONE = ""
#: ``inbox_count``'s slots per group on PostgreSQL (revision 0009); SQLite, one writer at a time, uses slot 0 only.
#: More than a gateway process has database connections (gateway.store.engine: 20 and 10 more), so its writers
#: never wait for a slot. (The revision's triggers hold their own copy: it must not import the models.)
INBOX_COUNT_SLOTS = 32


class InboxCountRow(Base):
    """How many inbox entries each agency has of each status, kind and risk (the inbox's count, ``/la/inbox``).

    Kept by triggers on ``inbox_entry`` (revision 0009), in the transaction of every write to an entry, whatever
    makes it (:func:`gateway.delivery.inbox.refresh`, a state update, the delete cascaded from a delivery): an
    insert adds 1 to its group, a delete takes 1 away, an update of the agency, status, kind or risk moves 1 from
    the old group to the new. So the sum of ``n`` over a group's rows always equals ``count(*)`` of its entries;
    nothing in Python writes this table.

    Status, kind and risk are :data:`INBOX_COUNT_NONE` (``''``) where the entry's are NULL: the key's columns
    cannot be NULL, and the inbox filters by values, never by ''. ``slot`` spreads one group over up to
    :data:`INBOX_COUNT_SLOTS` rows on PostgreSQL: each writing transaction counts in a slot it holds alone (an
    advisory lock) until it ends, so concurrent writers neither wait for nor deadlock on one another's rows.
    One slot's ``n`` may go below 0 (an entry counted in one slot and deleted in another): only the sum counts.
    Rows whose ``n`` is 0 stay.
    """

    __tablename__ = "inbox_count"

    agency: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), primary_key=True)        # open / decided / '' (no deadline)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    risk_rank: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    risk: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)

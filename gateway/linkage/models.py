"""The person index's tables: people, how each record was linked, and what a person decided.

A *record* is one person as one source knows them: a ``message_person`` row
(a Patient or RelatedPerson of an accepted message, or a row of an agency's
initial load). Every record belongs to exactly one *person*. How it came to
belong there is in ``person_link_decision`` (append-only: who or what
decided, when, why, with the score a person can read). A ``possible_match``
waits for a person to confirm or reject it; a person's decision is a marker
that re-scoring never overturns. Personal data stays in the few known
columns of ``message_person`` (encryption at rest, a later step, has one place
to look); the blocking keys are in ``person_link_key``.

The other tables are what links messages: the events of the chronology
(``message_event``), versions of one source record, possible duplicates,
escalations that fired, and deadlines.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.crypto import EncryptedText, KeyedHash
from gateway.store.models import Base, UTCDateTime

# Link decisions (person_link_decision.decision, message_person.link_decision).
LINKED, POSSIBLE, NEW = "linked", "possible", "new"
CONFIRMED, REJECTED, UNLINKED = "confirmed", "rejected", "unlinked"
# Review states (possible_match.status, possible_duplicate.status).
OPEN = "open"
DISMISSED = "dismissed"


class PersonRow(Base):
    """One person (a child or an adult), to which one or more records are linked."""

    __tablename__ = "person"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)          # child / adult
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Agency URI of the children's services of the child's home LA, as last known: who may read the chronology.
    home_la: Mapped[str | None] = mapped_column(String(255))
    # Found to be one with another person, who was kept: that person's id, and when (the row stays, with nothing
    # of its own, so that a link to it leads on to the person kept). One step: never a person merged in turn.
    # No foreign key (revision 0010 says why): PersonIndex._merge writes it; the purge may leave it naming no one.
    merged_into: Mapped[str | None] = mapped_column(String(36))
    merged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # A legal hold on a person is a row of legal_hold (gateway/retention/models.py), which keeps its history.

    __table_args__ = (Index("ix_person_home_la", "home_la"), Index("ix_person_merged_into", "merged_into"))


class LinkKeyRow(Base):
    """A blocking key under which a record is filed, to find candidates for a new record."""

    __tablename__ = "person_link_key"

    # The keyed hash of the key (gateway.store.crypto.KeyedHash): the column hashes what is bound to it.
    key: Mapped[str] = mapped_column(KeyedHash(), primary_key=True)
    record_id: Mapped[int] = mapped_column(Integer, ForeignKey("message_person.id"), primary_key=True)

    __table_args__ = (Index("ix_person_link_key_record", "record_id"),)


class LinkDecisionRow(Base):
    """One decision about which person a record belongs to (append-only history)."""

    __tablename__ = "person_link_decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, ForeignKey("message_person.id"), nullable=False)
    person_id: Mapped[str] = mapped_column(String(36), ForeignKey("person.id"), nullable=False)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    # MatchScore.as_dict() and the reason, as JSON: each field's agreement and weight (and the values compared).
    explanation: Mapped[str | None] = mapped_column(EncryptedText("person_link_decision.explanation"))
    # "gateway" (the match model, with its version) or the agency and user who decided.
    decided_by: Mapped[str] = mapped_column(String(255), nullable=False)
    by_person: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    reason: Mapped[str] = mapped_column(EncryptedText("person_link_decision.reason"), nullable=False)

    __table_args__ = (Index("ix_person_link_decision_record", "record_id"),)


class PossibleMatchRow(Base):
    """A record that may be a person already known: a person confirms or rejects it."""

    __tablename__ = "possible_match"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, ForeignKey("message_person.id"), nullable=False)
    candidate_person_id: Mapped[str] = mapped_column(String(36), ForeignKey("person.id"), nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(EncryptedText("possible_match.explanation"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=OPEN)
    # Who may decide: children's services of the child's home LA (agency URI).
    home_la: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(EncryptedText("possible_match.reason"))

    __table_args__ = (
        UniqueConstraint("record_id", "candidate_person_id", name="uq_possible_match_pair"),
        Index("ix_possible_match_status", "status", "home_la"),
    )


class RelationRow(Base):
    """Two people named together in a message: a child and an adult, or two children of one household."""

    __tablename__ = "person_relation"

    person_id: Mapped[str] = mapped_column(String(36), ForeignKey("person.id"), primary_key=True)
    related_person_id: Mapped[str] = mapped_column(String(36), ForeignKey("person.id"), primary_key=True)
    # The RoleCode of the related person to the child (MTH, FTH, ...), or "household".
    relation: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)

    __table_args__ = (Index("ix_person_relation_related", "related_person_id"),)


class MessageEventRow(Base):
    """What the chronology shows of one accepted message, extracted once when it is accepted."""

    __tablename__ = "message_event"

    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"),
                                            primary_key=True)
    sender_agency: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)          # the message event code
    child_person_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("person.id"))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    categories: Mapped[str] = mapped_column(Text, nullable=False, default="[]")   # JSON list of codes
    notice_type: Mapped[str | None] = mapped_column(String(64))
    risk: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(64))
    disclosure: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    referral: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    late_days: Mapped[int | None] = mapped_column(Integer)     # submitted this many days after it happened (late)
    summary: Mapped[str] = mapped_column(EncryptedText("message_event.summary"), nullable=False, default="")
    # Versions: the same sender and source record id is a new version of the earlier record.
    source_record: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    previous_message_id: Mapped[str | None] = mapped_column(String(255))
    changes: Mapped[str | None] = mapped_column(EncryptedText("message_event.changes"))  # JSON: what changed
    # The referral this message answers (a referral outcome), by message id.
    answers_message_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_message_event_child", "child_person_id", "occurred_at"),
        Index("ix_message_event_source", "sender_agency", "source_record", "version"),
        Index("ix_message_event_answers", "answers_message_id"),
    )


class PossibleDuplicateRow(Base):
    """Two messages from one sender about one child, near-identical: both delivered, a person decides."""

    __tablename__ = "possible_duplicate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)
    duplicate_of: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"),
                                              nullable=False)
    similarity: Mapped[float] = mapped_column(Float, nullable=False)
    reason: Mapped[str] = mapped_column(EncryptedText("possible_duplicate.reason"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=OPEN)
    home_la: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(EncryptedText("possible_duplicate.decision_reason"))

    __table_args__ = (
        UniqueConstraint("message_id", "duplicate_of", name="uq_possible_duplicate_pair"),
        Index("ix_possible_duplicate_status", "status", "home_la"),
    )


class EscalationRow(Base):
    """An escalation rule that fired about a child: a FHIR Flag, and the alert sent."""

    __tablename__ = "escalation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(64), nullable=False)
    person_id: Mapped[str] = mapped_column(String(36), ForeignKey("person.id"), nullable=False)
    # The accepted message whose arrival made the rule fire.
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)
    trigger_key: Mapped[str] = mapped_column(String(64), nullable=False)   # sha256 of the triggering message ids
    triggers: Mapped[str] = mapped_column(Text, nullable=False)            # JSON list of message ids
    reason: Mapped[str] = mapped_column(EncryptedText("escalation.reason"), nullable=False)
    home_la: Mapped[str | None] = mapped_column(String(255))
    flag: Mapped[str] = mapped_column(EncryptedText("escalation.flag"), nullable=False)  # the FHIR Flag, JSON
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (
        UniqueConstraint("rule_id", "person_id", "trigger_key", name="uq_escalation_once"),
        Index("ix_escalation_person", "person_id"),
    )


class DeadlineRow(Base):
    """Something an agency must do by a time: decide on a referral, complete an assessment, read a notification."""

    __tablename__ = "deadline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), ForeignKey("accepted_message.message_id"), nullable=False)
    agency: Mapped[str] = mapped_column(String(255), nullable=False)       # who must act
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    met_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    met_by_message_id: Mapped[str | None] = mapped_column(String(255))
    alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("message_id", "agency", "kind", name="uq_deadline_once"),
        Index("ix_deadline_open", "met_at", "due_at"),
        Index("ix_deadline_agency", "agency", "kind"),
        # The console's inbox (revision 0006): an agency's deadlines in due order.
        Index("ix_deadline_inbox_due", "agency", "due_at", "kind", "met_at", "message_id"),
    )


class PersonalDataReadRow(Base):
    """A read of personal data (a chronology, a possible match): who, what, when. The audit log of a later
    step takes these over; until then each read is recorded here, in the reading transaction."""

    __tablename__ = "personal_data_read"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency: Mapped[str] = mapped_column(String(255), nullable=False)
    what: Mapped[str] = mapped_column(String(64), nullable=False)          # chronology / possible-matches / ...
    subject: Mapped[str | None] = mapped_column(String(255))               # the person id, match id ...
    read_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)

    __table_args__ = (Index("ix_personal_data_read_subject", "subject", "read_at"),)

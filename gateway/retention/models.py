"""The retention step's table: legal holds on people.

A hold is a record of a legal instruction (an inquiry, litigation, a
subject access request being answered): while it is active, the retention
purge (:mod:`gateway.retention.purge`) keeps every message that names the
person, and the person. A hold is never deleted or edited except to record
its release, so the table is its own history: who placed it, when and why,
who released it, when and why.

``person_id`` is deliberately not a foreign key to ``person``: the hold's
history outlives the person's data (after a release, the purge may remove
the person; the record that a hold existed and was lifted stays). The
person's existence is checked when a hold is placed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import AcceptedMessageRow, Base, UTCDateTime


class LegalHoldRow(Base):
    """One legal hold on one person: active while ``released_at`` is NULL."""

    __tablename__ = "legal_hold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(36), nullable=False)
    # Why (a case or inquiry reference, not a narrative: no names here) and who placed it (operator and role).
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    placed_by: Mapped[str] = mapped_column(String(255), nullable=False)
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    released_by: Mapped[str | None] = mapped_column(String(255))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    release_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_legal_hold_person", "person_id", "released_at"),)


#: The purge walks the messages received before its cutoff, oldest first, by (received_at, message_id): an
#: index of the retention step's on the store's table (kept here with the step that needs it).
RECEIVED_INDEX = Index("ix_accepted_message_received", AcceptedMessageRow.__table__.c.received_at,
                       AcceptedMessageRow.__table__.c.message_id)

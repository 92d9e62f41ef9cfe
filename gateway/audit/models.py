"""The audit log's tables: the hash-chained records, the chain's head, and the signed checkpoints.

``audit_event`` is append-only: rows are only ever inserted, by
:func:`gateway.audit.record_audit`, in the transaction of the action they
record. On PostgreSQL a trigger (revision ``0003_audit_log``) refuses UPDATE,
DELETE and TRUNCATE on it, and SQLite gets triggers refusing UPDATE and
DELETE; ``gateway audit verify`` still finds an edit by anyone who drops them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime

# SQLite makes an INTEGER PRIMARY KEY the row id (no second index); PostgreSQL needs 64 bits for a long life.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class AuditEventRow(Base):
    """One audit record, shaped like a FHIR AuditEvent (ids and codes only, never personal data).

    ``hash`` is SHA-256 over ``prev_hash`` and the record's RFC 8785
    canonical form (:func:`gateway.audit.chain.canonical_record`), so an
    edited, deleted, inserted or reordered row breaks the chain from there on.
    """

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)  # 1, 2, 3 ... no gaps
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    action: Mapped[str] = mapped_column(String(1), nullable=False)          # AuditEvent.action: C R U D E
    subtype: Mapped[str] = mapped_column(String(32), nullable=False)        # submission, refusal, read ...
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)        # success / failure / ...
    agent: Mapped[str] = mapped_column(String(255), nullable=False)         # agency URI, "gateway" or an operator
    entities: Mapped[str] = mapped_column(Text, nullable=False)             # JSON [[kind, id], ...]
    detail: Mapped[str | None] = mapped_column(Text)                        # JSON object of codes, or NULL
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_audit_event_recorded", "recorded_at"),)


class AuditChainHeadRow(Base):
    """The chain's last sequence number and hash: one row (id 1), which every append locks and moves on.

    Appends serialise on it (PostgreSQL row lock, SQLite's one writer), so
    sequence numbers have no gaps and each record chains to the one before it,
    whichever process or thread writes. A rolled-back transaction rolls the
    head back with its records.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(_SEQ, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditCheckpointRow(Base):
    """The chain's hash at a sequence number, signed by the gateway's key (a detached ES256 JWS).

    Anyone rewriting the whole chain from some record on (recomputing every
    hash) would need the gateway's key to sign checkpoints that match it.
    """

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(_SEQ, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)             # compact JWS, payload detached

    __table_args__ = (Index("ix_audit_checkpoint_signed", "signed_at"),)

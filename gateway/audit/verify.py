"""``gateway audit verify``: walk the chain in batches and say where, if anywhere, it was tampered with.

Every record is recomputed from its columns and checked against its own
hash (an edit), its sequence number against the one before (a deletion), and
its ``prev_hash`` against the hash before it (an insertion, a reordering, or
an edit whose hash was recomputed). At the first break the walk stops and
looks around it to say which of these it is. Each checkpoint's signature is
checked, and its hash compared with the chain's at its sequence number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib

from sqlalchemy import Connection, select

from gateway.audit.chain import GENESIS, canonical_from_columns, head, raw_records
from gateway.audit.checkpoints import checkpoints, signature_problem
from gateway.audit.models import AuditEventRow
from gateway.signing.signatures import TrustAnchor

_EVENT = AuditEventRow.__table__

#: What can be wrong, as ``Problem.kind``.
KINDS = ("edited", "missing", "inserted", "out-of-order", "checkpoint-signature", "checkpoint-mismatch")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong: the first sequence number it concerns, what kind, and a sentence for the operator."""

    seq: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.kind}: {self.message}"


@dataclasses.dataclass
class Report:
    """What ``verify`` found: records and checkpoints checked, and the problems (empty when all is well)."""

    records: int = 0
    checkpoints: int = 0
    head_seq: int | None = None
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _seq_of(connection: Connection, column, value: str) -> list[int]:
    return list(connection.execute(select(_EVENT.c.seq).where(column == value).order_by(_EVENT.c.seq)).scalars())


def _broken_link(connection: Connection, seq: int, expected_prev: str, claimed_prev: str) -> Problem:
    """Name what a record whose ``prev_hash`` is not the hash before it means (looked up once, at the break)."""
    if seq == 1:
        return Problem(seq, "edited", "the first record does not start the chain (its prev_hash is not zero)")
    follows = [s for s in _seq_of(connection, _EVENT.c.hash, claimed_prev) if s != seq - 1]
    successors = [s for s in _seq_of(connection, _EVENT.c.prev_hash, expected_prev) if s != seq]
    if follows == [seq - 2]:
        return Problem(seq - 1, "inserted", f"it is not part of the chain: record {seq} chains to record {seq - 2} "
                       "past it")
    if follows:
        return Problem(seq, "out-of-order", f"it chains to record {follows[0]}, not to record {seq - 1}: "
                       "records were moved")
    if successors == [seq + 1]:
        return Problem(seq, "inserted", f"it is not part of the chain: record {seq + 1} chains to record "
                       f"{seq - 1} past it")
    if successors:
        return Problem(seq, "out-of-order", f"record {successors[0]} is the one that chains to record {seq - 1}: "
                       "records were moved")
    return Problem(seq - 1, "edited", f"record {seq} does not chain to it: it was edited and its hash "
                   "recomputed (or records were deleted here and the rest renumbered)")


def verify(connection: Connection, trust: TrustAnchor | None, *, now: dt.datetime, batch: int = 20_000) -> Report:
    """Walk the whole chain and every checkpoint; return a :class:`Report`.

    ``trust`` is the deployment CA (and CRL) the checkpoints' signatures
    must chain to; ``None`` skips the signature checks (the report then
    says no checkpoint was checked). The chain walk stops at the first
    break, which it names; checkpoint problems are all listed.
    """
    report = Report()
    current_head = head(connection)
    report.head_seq = current_head[0] if current_head else None
    marks = checkpoints(connection)
    by_seq: dict[int, list] = {}
    for mark in marks:
        by_seq.setdefault(mark.seq, []).append(mark)
    if trust is not None:
        for mark in marks:
            problem = signature_problem(mark, trust, now=now)
            if problem is not None:
                report.problems.append(Problem(mark.seq, "checkpoint-signature",
                                               f"checkpoint {mark.id} (signed {mark.signed_at.isoformat()}): "
                                               f"{problem}"))
        report.checkpoints = len(marks)

    expected, prev = 1, GENESIS
    broken: Problem | None = None
    link_break: tuple | None = None
    sha256, fromhex = hashlib.sha256, bytes.fromhex
    walk = contextlib.closing(raw_records(connection, batch=batch))
    with walk as rows:
        for seq, recorded, action, subtype, outcome, agent, entities, detail, prev_hash, stored_hash in rows:
            if seq != expected:
                broken = Problem(expected, "missing", f"records {expected} to {seq - 1} are missing (deleted)"
                                 if seq - 1 > expected else f"record {expected} is missing (deleted)")
                break
            if prev_hash != prev:
                link_break = (seq, prev, prev_hash)  # looked into once the walk's cursor is closed
                break
            canonical = canonical_from_columns(recorded, action, subtype, outcome, agent, entities, detail)
            if sha256(fromhex(prev) + canonical).hexdigest() != stored_hash:
                broken = Problem(seq, "edited", "its content does not match its hash: it was changed after it was "
                                 "written")
                break
            if seq in by_seq:
                for mark in by_seq[seq]:
                    if mark.hash != stored_hash:
                        report.problems.append(Problem(
                            seq, "checkpoint-mismatch", f"checkpoint {mark.id} signed another hash for this "
                            "record: the chain was rewritten from here or before"))
            prev, expected = stored_hash, expected + 1
    if link_break is not None:
        broken = _broken_link(connection, *link_break)
    report.records = expected - 1
    last = expected - 1
    if broken is None and report.head_seq is not None:
        if last < report.head_seq:
            broken = Problem(last + 1, "missing", f"the chain ends at record {last} but its head says "
                             f"{report.head_seq}: the last records were deleted")
        elif last > report.head_seq:
            broken = Problem(report.head_seq + 1, "inserted", f"records {report.head_seq + 1} to {last} are past "
                             f"the chain's head ({report.head_seq}): they were added by hand")
        elif current_head[1] != prev:
            broken = Problem(last, "edited", "its hash is not the one the chain's head recorded: it was edited and "
                             "its hash recomputed")
    if broken is not None:
        report.problems.insert(0, broken)
    for mark in marks:  # checkpoints beyond what the walk reached
        if mark.seq > last and broken is None:
            report.problems.append(Problem(mark.seq, "missing", f"checkpoint {mark.id} vouches for record "
                                           f"{mark.seq}, which the chain does not reach: records were deleted"))
    report.problems.sort(key=lambda p: (p.seq, KINDS.index(p.kind)))
    return report

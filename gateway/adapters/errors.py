"""Errors of translation: a rejected record, a broken mapping, a refused adapter."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a record cannot become a message: the field, its place, why, what to do."""

    field: str
    location: str
    reason: str
    action: str = ""


class RecordRejected(Exception):
    """A record cannot become a message; ``problems`` says every reason found."""

    def __init__(self, problems: list[Problem], location: str):
        self.problems, self.location = problems, location
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))


class RecordSkipped(Exception):
    """A record is read and understood but gives no message (e.g. a notice naming no child)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MappingError(Exception):
    """A mapping file (or ConceptMap) is broken: a defect for the integrator, not bad input."""


class AdapterConflict(Exception):
    """Two adapters claim the same format name; neither is guessed at."""

"""Contracts shared by every adapter: readers, records, errors and adapters.

A *reader* turns an input file into a stream of :class:`RawRecord` (or
:class:`BadRecord` for a record that cannot even be read), one at a time, so
memory stays flat however large the file. A *mapping* (declarative, in
``mappings/<format>/``) or a vendor's Python *adapter* turns each raw record
into canonical records (see :mod:`gateway.model.canonical`), from which the
model builds FHIR message Bundles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol, runtime_checkable


class InputUnreadable(Exception):
    """The input as a whole cannot be read (wrong kind of file, DOCTYPE, no header).

    ``str(exc)`` is a complete sentence for a person: it names the file, what
    is wrong and what to do. Translation stops and the command exits non-zero.
    """

    def __init__(self, file: str, reason: str, action: str = "", location: str | None = None):
        self.file, self.reason, self.action, self.location = file, reason, action, location
        where = f" at {location}" if location else ""
        super().__init__(f"{file}{where}: {reason}" + (f" {action}" if action else ""))


@dataclasses.dataclass(frozen=True)
class RawRecord:
    """One record read from an input, not yet interpreted.

    ``location`` names the place for people ("row 7", "/concerns/12",
    "/ppn:NoticeBatch/ppn:PublicProtectionNotice[3]"); ``data`` is what the
    reader produced (CSV: dict header -> cell; JSON: the decoded object; XML:
    an ``lxml`` element, valid only until the next record is read);
    ``context`` carries document-level facts (export version, organisation,
    ignored columns) that every record of the file shares; ``line`` is the
    1-based first line in the file when known.
    """

    location: str
    data: Any
    context: dict = dataclasses.field(default_factory=dict)
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """A record that was found but cannot be read (malformed, fails the schema).

    It counts as *read* and as *rejected*; it never stops the rest.
    """

    location: str
    reason: str
    action: str
    field: str | None = None
    line: int | None = None


class Reader(Protocol):
    """Streams records out of one input file."""

    def __call__(self, stream: BinaryIO, filename: str, options: dict) -> Iterator[RawRecord | BadRecord]:
        """Yield records in file order.

        Raises :class:`InputUnreadable` (before or during iteration) when the
        input as a whole cannot be read; records already yielded stay valid.
        """
        ...


@runtime_checkable
class Adapter(Protocol):
    """A source format: what ``gateway formats`` lists and ``translate`` runs.

    Built-in formats are declarative mappings; a vendor plugs in its own
    object with these attributes through the ``gateway.adapters`` entry-point
    group.
    """

    format_id: str
    description: str
    version: str

    def records(self, stream: BinaryIO, filename: str) -> Iterator[RawRecord | BadRecord]:
        """Yield the raw records of ``stream``; raises :class:`InputUnreadable`."""
        ...

    def translate(self, record: RawRecord, *, filename: str, now) -> "list[dict]":
        """Return the canonical records (:mod:`gateway.model.canonical`) for one raw record.

        ``filename`` names the input for provenance; ``now`` is the
        translation time (a timezone-aware datetime) for checks such as "a
        date of birth in the future". Raises
        :class:`gateway.adapters.errors.RecordRejected` when the record cannot
        become a message (a required field missing or unusable), and
        :class:`gateway.adapters.errors.RecordSkipped` when it gives none.
        """
        ...

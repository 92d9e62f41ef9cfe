"""Contracts of the directory, apart from their implementation (:mod:`.services`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Protocol

from gateway.model.systems import AGENCY_KINDS, agency_uri
from gateway.routing.codes import DELIVERY_MAILBOX, DELIVERY_MODES, DELIVERY_PUSH


@dataclasses.dataclass(frozen=True)
class Agency:
    """An agency in the directory.

    ``uri`` (from ``kind`` and ``code``) is its certificate identity and
    ``MessageHeader.source.endpoint``. ``delivery`` is ``push`` (to the HTTPS
    ``endpoint``) or ``mailbox`` (the agency pulls; ``endpoint`` is ``None``).
    Raises :class:`ValueError` when the fields do not fit together.
    """

    kind: str
    code: str
    name: str
    delivery: str = DELIVERY_MAILBOX
    endpoint: str | None = None

    def __post_init__(self):
        if self.kind not in AGENCY_KINDS:
            raise ValueError(f"agency kind {self.kind!r} is not one of {', '.join(AGENCY_KINDS)}")
        if not self.code or ":" in self.code or self.code != self.code.strip():
            raise ValueError(f"agency code {self.code!r} must be non-empty, without ':' or spaces around it")
        if not self.name.strip():
            raise ValueError(f"agency {self.kind}:{self.code} needs a name")
        if self.delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery {self.delivery!r} is not one of {', '.join(DELIVERY_MODES)}")
        if self.delivery == DELIVERY_PUSH and not (self.endpoint or "").startswith("https://"):
            raise ValueError(f"agency {self.kind}:{self.code}: push delivery needs an https:// endpoint, "
                             f"got {self.endpoint!r}")
        if self.delivery == DELIVERY_MAILBOX and self.endpoint is not None:
            raise ValueError(f"agency {self.kind}:{self.code}: a mailbox agency has no endpoint")

    @property
    def uri(self) -> str:
        return agency_uri(self.kind, self.code)


@dataclasses.dataclass(frozen=True)
class School:
    """A school: its DfE URN, name and the DfE number of its local authority."""

    urn: str
    name: str
    la_code: str


@dataclasses.dataclass(frozen=True)
class RejectedRow:
    """A row an import did not take: its row number in the file (header = 1) and why."""

    row: int
    reason: str


@dataclasses.dataclass
class ImportReport:
    """What ``import_postcodes`` did.

    ``rows_read = imported + rejected + skipped``. ``rejections`` keeps the
    first ``MAX_KEPT`` rejected rows (the count is exact); ``conflicts`` the
    first districts that the file puts in more than one LA (the last row wins).
    """

    MAX_KEPT = 100

    source: str
    rows_read: int = 0
    imported: int = 0
    rejected: int = 0
    skipped: int = 0
    conflicting_districts: int = 0
    rejections: list[RejectedRow] = dataclasses.field(default_factory=list)
    conflicts: list[str] = dataclasses.field(default_factory=list)

    def reject(self, row: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < self.MAX_KEPT:
            self.rejections.append(RejectedRow(row, reason))

    def conflict(self, text: str) -> None:
        self.conflicting_districts += 1
        if len(self.conflicts) < self.MAX_KEPT:
            self.conflicts.append(text)


class ImportFormatError(ValueError):
    """The import file as a whole cannot be used (no header, no postcode or LA column)."""


class AgencyDirectory(Protocol):
    """Read access to the directory: what routing rules look up."""

    def agency(self, uri: str) -> Agency | None:
        """Return the agency with this URI (certificate identity), or ``None``."""

    def agencies_by_uri(self, uris) -> dict[str, Agency]:
        """Return the agencies of these URIs that the directory holds, by URI (one look-up for many)."""

    def agency_by_code(self, kind: str, code: str) -> Agency | None:
        """Return the agency of ``kind`` (school, police, la, gateway) with ``code``, or ``None``."""

    def agencies(self, kind: str | None = None) -> list[Agency]:
        """Return every agency (of ``kind`` when given), ordered by kind then code."""

    def la_for_postcode(self, postcode: str) -> str | None:
        """Return the DfE LA number for a postcode or district (``SP10 1AA``, ``sp10``).

        Returns ``None`` when it is not a postcode or its district is not in the directory.
        """

    def la_of_school(self, urn: str) -> str | None:
        """Return the DfE LA number of the school with this URN, or ``None`` if unknown."""

    def school(self, urn: str) -> School | None:
        """Return the school with this URN, or ``None``."""

    def school_agency(self, urn: str) -> Agency | None:
        """Return the agency of the school with this URN, or ``None`` if it is not connected."""

    def force_area(self, force_code: str) -> frozenset[str]:
        """Return the DfE LA numbers in a police force's area (empty if unknown)."""


class DirectoryMaintenance(Protocol):
    """Write access to the directory, for operators (``gateway directory``)."""

    def add_agency(self, agency: Agency) -> None:
        """Add ``agency``, or replace the one with the same URI."""

    def add_school(self, school: School) -> None:
        """Add ``school``, or replace the one with the same URN.

        Raises :class:`ValueError` for a URN that is not 6 digits or a bad LA number.
        """

    def set_force_area(self, force_code: str, la_codes: Iterable[str]) -> None:
        """Make ``la_codes`` the whole area of the force. Raises :class:`ValueError` for a bad LA number."""

    def add_district(self, district: str, la_code: str, *, source: str = "add") -> None:
        """Put a postcode district (or a postcode's district) in an LA, replacing what was there.

        Raises :class:`ValueError` for a bad district or LA number.
        """

"""The directory on SQL (SQLite or PostgreSQL): :class:`Directory`.

It takes a SQLAlchemy ``Session`` (it then works inside the caller's
transaction and never commits: use this from an accept step) or an
``Engine`` (each call is its own short transaction).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import record_audit
from gateway.model.identifiers import check_urn
from gateway.routing.interfaces import Agency, ImportFormatError, ImportReport, School
from gateway.routing.models import AgencyRow, ForceAreaRow, PostcodeDistrictRow, SchoolRow
from gateway.routing.places import check_la_code, normalise_district
from gateway.store.engine import read_only

DATA_DIR = Path(__file__).parent / "data"
SEED_FILE = DATA_DIR / "family-a-directory.json"

#: Header names recognised by ``import_postcodes``, lower case, in order of preference.
POSTCODE_COLUMNS = ("postcode", "district", "postcode_district", "pcds", "pcd", "pcd7", "pcd8")
LA_COLUMNS = ("la_code", "dfe_la", "dfe_la_number", "la_number", "la")
#: ONS Postcode Directory: a postcode with a termination date no longer exists.
TERMINATED_COLUMN = "doterm"


_AGENCY = AgencyRow.__table__
_AGENCY_SELECT = select(_AGENCY.c.kind, _AGENCY.c.code, _AGENCY.c.name, _AGENCY.c.delivery, _AGENCY.c.endpoint)
# The lookups routing makes for every message, built once with bound parameters.
_AGENCY_BY_URI = _AGENCY_SELECT.where(_AGENCY.c.uri == bindparam("uri"))
_AGENCY_BY_CODE = _AGENCY_SELECT.where(_AGENCY.c.kind == bindparam("kind"), _AGENCY.c.code == bindparam("code"))
_LA_OF_DISTRICT = select(PostcodeDistrictRow.__table__.c.la_code).where(
    PostcodeDistrictRow.__table__.c.district == bindparam("district"))
_SCHOOL = select(SchoolRow.__table__.c.urn, SchoolRow.__table__.c.name, SchoolRow.__table__.c.la_code).where(
    SchoolRow.__table__.c.urn == bindparam("urn"))
_FORCE_AREA = select(ForceAreaRow.__table__.c.la_code).where(ForceAreaRow.__table__.c.force_code == bindparam("force"))


def _agency(row) -> Agency:
    return Agency(kind=row.kind, code=row.code, name=row.name, delivery=row.delivery, endpoint=row.endpoint)


def _la(raw: str) -> str:
    checked = check_la_code(raw)
    if not checked.valid:
        raise ValueError(checked.problem)
    return checked.value


class Directory:
    """:class:`~gateway.routing.interfaces.AgencyDirectory` and
    :class:`~gateway.routing.interfaces.DirectoryMaintenance` on SQL."""

    def __init__(self, bind: Session | Engine):
        if isinstance(bind, Session):
            self._session: Session | None = bind
            self._sessions = None
        else:
            self._session = None
            self._sessions = sessionmaker(bind, expire_on_commit=False)
        self._engine = bind.get_bind() if isinstance(bind, Session) else bind

    @contextmanager
    def _use(self) -> Iterator[Session]:
        if self._session is not None:
            yield self._session
            return
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for lookups: the caller's transaction, or a short read-only one of its own."""
        if self._session is not None:
            yield self._session.connection()
            return
        with read_only(self._engine) as connection:
            yield connection

    # Lookups -----------------------------------------------------------------------
    # Core statements, not the ORM: routing runs several lookups for every accepted message.
    def agency(self, uri: str) -> Agency | None:
        with self._read() as connection:
            row = connection.execute(_AGENCY_BY_URI, {"uri": uri}).first()
            return _agency(row) if row is not None else None

    def agencies_by_uri(self, uris) -> dict[str, Agency]:
        wanted = sorted(set(uris))
        if not wanted:
            return {}
        with self._read() as connection:
            return {row.uri: _agency(row) for row in connection.execute(
                _AGENCY_SELECT.add_columns(_AGENCY.c.uri).where(_AGENCY.c.uri.in_(wanted)))}

    def agency_by_code(self, kind: str, code: str) -> Agency | None:
        with self._read() as connection:
            row = connection.execute(_AGENCY_BY_CODE, {"kind": kind, "code": code}).first()
            return _agency(row) if row is not None else None

    def agencies(self, kind: str | None = None) -> list[Agency]:
        query = _AGENCY_SELECT.order_by(_AGENCY.c.kind, _AGENCY.c.code)
        if kind is not None:
            query = query.where(_AGENCY.c.kind == kind)
        with self._read() as connection:
            return [_agency(row) for row in connection.execute(query)]

    def la_for_postcode(self, postcode: str) -> str | None:
        district = normalise_district(postcode)
        if district is None:
            return None
        with self._read() as connection:
            return connection.execute(_LA_OF_DISTRICT, {"district": district}).scalar()

    def school(self, urn: str) -> School | None:
        with self._read() as connection:
            row = connection.execute(_SCHOOL, {"urn": str(urn).strip()}).first()
            return School(row.urn, row.name, row.la_code) if row is not None else None

    def la_of_school(self, urn: str) -> str | None:
        found = self.school(urn)
        return found.la_code if found is not None else None

    def school_agency(self, urn: str) -> Agency | None:
        return self.agency_by_code("school", str(urn).strip())

    def force_area(self, force_code: str) -> frozenset[str]:
        with self._read() as connection:
            return frozenset(connection.execute(_FORCE_AREA, {"force": force_code}).scalars())

    def districts_of(self, la_code: str) -> list[str]:
        """Return the postcode districts the directory puts in ``la_code``, sorted."""
        with self._use() as session:
            return sorted(session.scalars(select(PostcodeDistrictRow.district)
                                          .where(PostcodeDistrictRow.la_code == la_code)))

    # Maintenance -----------------------------------------------------------------------
    def add_agency(self, agency: Agency) -> None:
        with self._use() as session:
            existing = session.scalars(select(AgencyRow).where(AgencyRow.kind == agency.kind,
                                                               AgencyRow.code == agency.code)).first()
            if existing is None:
                existing = AgencyRow(uri=agency.uri)
                session.add(existing)
            existing.kind, existing.code, existing.name = agency.kind, agency.code, agency.name
            existing.delivery, existing.endpoint = agency.delivery, agency.endpoint
            session.flush()
            _audit_change(session, "agency", [("agency", agency.uri)], delivery=agency.delivery)

    def add_school(self, school: School) -> None:
        checked = check_urn(school.urn)
        if not checked.valid:
            raise ValueError(checked.problem)
        la_code = _la(school.la_code)
        with self._use() as session:
            session.merge(SchoolRow(urn=checked.value, name=school.name, la_code=la_code))
            session.flush()
            _audit_change(session, "school", [("school", checked.value)], la=la_code)

    def set_force_area(self, force_code: str, la_codes: Iterable[str]) -> None:
        codes = sorted({_la(code) for code in la_codes})
        with self._use() as session:
            session.execute(delete(ForceAreaRow).where(ForceAreaRow.force_code == force_code))
            session.add_all(ForceAreaRow(force_code=force_code, la_code=code) for code in codes)
            session.flush()
            _audit_change(session, "force-area", [("force", force_code)], las=codes)

    def add_district(self, district: str, la_code: str, *, source: str = "add") -> None:
        normal = normalise_district(district)
        if normal is None:
            raise ValueError(f"{district!r} is not a UK postcode or postcode district")
        la = _la(la_code)
        with self._use() as session:
            session.merge(PostcodeDistrictRow(district=normal, la_code=la, source=source, source_row=None))
            session.flush()
            _audit_change(session, "district", [("district", normal)], la=la, source=source)

    def load_seed(self, path: Path = SEED_FILE) -> dict[str, int]:
        """Load a directory seed file (JSON: agencies, schools, force_areas, districts).

        Existing rows with the same keys are replaced; others are kept.
        Returns the number of each kind of row loaded. Raises ``ValueError``
        (naming the entry) for an entry that is not valid and ``OSError`` when
        the file cannot be read.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        counts = {"agencies": 0, "schools": 0, "force_areas": 0, "districts": 0}
        for i, entry in enumerate(data.get("agencies", [])):
            try:
                self.add_agency(Agency(**entry))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: agencies[{i}]: {exc}") from None
            counts["agencies"] += 1
        for i, entry in enumerate(data.get("schools", [])):
            try:
                self.add_school(School(**entry))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: schools[{i}]: {exc}") from None
            counts["schools"] += 1
        for force_code, la_codes in data.get("force_areas", {}).items():
            try:
                self.set_force_area(force_code, la_codes)
            except ValueError as exc:
                raise ValueError(f"{path}: force_areas.{force_code}: {exc}") from None
            counts["force_areas"] += 1
        for district, la_code in data.get("districts", {}).items():
            try:
                self.add_district(district, la_code, source="seed")
            except ValueError as exc:
                raise ValueError(f"{path}: districts.{district}: {exc}") from None
            counts["districts"] += 1
        return counts

    def import_postcodes(self, stream: IO[str], *, source: str, now: dt.datetime, batch_size: int = 1000,
                         postcode_column: str | None = None, la_column: str | None = None,
                         allow_unknown_la: bool = False) -> ImportReport:
        """Stream a postcode → LA CSV into the district table; return an :class:`ImportReport`.

        The CSV has a header row. The postcode column (a full postcode or a
        district) is the first of :data:`POSTCODE_COLUMNS` present, or
        ``postcode_column``; the LA column (DfE LA number) the first of
        :data:`LA_COLUMNS`, or ``la_column``. Rows are read one at a time and
        written ``batch_size`` districts at a time, upserting by district,
        so memory stays flat however long the file. An ONS-style
        ``doterm`` column marks terminated postcodes, which are skipped.
        With a ``Session`` the rows join the caller's transaction; with an
        ``Engine`` the whole import is one transaction (all or nothing).
        Raises :class:`ImportFormatError` when the header lacks a column.
        """
        report = ImportReport(source=f"import {source} at {now.astimezone(dt.timezone.utc).isoformat()}"[:255])
        reader = csv.reader(stream)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFormatError(f"{source}: the file is empty; expected a header row such as "
                                    "'postcode,la_code'") from None
        except csv.Error as exc:
            raise ImportFormatError(f"{source}: row 1: not CSV: {exc}") from None
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        pc_index = _column(names, postcode_column, POSTCODE_COLUMNS, "postcode", source)
        la_index = _column(names, la_column, LA_COLUMNS, "LA", source)
        term_index = names.index(TERMINATED_COLUMN) if TERMINATED_COLUMN in names else None
        width = max(pc_index, la_index, term_index or 0)

        with self._use() as session:
            batch: dict[str, tuple[str, int]] = {}
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    report.rows_read += 1
                    report.reject(reader.line_num, f"not CSV: {exc}")
                    continue
                row_number = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # a blank line is not a row
                report.rows_read += 1
                if len(row) <= width:
                    report.reject(row_number, f"has {len(row)} columns; the header has {len(names)}")
                    continue
                if term_index is not None and row[term_index].strip():
                    report.skipped += 1
                    continue
                district = normalise_district(row[pc_index])
                if district is None:
                    report.reject(row_number, f"{names[pc_index]} {row[pc_index]!r} is not a UK postcode or "
                                              "postcode district")
                    continue
                la = check_la_code(row[la_index], allow_unknown=allow_unknown_la)
                if not la.valid:
                    report.reject(row_number, la.problem)
                    continue
                report.imported += 1
                previous = batch.get(district)
                if previous is not None and previous[0] != la.value:
                    report.conflict(f"district {district}: row {previous[1]} says LA {previous[0]}, "
                                    f"row {row_number} says LA {la.value}; kept {la.value}")
                batch[district] = (la.value, row_number)
                if len(batch) >= batch_size:
                    _write_batch(session, batch, report)
                    batch = {}
            if batch:
                _write_batch(session, batch, report)
            _audit_change(session, "postcode-import", [("import", source)], now=now, imported=report.imported,
                          rejected=report.rejected, skipped=report.skipped)
        return report


def _audit_change(session: Session, change: str, entities: list, *, now: dt.datetime | None = None,
                  **detail) -> None:
    """A change to the directory (routing configuration), audited in its transaction; the directory's
    maintenance is an operator's (its commands, the seed)."""
    record_audit(session, action="U", subtype="configuration", agent="operator", entities=entities,
                 detail={"change": change, **detail}, at=now or dt.datetime.now(dt.timezone.utc))


def _column(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, source: str) -> int:
    if wanted is not None:
        if wanted.lower() not in names:
            raise ImportFormatError(f"{source}: row 1: no column {wanted!r}; the header has {', '.join(names)}")
        return names.index(wanted.lower())
    for candidate in candidates:
        if candidate in names:
            return names.index(candidate)
    raise ImportFormatError(f"{source}: row 1: no {what} column; expected one of {', '.join(candidates)} "
                            f"(the header has {', '.join(names) or 'nothing'})")


def _write_batch(session: Session, batch: dict[str, tuple[str, int]], report: ImportReport) -> None:
    # A district this same import already put in another LA spans a border: report it.
    earlier = session.execute(select(PostcodeDistrictRow.district, PostcodeDistrictRow.la_code,
                                     PostcodeDistrictRow.source_row)
                              .where(PostcodeDistrictRow.source == report.source,
                                     PostcodeDistrictRow.district.in_(list(batch))))
    for district, la_code, row in earlier:
        if la_code != batch[district][0]:
            report.conflict(f"district {district}: row {row} says LA {la_code}, row {batch[district][1]} says "
                            f"LA {batch[district][0]}; kept {batch[district][0]}")
    values = [{"district": d, "la_code": la, "source": report.source, "source_row": row}
              for d, (la, row) in batch.items()]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(PostcodeDistrictRow)
    statement = statement.on_conflict_do_update(
        index_elements=[PostcodeDistrictRow.district],
        set_={"la_code": statement.excluded.la_code, "source": statement.excluded.source,
              "source_row": statement.excluded.source_row})
    session.execute(statement, values)


def open_text(path: Path) -> IO[str]:
    """Open a CSV file for streaming: UTF-8 (a BOM is dropped), universal newlines as csv wants."""
    return io.open(path, encoding="utf-8-sig", newline="")

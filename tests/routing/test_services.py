"""The directory on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.routing import Agency, Directory, School
from gateway.routing.interfaces import ImportFormatError
from gateway.routing.models import PostcodeDistrictRow
from gateway.routing.places import normalise_district

from .helpers import BCP, DORSET_POLICE, HAMPSHIRE, RIVERSIDE

NOW = dt.datetime(2025, 3, 11, 9, 0, tzinfo=dt.timezone.utc)


# The seeded directory ------------------------------------------------------------------
def test_family_a_places(directory):
    assert directory.la_for_postcode("SP10 1AA") == "850"
    assert directory.la_for_postcode("BH1 2AA") == "839"
    assert directory.la_of_school("999101") == "850"
    assert directory.force_area("DOR") == {"838", "839"}
    assert directory.force_area("HAM") == {"850"}
    assert directory.force_area("XXX") == frozenset()
    hampshire = directory.agency(HAMPSHIRE)
    assert hampshire.kind == "la" and hampshire.code == "850" and hampshire.delivery == "push"
    assert hampshire.endpoint.startswith("https://")
    assert directory.agency_by_code("la", "839").uri == BCP
    assert directory.agency_by_code("police", "DOR").uri == DORSET_POLICE
    assert directory.school_agency("999101").uri == RIVERSIDE
    assert directory.school_agency("999101").delivery == "mailbox"


def test_unknown_things_are_none(directory):
    assert directory.agency("urn:x-safeguarding:agency:la:999") is None
    assert directory.la_for_postcode("ZE1 0AA") is None       # not in the directory
    assert directory.la_for_postcode("not a postcode") is None
    assert directory.la_of_school("999999") is None
    # Chalk Hill Academy is a known school (its LA is known) but not connected.
    assert directory.la_of_school("999104") == "850"
    assert directory.school_agency("999104") is None


@pytest.mark.parametrize("text", ["SP10 1AA", "sp10 1aa", "SP101AA", " SP10 ", "sp10", "SP10\t1AA"])
def test_postcodes_and_districts_are_normalised(directory, text):
    assert directory.la_for_postcode(text) == "850"


@pytest.mark.parametrize(("text", "district"), [("W1A 1AA", "W1A"), ("EC1A 1BB", "EC1A"), ("M1 1AE", "M1"),
                                                ("B33 8TH", "B33"), ("cr2 6xh", "CR2"), ("DN55 1PT", "DN55"),
                                                ("1AA", None), ("", None), ("SP10 1A", None)])
def test_normalise_district(text, district):
    assert normalise_district(text) == district


def test_agencies_by_uri_are_the_agencies_looked_up_one_by_one(directory):
    unknown = "urn:x-safeguarding:agency:la:999"
    uris = [HAMPSHIRE, BCP, DORSET_POLICE, RIVERSIDE, unknown, HAMPSHIRE]
    found = directory.agencies_by_uri(uris)
    assert found == {uri: directory.agency(uri) for uri in uris if uri != unknown}
    assert found[BCP].name == directory.agency(BCP).name and unknown not in found
    assert directory.agencies_by_uri([]) == {} and directory.agencies_by_uri(iter([unknown])) == {}


def test_agencies_are_listed_by_kind_then_code(directory):
    agencies = directory.agencies()
    assert [(a.kind, a.code) for a in agencies] == sorted((a.kind, a.code) for a in agencies)
    assert {a.code for a in directory.agencies("police")} == {"DOR", "HAM"}
    assert all(a.uri.startswith("urn:x-safeguarding:agency:") for a in agencies)


def test_seed_twice_changes_nothing(directory):
    before = (directory.agencies(), directory.districts_of("850"))
    directory.load_seed()
    assert (directory.agencies(), directory.districts_of("850")) == before


# Maintenance ----------------------------------------------------------------------------
def test_add_agency_replaces_same_kind_and_code(empty_directory):
    empty_directory.add_agency(Agency("la", "852", "Southampton children's services"))
    empty_directory.add_agency(Agency("la", "852", "Southampton MASH", "push", "https://mash.southampton.example/"))
    (agency,) = empty_directory.agencies()
    assert agency == Agency("la", "852", "Southampton MASH", "push", "https://mash.southampton.example/")


@pytest.mark.parametrize(("fields", "message"), [
    (("nobody", "1", "X"), "kind"),
    (("la", "", "X"), "code"),
    (("la", "850", " "), "name"),
    (("la", "850", "X", "push", None), "https"),
    (("la", "850", "X", "push", "http://plain.example/"), "https"),
    (("la", "850", "X", "mailbox", "https://x.example/"), "mailbox"),
    (("la", "850", "X", "carrier-pigeon"), "delivery"),
])
def test_agency_fields_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        Agency(*fields)


def test_bad_schools_districts_and_areas_are_refused(empty_directory):
    with pytest.raises(ValueError, match="URN"):
        empty_directory.add_school(School("12345", "Short URN School", "850"))
    with pytest.raises(ValueError, match="3 digits"):
        empty_directory.add_school(School("999120", "Bad LA School", "85"))
    with pytest.raises(ValueError, match="not a known"):
        empty_directory.add_district("SP10", "999")
    with pytest.raises(ValueError, match="postcode"):
        empty_directory.add_district("nowhere", "850")
    with pytest.raises(ValueError, match="ONS"):
        empty_directory.set_force_area("HAM", ["E10000014"])


def test_set_force_area_replaces_the_whole_area(directory):
    directory.set_force_area("HAM", ["850", "851", "852"])
    directory.set_force_area("HAM", ["852", "850"])
    assert directory.force_area("HAM") == {"850", "852"}


def test_newer_las_are_known(empty_directory):
    # BCP (839) and Dorset (838) date from 2019, after python-stdnum's list.
    empty_directory.add_district("BH1", "839")
    empty_directory.add_district("DT1", "838")
    assert empty_directory.la_for_postcode("DT1 1AA") == "838"


def test_a_session_bound_directory_joins_the_callers_transaction(engine):
    with Session(engine) as session:
        with session.begin():
            Directory(session).add_agency(Agency("la", "852", "Southampton children's services"))
            assert Directory(session).agency_by_code("la", "852") is not None
            session.rollback()
    assert Directory(engine).agency_by_code("la", "852") is None


def test_the_database_refuses_a_push_agency_without_endpoint(engine):
    from gateway.routing.models import AgencyRow

    with pytest.raises(IntegrityError):
        with Session(engine) as session, session.begin():
            session.add(AgencyRow(uri="urn:x-safeguarding:agency:la:852", kind="la", code="852", name="X",
                                  delivery="push", endpoint=None))


# Import -----------------------------------------------------------------------------------
def _import(directory: Directory, text: str, **options):
    return directory.import_postcodes(io.StringIO(text), source="test.csv", now=NOW, **options)


def test_import_reports_every_row(empty_directory):
    report = _import(empty_directory, "postcode,la_code\n"
                                      "SP10 1AA,850\n"          # row 2
                                      "not-a-postcode,850\n"    # row 3
                                      "BH1 2AA,E06000058\n"     # row 4: an ONS code
                                      "\n"                      # blank: not a row
                                      "BH2 5AA,839\n"           # row 6
                                      "SO23,850,extra\n"        # row 7: a district, an extra cell is fine
                                      "DT1 1AA\n"               # row 8: too few cells
                                      "M1 1AE,999\n")           # row 9: unknown LA
    assert (report.rows_read, report.imported, report.rejected, report.skipped) == (7, 3, 4, 0)
    assert report.rows_read == report.imported + report.rejected + report.skipped
    assert [r.row for r in report.rejections] == [3, 4, 8, 9]
    assert "not-a-postcode" in report.rejections[0].reason
    assert "ONS" in report.rejections[1].reason
    assert "columns" in report.rejections[2].reason
    assert "not a known" in report.rejections[3].reason
    assert empty_directory.la_for_postcode("SP10 9ZZ") == "850"
    assert empty_directory.la_for_postcode("BH2") == "839"
    assert empty_directory.la_for_postcode("SO23 8UJ") == "850"
    assert empty_directory.la_for_postcode("BH1 2AA") is None


def test_import_upserts_by_district_and_reports_districts_in_two_las(directory, engine):
    report = _import(directory, "postcode,la_code\nSP10 1AA,850\nSP10 2AB,850\nBH1 1AA,839\nBH1 9ZZ,838\n"
                                "SP10 3DE,850\n", batch_size=2)
    assert report.imported == 5 and report.conflicting_districts == 1
    assert report.conflicts == ["district BH1: row 4 says LA 839, row 5 says LA 838; kept 838"]
    assert directory.la_for_postcode("BH1") == "838"
    with Session(engine) as session:
        row = session.get(PostcodeDistrictRow, "SP10")
        assert row.source.startswith("import test.csv at 2025-03-11") and row.source_row == 6
        # Districts the file does not mention are kept.
        assert session.get(PostcodeDistrictRow, "SO23").source == "seed"


def test_import_ons_style_columns_and_terminated_postcodes(empty_directory):
    report = _import(empty_directory, "pcd7,pcds,doterm,dfe_la\nSP101AA,SP10 1AA,,850\nBH1 1AA,BH1 1AA,201804,839\n")
    assert (report.imported, report.skipped) == (1, 1)
    assert empty_directory.la_for_postcode("BH1") is None
    report = _import(empty_directory, "pc,authority\nBH1 1AA,839\n", postcode_column="PC", la_column="authority")
    assert report.imported == 1 and empty_directory.la_for_postcode("BH1") == "839"


def test_import_unknown_la_needs_the_flag(empty_directory):
    assert _import(empty_directory, "postcode,la_code\nSP10 1AA,999\n").rejected == 1
    assert _import(empty_directory, "postcode,la_code\nSP10 1AA,999\n", allow_unknown_la=True).imported == 1


@pytest.mark.parametrize(("text", "options", "message"), [
    ("", {}, "empty"),
    ("town,la_code\nAndover,850\n", {}, "no postcode column"),
    ("postcode,authority\nSP10 1AA,850\n", {}, "no LA column"),
    ("postcode,la_code\n", {"la_column": "dfe"}, "no column 'dfe'"),
])
def test_import_without_the_columns_is_refused_whole(empty_directory, text, options, message):
    with pytest.raises(ImportFormatError, match=message):
        _import(empty_directory, text, **options)


def test_import_keeps_only_the_first_rejections_but_counts_all(empty_directory):
    report = _import(empty_directory, "postcode,la_code\n" + "nowhere,850\n" * 250)
    assert report.rejected == 250 and len(report.rejections) == 100


def _generated_csv(rows: int):
    """A postcode file as a stream, generated on the fly: ``rows`` postcodes in 1,287 districts."""

    class Lines(io.TextIOBase):
        def __init__(self):
            self._lines = self._make()

        def _make(self):
            yield "postcode,la_code\n"
            letters = "ABDEFGHJLNPQRSTUWXYZ"
            areas = ["SP", "SO", "BH", "DT", "GU", "RG", "PO", "TN", "ME", "CT", "LS", "YO", "HU"]
            for i in range(rows):
                area = areas[i % len(areas)]
                district = f"{area}{(i // len(areas)) % 99 + 1}"
                la = ("850", "839", "838")[(i % len(areas)) % 3]
                yield f"{district} {i % 10}{letters[i % 20]}{letters[(i // 20) % 20]},{la}\n"

        def readline(self, size=-1):
            return next(self._lines, "")

        def __iter__(self):
            return self

        def __next__(self):
            line = self.readline()
            if not line:
                raise StopIteration
            return line

    return Lines()


def test_import_200k_rows(engine):
    rows = 200_000 if engine.dialect.name == "sqlite" else 20_000
    report = Directory(engine).import_postcodes(_generated_csv(rows), source="generated.csv", now=NOW,
                                                batch_size=2000)
    assert (report.rows_read, report.imported, report.rejected, report.conflicting_districts) == (rows, rows, 0, 0)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(PostcodeDistrictRow)) == 13 * 99


def _peak_memory(directory: Directory, rows: int) -> int:
    tracemalloc.start()
    try:
        directory.import_postcodes(_generated_csv(rows), source=f"{rows}.csv", now=NOW, batch_size=500)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_import_memory_stays_flat(tmp_path, upgraded_sqlite):
    from gateway.store.engine import make_engine

    engine = make_engine(upgraded_sqlite(tmp_path / "memory.sqlite3"))
    directory = Directory(engine)
    _peak_memory(directory, 2_000)  # warm caches (SQL compilation, regexes)
    peak = _peak_memory(directory, 50_000)
    engine.dispose()
    # Holding 50k rows (a list of cells each) would take well over 10 MB; streaming stays
    # around 2 MB, whatever the length (what remains is garbage awaiting collection).
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.2f} MB for 50k rows"

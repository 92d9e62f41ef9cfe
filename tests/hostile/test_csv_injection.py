"""CSV formula injection: no CSV the gateway writes holds a cell a spreadsheet would run.

The gateway's CSV writers: ``gateway people export`` (the person index; its record ids come from
imported files and message ids). ``gateway translate --errors``, ``--summary`` and the quality
reports write NDJSON, JSON and HTML, never CSV; the synthetic exports (``gateway synth``) are
vendor input by design, not output for people.
"""

from __future__ import annotations

import csv
import io

import pytest

from gateway.adapters.csvcells import spreadsheet_cell, spreadsheet_row

FORMULAS = ["=1+1", "+1+1", "-1+1", "@SUM(A1:A2)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://example.org","x")',
            "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("value", FORMULAS + [" =1+1", "  @x", "\uff1d1+1", "\uff0b1", "\n=1"])
def test_formula_cells_are_neutralised(value):
    assert spreadsheet_cell(value) == "'" + value


@pytest.mark.parametrize("value, cell", [("Mia Parker", "Mia Parker"), ("O'Brien", "O'Brien"), ("", ""),
                                         (None, ""), (42, "42"), ("a=b", "a=b"), ("1-2", "1-2")])
def test_other_cells_are_unchanged(value, cell):
    assert spreadsheet_cell(value) == cell


def test_a_row_through_a_csv_writer_reads_back_as_text():
    out = io.StringIO()
    csv.writer(out).writerow(spreadsheet_row(["=1+1", "Mia, Parker", '"quoted"', None]))
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'=1+1", "Mia, Parker", '"quoted"', ""]


def test_people_export_neutralises_formulas_in_record_ids(runner, tmp_path, upgraded_sqlite):
    from gateway.cli import main

    url = upgraded_sqlite(tmp_path / "gateway.sqlite3")
    source = tmp_path / "people.csv"
    rows = [["record_id", "source", "given", "family", "birth_date", "sex", "postcode", "nhs_number", "upn",
             "school_urn"]]
    rows += [[formula, "la-850", "=Mia", "+Parker", "2013-05-14", "F", "SP10 1AA", "", "", ""]
             for formula in FORMULAS]
    with open(source, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows(rows)
    env = {"GATEWAY_DATABASE_URL": url}
    result = runner.invoke(main, ["people", "import", str(source)], env=env)
    assert result.exit_code == 0, result.output
    out = tmp_path / "export.csv"
    assert runner.invoke(main, ["people", "export", "-o", str(out)], env=env).exit_code == 0
    exported = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert len(exported) == len(FORMULAS)
    for row in exported:
        for cell in row.values():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row
    # Neutralised, not lost: each record id is there (as the import strips it), behind its quote.
    assert sorted(row["record_id"] for row in exported) == sorted("'" + f.strip() for f in FORMULAS)

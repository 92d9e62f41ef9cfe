"""The streaming CSV reader: encodings, line ends, quoting, header checks, context."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord
from gateway.adapters.readers.csvstream import read_csv

TRANSLATE = Path(__file__).resolve().parents[1] / "fixtures" / "translate"
REQUIRED = ["Incident ID", "Student"]
KNOWN = ["Incident ID", "Student", "Gender", "Notes"]


def read(data: bytes, required=REQUIRED, known=KNOWN) -> list:
    return list(read_csv(io.BytesIO(data), "export.csv", {"required_columns": required, "known_columns": known}))


def test_utf8_bom_is_removed_from_the_first_header():
    records = read("\ufeffIncident ID,Student\r\n1,\"TESTER, Ada\"\r\n".encode("utf-8"))
    assert [r.data for r in records] == [{"Incident ID": "1", "Student": "TESTER, Ada"}]
    assert records[0].context["state"]["bom"] is True
    assert records[0].context["state"]["encoding"] == "utf-8"


def test_windows_1252_without_a_marker_survives_exactly():
    text = "Incident ID,Student,Notes\n7,\"D\u2019ARCY, Zo\u00eb\",\u201cno food\u201d \u2013 owes \u00a35\n"
    records = read(text.encode("cp1252"))
    assert records[0].data == {"Incident ID": "7", "Student": "D\u2019ARCY, Zo\u00eb",
                               "Notes": "\u201cno food\u201d \u2013 owes \u00a35"}
    assert records[0].context["state"]["encoding"] == "cp1252"


def test_windows_1252_fixture_file():
    with open(TRANSLATE / "schoolsafe-cp1252.csv", "rb") as stream:
        (record,) = list(read_csv(stream, "schoolsafe-cp1252.csv", {}))
    assert record.data["Student"] == "D\u2019ARCY, Zo\u00eb Ren\u00e9e"
    assert "\u201cthere\u2019s no food\u201d" in record.data["Incident"] and "\u00a35" in record.data["Incident"]
    assert record.context["state"]["encoding"] == "cp1252"


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_crlf_and_lf_give_the_same_rows(newline):
    data = newline.join(["Incident ID,Student", "1,\"A, B\"", "2,\"C, D\"", ""]).encode()
    records = read(data)
    assert [(r.location, r.line, r.data) for r in records] == [
        ("row 2", 2, {"Incident ID": "1", "Student": "A, B"}),
        ("row 3", 3, {"Incident ID": "2", "Student": "C, D"}),
    ]


def test_multi_line_cells_with_commas_and_doubled_quotes():
    data = (b'Incident ID,Student,Notes\r\n'
            b'1,"TESTER, Ada","She said ""stop, please"".\r\nThen, later:\r\n""again"""\r\n'
            b'2,"TESTER, Bo",short\r\n')
    first, second = read(data)
    assert first.data["Notes"] == 'She said "stop, please".\r\nThen, later:\r\n"again"'
    assert (first.location, first.line) == ("row 2", 2)
    # Rows count records; lines count the file's physical lines.
    assert (second.location, second.line) == ("row 3", 5)


def test_trailing_delimiters_and_trailing_empty_rows():
    data = b"Incident ID,Student,\n1,\"A, B\",\n,,\n\n2,\"C, D\",\n,,\n"
    records = read(data)
    assert all(isinstance(r, RawRecord) for r in records)
    assert [r.data for r in records] == [{"Incident ID": "1", "Student": "A, B"},
                                         {"Incident ID": "2", "Student": "C, D"}]
    assert records[0].context["columns"] == ["Incident ID", "Student"]


def test_a_row_with_too_many_cells_is_one_bad_record():
    data = b"Incident ID,Student\n1,\"A, B\"\n2,C, D\n3,\"E, F\"\n"
    records = read(data)
    assert [type(r).__name__ for r in records] == ["RawRecord", "BadRecord", "RawRecord"]
    bad = records[1]
    assert bad.location == "row 3" and bad.line == 3
    assert "3 cells" in bad.reason and "2 columns" in bad.reason
    assert bad.action


def test_short_row_cells_are_none():
    (record,) = read(b"Incident ID,Student,Gender\n1,\"A, B\"\n")
    assert record.data == {"Incident ID": "1", "Student": "A, B", "Gender": None}


def test_columns_are_found_by_name_and_extra_and_missing_ones_reported():
    (record,) = read(b"Student,Form Tutor,Incident ID\n\"A, B\",Mr X,9\n")
    assert record.data == {"Student": "A, B", "Form Tutor": "Mr X", "Incident ID": "9"}
    assert record.context["ignored_columns"] == ["Form Tutor"]
    assert record.context["missing_columns"] == ["Gender", "Notes"]


def test_missing_required_column_makes_the_input_unreadable():
    with pytest.raises(InputUnreadable) as caught:
        read(b"Incident ID,Gender\n1,F\n")
    exc = caught.value
    assert exc.file == "export.csv" and exc.location == "row 1 (header)"
    assert "'Student'" in exc.reason
    assert "export.csv at row 1 (header)" in str(exc)


@pytest.mark.parametrize("data,words", [
    (b"", "empty"),
    (b"<!DOCTYPE html>\n<html><body>Error 500</body></html>\n", "not a CSV"),
    (b'{"concerns": []}\n', "not a CSV"),
    (b"Incident ID,Student,Student\n1,a,b\n", "more than once"),
    (b"Incident ID,Student\x00\n", "NUL"),
])
def test_input_that_is_not_a_csv_export_is_refused(data, words):
    with pytest.raises(InputUnreadable) as caught:
        read(data)
    assert words in caught.value.reason


def test_rows_are_streamed_not_read_whole():
    class CountingStream:
        def __init__(self, data: bytes):
            self.inner, self.lines_read = io.BytesIO(data), 0

        def __iter__(self):
            for line in self.inner:
                self.lines_read += 1
                yield line

    body = b"Incident ID,Student\n" + b"".join(b'%d,"A, B"\n' % i for i in range(10_000))
    stream = CountingStream(body)
    records = read_csv(stream, "big.csv", {})
    first = next(records)
    assert first.data["Incident ID"] == "0"
    assert stream.lines_read < 10
    assert sum(1 for _ in records) == 9_999

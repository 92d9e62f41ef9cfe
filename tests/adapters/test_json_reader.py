"""The streaming concernhub-json reader: shapes, versions, damage, encodings and flat memory."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord
from gateway.adapters.readers.jsonstream import read_concernhub_json
from gateway.adapters.synth import concernhub_json

FIXTURES = Path(__file__).parent.parent / "fixtures" / "concernhub"
SAMPLE = Path(__file__).parent.parent / "fixtures" / "samples" / "concernhub-sample.json"
ORGANISATION = {"urn": "999214", "name": "Quillmere Primary School", "laNumber": "850"}


class Pipe(io.RawIOBase):
    """A non-seekable input that hands out a few bytes at a time, like a socket or stdin."""

    def __init__(self, data: bytes, chunk: int = 7):
        self._data, self._chunk = io.BytesIO(data), chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._data.read(min(len(buffer), self._chunk))
        buffer[:len(data)] = data
        return len(data)


def read(data: bytes | str, **options) -> list[RawRecord | BadRecord]:
    if isinstance(data, str):
        data = (FIXTURES / data).read_bytes()
    return list(read_concernhub_json(io.BytesIO(data), "export.json", options))


def unreadable(data: bytes | str) -> InputUnreadable:
    with pytest.raises(InputUnreadable) as caught:
        read(data)
    return caught.value


@pytest.fixture(params=["yajl2_c", "python"])
def backend(request) -> str:
    """Both the C backend and the pure-Python fallback give the same results."""
    return request.param


def test_whole_export_gives_one_record_per_concern_with_the_header_in_context(backend):
    records = read("whole-export.json", ijson_backend=backend)

    assert [r.location for r in records] == ["/concerns/0", "/concerns/1", "/concerns/2"]
    assert all(isinstance(r, RawRecord) for r in records)
    assert records[1].data["subject"]["lastName"] == "D'Avrenne"
    assert records[0].context == {"exportVersion": "2.3", "versionFamily": "2.x",
                                  "exportedAt": "2019-06-07T10:15:00Z", "organisation": ORGANISATION,
                                  "single": False}


def test_the_bundled_sample_reads(backend):
    [record] = read(SAMPLE.read_bytes(), ijson_backend=backend)
    assert record.data["reference"] == "CH-2019-00042"
    assert record.context["organisation"]["urn"] == "999102"


def test_numbers_come_out_as_int_and_float_never_decimal(backend):
    [first, *_] = read("whole-export.json", ijson_backend=backend)
    assert type(first.data["score"]) is float
    assert json.dumps(first.data)  # downstream JSON encoding works


@pytest.mark.parametrize("as_pipe", [False, True], ids=["seekable", "pipe"])
def test_header_after_concerns_still_reaches_every_record(as_pipe, backend):
    data = (FIXTURES / "concerns-before-organisation.json").read_bytes()
    stream = io.BufferedReader(Pipe(data)) if as_pipe else io.BytesIO(data)

    records = list(read_concernhub_json(stream, "export.json", {"ijson_backend": backend}))

    assert [r.location for r in records] == ["/concerns/0", "/concerns/1"]
    for record in records:
        assert record.context["organisation"] == ORGANISATION
        assert record.context["exportVersion"] == "2.3"
    assert records[1].data["id"].endswith("2")


def test_header_first_export_from_a_pipe_is_read_in_one_pass():
    data = (FIXTURES / "whole-export.json").read_bytes()
    records = list(read_concernhub_json(io.BufferedReader(Pipe(data, chunk=100)), "export.json", {}))
    assert len(records) == 3 and records[2].context["organisation"] == ORGANISATION


def test_utf8_bom_is_removed():
    [record] = read("bom.json")
    assert record.data["subject"]["firstName"] == "Maëlle"
    assert record.context["organisation"] == ORGANISATION


def test_single_concern_on_its_own_is_one_record_at_the_root():
    [record] = read("single-concern.json")
    assert record.location == "/"
    assert record.data["subject"]["firstName"] == "Kestrel"
    assert record.context["single"] is True
    assert record.context["versionFamily"] == "2.x"


def test_version_1x_is_accepted_and_passed_through_unchanged():
    [record] = read("version-1x.json")
    assert record.context["exportVersion"] == "1.4"
    assert record.context["versionFamily"] == "1.x"
    assert record.data["pupil"]["dob"] == "14/03/2011"  # the mapping translates, not the reader


def test_other_versions_are_refused_with_a_reason():
    error = unreadable("version-3.json")
    assert error.location == "/exportVersion"
    assert "'3.0'" in error.reason and "1.x and 2.x" in error.reason
    assert error.action


def test_an_element_that_is_not_an_object_is_a_bad_record_and_reading_goes_on(backend):
    records = read("element-not-object.json", ijson_backend=backend)

    assert [type(r) for r in records] == [RawRecord, BadRecord, BadRecord, RawRecord]
    assert records[1].location == "/concerns/1" and "a string" in records[1].reason
    assert records[2].location == "/concerns/2" and "null" in records[2].reason
    assert records[3].location == "/concerns/3"


def test_truncated_file_yields_the_concerns_before_the_break_then_one_bad_record(backend):
    size = (FIXTURES / "truncated.json").stat().st_size
    records = read("truncated.json", ijson_backend=backend)

    assert [type(r) for r in records] == [RawRecord, RawRecord, BadRecord]
    bad = records[-1]
    assert bad.location == "/concerns/2"
    assert f"byte {size}" in bad.reason
    assert bad.action.lower().startswith("re-export the file")


def test_malformed_json_mid_concerns_names_the_byte_range():
    data = b'{"exportVersion": "2.3", "exportedAt": "x", "organisation": {"urn": "999001"}, ' \
           b'"concerns": [{"id": "a"}, {"id": tru}, {"id": "c"}]}'
    *good, bad = read(data)
    assert [r.location for r in good] == ["/concerns/0"]
    assert bad.location == "/concerns/1" and "byte" in bad.reason and "malformed" in bad.reason


def test_cut_off_inside_concerns_before_a_trailing_header_is_unreadable():
    data = (FIXTURES / "concerns-before-organisation.json").read_bytes()
    error = unreadable(data[:300])
    assert error.location == "/concerns" and "organisation" in error.reason


def test_damage_after_the_last_concern_is_reported_after_the_records():
    data = (FIXTURES / "whole-export.json").read_bytes().rstrip()[:-1]  # drop the final "}"
    stream = read_concernhub_json(io.BytesIO(data), "export.json", {})
    assert len([next(stream) for _ in range(3)]) == 3
    with pytest.raises(InputUnreadable) as caught:
        next(stream)
    assert "3 concern(s) before it were read" in caught.value.reason


@pytest.mark.parametrize("name, words", [
    ("empty.json", "empty"),
    ("html-page.json", "HTML page"),
    ("top-level-array.json", "is a list"),
    ("no-concerns.json", "no concerns list"),
])
def test_inputs_that_are_not_an_export_are_unreadable(name, words):
    error = unreadable(name)
    assert words in error.reason
    assert error.action and "export.json" in str(error)


@pytest.mark.parametrize("data, words", [
    (b"   \r\n", "empty"),
    (b"Incident ID,School URN\r\n4101,999101\r\n", "not JSON"),
    (b'"just a string"', "is a string"),
    (b"\xff\xfe{\x00}\x00", "UTF-16"),
    (b'{"exportVersion": "2.3", "organisation": {}, "concerns": {"0": {}}}', "not a list"),
    (b'{"exportVersion": "2.3", "organisation": ', "not valid JSON"),
    (b'{"exportedAt": "x", "organisation": {"urn": "999001"}, "concerns": []}', "no exportVersion"),
    (b'{"exportVersion": "2.1", "exportedAt": "x", "concerns": []}', "no organisation"),
])
def test_more_unreadable_inputs(data, words):
    assert words in unreadable(data).reason


def test_memory_stays_flat_however_many_concerns(tmp_path):
    """Peak allocation while reading 5,000 concerns (9 MB) is close to that for 500, not ten times it."""
    peaks = []
    for count in (500, 5_000):
        path = tmp_path / f"{count}.json"
        with path.open("wb") as out:
            concernhub_json.generate(out, count, seed=3)
        with path.open("rb") as stream:
            tracemalloc.start()
            try:
                read_count = sum(1 for _ in read_concernhub_json(stream, path.name, {}))
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        assert read_count == count
    small, large = peaks
    assert large < small * 1.5, f"peak {large} bytes for 5,000 concerns vs {small} for 500"

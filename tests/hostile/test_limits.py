"""Bounded cost for every input: each limit is a setting, answered with an OperationOutcome naming it.

The issue's measurements, turned into tests of behaviour (never of speed: bench/ has the figures):
a 40,000-column header (quadratic: 29 s), a 50 MB single-line CSV, a 60 MiB chunked upload that
ran 190 s before its 413, JSON nested 10,000 deep (500 on $process-message and in a concern),
``Organization.identifier: 5`` (500), and one agency's requests starving the others.
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from gateway.adapters import get_adapter
from gateway.adapters.limits import LimitExceeded, Limits, applied, json_nesting_exceeds
from gateway.adapters.translate import translate_stream
from gateway.api.limits import AgencyGate, agency_gate

from .conftest import OTHER_SCHOOL, POLICE, SAMPLES, SCHOOL, counts, outcome_texts

CSV = (SAMPLES / "schoolsafe-sample.csv").read_bytes()
HEADER = CSV.split(b"\r\n", 1)[0] if b"\r\n" in CSV else CSV.split(b"\n", 1)[0]


class Upload(io.RawIOBase):
    """A request body of ``size`` bytes that arrives as it is read (no length known, as a chunked upload).

    ``gate``, when given, is waited on before the first byte: a request held in flight.
    """

    def __init__(self, size: int, fill: bytes = b"x", gate: threading.Event | None = None, head: bytes = b""):
        self.size, self.fill, self.gate, self.head = size, fill, gate, head
        self.sent = 0
        self.started = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(30)
        n = min(len(buffer), self.size - self.sent)
        if n <= 0:
            return 0
        chunk = (self.head + self.fill * n)[self.sent:self.sent + n] if self.sent < len(self.head) \
            else self.fill * n
        buffer[:n] = chunk[:n]
        self.sent += n
        return n


def _limit_named(response, setting: str, value: int) -> None:
    texts = " ".join(outcome_texts(response))
    assert f"{setting}={value}" in texts, texts


# CSV: columns, field length, lines -----------------------------------------------------------------------------

def test_a_40000_column_header_is_refused_naming_the_column_limit(gateway):
    response = gateway.ingest("schoolsafe-csv", b",".join(b"c%d" % i for i in range(40_000)) + b"\r\n")
    assert response.status_code == 413
    _limit_named(response, "GATEWAY_MAX_COLUMNS", 500)
    assert response.get_json()["issue"][0]["code"] == "too-costly"


def test_the_column_limit_is_a_setting(make_gateway):
    gateway = make_gateway(max_columns=12)
    response = gateway.ingest("schoolsafe-csv", CSV)
    assert response.status_code == 413
    _limit_named(response, "GATEWAY_MAX_COLUMNS", 12)


def test_duplicate_columns_among_many_are_named_once():
    header = [f"c{i}" for i in range(400)] + ["c7", "c7", "c9"]
    with applied(Limits(1000, 1000, 64)), pytest.raises(Exception) as caught:
        list(get_adapter("schoolsafe-csv").records(io.BytesIO(",".join(header).encode() + b"\n"), "many.csv"))
    assert "more than once: c7, c9" in str(caught.value)


def test_a_cell_longer_than_the_field_limit_rejects_its_row_only(make_gateway):
    gateway = make_gateway(max_field_chars=5_000)
    lines = CSV.decode("utf-8-sig").splitlines()
    long_row = lines[1].replace("Mia told", "Mia " + "very " * 2_000 + "told", 1)
    body = "\r\n".join([lines[0], long_row, *lines[2:]]).encode()
    response = gateway.ingest("schoolsafe-csv", body)
    assert response.status_code == 200
    assert counts(response)["rejected"] == 1 and counts(response)["records"] == 3
    assert any("Incident:" in t and "GATEWAY_MAX_FIELD_CHARS=5000" in t for t in outcome_texts(response))


def test_a_50_mb_single_line_csv_is_one_rejected_row_not_a_held_worker(make_gateway):
    """The line is read from a real file in large reads (it was read one byte at a time from the
    network stream), and its cell passes the field limit: one record, rejected, named."""
    gateway = make_gateway(max_request_bytes=60 * 1024 * 1024)
    upload = Upload(50 * 1024 * 1024, b"x", head=HEADER + b"\r\n")
    response = gateway.ingest("schoolsafe-csv", None, stream=upload)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert counts(response)["records"] == 1 and counts(response)["rejected"] == 1
    assert any("GATEWAY_MAX_FIELD_CHARS=100000" in t for t in outcome_texts(response))


# Body size: Content-Length and chunked ------------------------------------------------------------------------

def test_a_chunked_upload_is_refused_as_it_passes_the_size_limit(make_gateway):
    gateway = make_gateway(max_request_bytes=1_000_000)
    upload = Upload(60 * 1024 * 1024, head=HEADER + b"\r\n")
    response = gateway.ingest("schoolsafe-csv", None, stream=upload)
    assert response.status_code == 413
    _limit_named(response, "GATEWAY_MAX_REQUEST_BYTES", 1_000_000)
    # Refused at the limit: at most one read beyond it, never the whole 60 MiB, and nothing translated.
    assert upload.sent <= 1_000_000 + 2 * 1024 * 1024
    assert gateway.app.extensions.get("gateway.intake") is None or \
        gateway.app.extensions["gateway.intake"].store.find_accepted("x") is None


def test_a_chunked_message_is_refused_as_it_passes_the_size_limit(make_gateway):
    gateway = make_gateway(max_request_bytes=500_000)
    upload = Upload(60 * 1024 * 1024, b" ", head=b"{")
    response = gateway.message(None, stream=upload)
    assert response.status_code == 413 and upload.sent <= 500_000 + 2 * 1024 * 1024
    _limit_named(response, "GATEWAY_MAX_REQUEST_BYTES", 500_000)


@pytest.mark.parametrize("path", ["/ingest/schoolsafe-csv", "/fhir/$process-message"])
def test_a_declared_length_over_the_limit_is_413_before_reading(make_gateway, path):
    gateway = make_gateway(max_request_bytes=10_000)
    upload = Upload(20_000)
    response = gateway.post(path, None, stream=upload, content_length=20_000)
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"
    assert upload.sent == 0


# Records and time per request ------------------------------------------------------------------------------

def test_records_past_the_limit_stop_the_ingest_with_what_was_read_accounted_for(make_gateway):
    gateway = make_gateway(max_records_per_request=2)
    response = gateway.ingest("schoolsafe-csv", CSV)
    assert response.status_code == 413
    _limit_named(response, "GATEWAY_MAX_RECORDS_PER_REQUEST", 2)
    got = counts(response)
    assert got["records"] == 2 == got["translated"] + got["skipped"] + got["rejected"]


def test_time_past_the_limit_stops_the_request_naming_the_limit(make_gateway):
    gateway = make_gateway(max_request_seconds=0)
    response = gateway.ingest("schoolsafe-csv", CSV)
    assert response.status_code == 413
    _limit_named(response, "GATEWAY_MAX_REQUEST_SECONDS", 0)


def test_translate_keeps_its_accounts_when_a_limit_stops_it():
    limits = Limits(500, 100_000, 64, max_records=1)
    with pytest.raises(LimitExceeded) as caught:
        translate_stream(get_adapter("schoolsafe-csv"), io.BytesIO(CSV), "x.csv", io.StringIO(), limits=limits)
    assert caught.value.summary.records == 1 and caught.value.summary.balanced
    assert "GATEWAY_MAX_RECORDS_PER_REQUEST=1" in str(caught.value)


# Nesting ----------------------------------------------------------------------------------------------------

def test_json_nested_10000_deep_is_400_on_process_message(gateway, make_message):
    bundle = make_message()
    text = json.dumps(bundle).replace('"Fictional sender"}', '"Fictional sender", "x": %s}' %
                                      ("[" * 10_000 + "]" * 10_000), 1)
    response = gateway.message(text.encode())
    assert response.status_code == 400
    _limit_named(response, "GATEWAY_MAX_NESTING_DEPTH", 64)


def _export_with_deep_concern(position: int, depth: int) -> tuple[bytes, int]:
    export = json.loads((SAMPLES / "concernhub-sample.json").read_text(encoding="utf-8"))
    export["concerns"] = [export["concerns"][0]] * 3
    export["concerns"].insert(position, "DEEP")
    text = json.dumps(export).replace('"DEEP"', '{"id": 77, "extra": %s}' % ("[" * depth + "]" * depth))
    return text.encode(), len(export["concerns"])


def test_a_deep_concern_is_one_rejected_record_and_the_others_are_read(gateway):
    body, total = _export_with_deep_concern(1, 100)  # past the limit (64), within twice it
    response = gateway.ingest("concernhub-json", body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    got = counts(response)
    assert got["rejected"] == 1 and got["records"] == total
    assert got["translated"] + got["skipped"] == total - 1  # the others are read as before
    assert any("/concerns/1" in t and "GATEWAY_MAX_NESTING_DEPTH=64" in t for t in outcome_texts(response))


def test_a_concern_nested_10000_deep_stops_the_export_where_it_is(gateway):
    """Past twice the limit the parser is stopped (its event names grow with the depth: 10,000 levels
    left ~230 MB in the process); the concerns before are read and the answer says the rest were not."""
    body, total = _export_with_deep_concern(1, 10_000)
    response = gateway.ingest("concernhub-json", body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    got = counts(response)
    assert got["records"] == 2 and got["rejected"] == 1 and got["translated"] + got["skipped"] == 1
    stopped = next(t for t in outcome_texts(response) if "/concerns/1" in t)
    assert "GATEWAY_MAX_NESTING_DEPTH=64" in stopped and "any after it could not be read" in stopped


def test_deep_xml_is_refused_naming_the_limit(gateway):
    body = (b'<?xml version="1.0"?><NoticeBatch xmlns="urn:x-police-uk:ppn:1">' + b"<a>" * 200 + b"</a>" * 200
            + b"</NoticeBatch>")
    response = gateway.ingest("ppn-xml", body, POLICE)
    assert response.status_code == 400
    _limit_named(response, "GATEWAY_MAX_NESTING_DEPTH", 64)


@pytest.mark.parametrize("depth, deeper", [(10, False), (64, False), (65, True), (10_000, True)])
def test_json_nesting_scan(depth, deeper):
    body = b'{"a": "[[[{{{", "b": ' + b"[" * (depth - 1) + b'"]]]\\""' + b"]" * (depth - 1) + b"}"
    if depth < 500:
        assert json.loads(body)  # the bodies are JSON (10,000 deep is too deep for json itself)
    assert json_nesting_exceeds(body, 64) is deeper


def test_the_structural_pre_check_hands_deep_nesting_to_the_library():
    """It accepted 200 nested extensions, which fhir.resources cannot validate (RecursionError)."""
    from gateway.model.structure import certainly_valid

    def patient(levels):
        extension = {"url": "http://example.org/e", "valueString": "v"}
        for _ in range(levels):
            extension = {"url": "http://example.org/e", "extension": [extension]}
        return {"resourceType": "Patient", "extension": [extension]}

    assert certainly_valid(patient(5))
    assert not certainly_valid(patient(40)) and not certainly_valid(patient(200))


# Values of the wrong JSON type ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [5, "999101", None, True, {"value": "999101"}, [5], [None], [[]]])
def test_organization_identifier_of_the_wrong_type_is_a_4xx(gateway, make_message, value):
    bundle = make_message()
    bundle["entry"][1]["resource"]["identifier"] = value
    response = gateway.message(json.dumps(bundle).encode())
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:500]
    assert response.get_json()["resourceType"] == "OperationOutcome"


# One agency cannot starve the others -----------------------------------------------------------------------

def test_an_agency_with_its_requests_in_flight_gets_429_and_others_go_on(make_gateway):
    gateway = make_gateway(max_requests_per_agency=2, busy_retry_after_seconds=7)
    release = threading.Event()
    uploads = [Upload(10, gate=release) for _ in range(2)]
    answers = []
    threads = [threading.Thread(target=lambda u=u: answers.append(gateway.ingest("schoolsafe-csv", None,
                                                                                 stream=u)))
               for u in uploads]
    for thread in threads:
        thread.start()
    try:
        for upload in uploads:
            assert upload.started.wait(30)
        assert agency_gate(gateway.app).in_flight(SCHOOL) == 2
        busy = gateway.ingest("schoolsafe-csv", CSV)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "7"
        _limit_named(busy, "GATEWAY_MAX_REQUESTS_PER_AGENCY", 2)
        assert gateway.message(b"{}").status_code == 429  # $process-message counts too
        other = gateway.ingest("schoolsafe-csv", CSV, OTHER_SCHOOL)
        assert other.status_code == 200  # another agency is served meanwhile
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert len(answers) == 2 and all(a.status_code != 429 for a in answers)
    assert agency_gate(gateway.app).in_flight(SCHOOL) == 0
    assert gateway.ingest("schoolsafe-csv", CSV).status_code == 200


def test_the_gate_counts_each_agency_and_releases_on_errors():
    gate = AgencyGate(1)
    with gate.admitted("a") as first, gate.admitted("a") as second, gate.admitted("b") as other:
        assert (first, second, other) == (True, False, True)
    with pytest.raises(RuntimeError):
        with gate.admitted("a"):
            raise RuntimeError("boom")
    assert gate.in_flight("a") == 0

"""Hostile and careless input, each a test: whatever arrives, the answer is a clear 4xx (or a record
rejected with its place and reason), never a 500, never a file read, never SQL run, never a record lost.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import random
import threading

import pytest
from sqlalchemy import create_engine, inspect, select, text

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.readers.xml import read_ppn_xml
from gateway.adapters.translate import translate_file
from gateway.store.models import AcceptedMessageRow, MessagePersonRow
from gateway.transport.views import CLOCK_KEY

from .conftest import NOW, OTHER_SCHOOL, POLICE, SAMPLES, SCHOOL, counts, outcome_texts

CSV = (SAMPLES / "schoolsafe-sample.csv").read_bytes()


# The vendor's sample as it is, laNumber included (the LA the school belongs to, not a second agency).
JSON = (SAMPLES / "concernhub-sample.json").read_bytes()
XML = (SAMPLES / "ppn-sample.xml").read_bytes()
SAMPLE = {"schoolsafe-csv": CSV, "concernhub-json": JSON, "ppn-xml": XML}
SENDER = {"schoolsafe-csv": SCHOOL, "concernhub-json": OTHER_SCHOOL, "ppn-xml": POLICE}


def _answered(response, *statuses) -> dict:
    """The response is a FHIR JSON answer with one of ``statuses``; return its body."""
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:400])
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] in ("OperationOutcome", "Bundle")
    return body


# Bad JSON, XML and CSV never give a 500 ----------------------------------------------------------------------

def _garbage(sample: bytes) -> dict[str, bytes]:
    rng = random.Random(12)
    middle = len(sample) // 2
    return {
        "empty": b"",
        "whitespace": b" \r\n\t ",
        "nul bytes": b"\x00" * 64,
        "nul in the middle": sample[:middle] + b"\x00" + sample[middle:],
        "invalid utf-8 in the middle": sample[:middle] + b"\xc3\x28\xff\xfe" + sample[middle:],
        "utf-16": sample.decode("utf-8-sig").encode("utf-16"),
        "truncated": sample[:middle],
        "random bytes": bytes(rng.randrange(256) for _ in range(2_000)),
        "binary zip header": b"PK\x03\x04" + bytes(200),
        "html error page": b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
        "json array": b"[1, 2, 3]",
        "json scalar": b"42",
        "deep brackets": b"[" * 5_000,
        "deep objects": b'{"a":' * 5_000,
        "lone surrogate escape": b'{"concerns": ["\\ud800"], "exportVersion": "2.0", "organisation": {}}',
        "bom only": b"\xef\xbb\xbf",
        "another format's sample": CSV if sample is not CSV else XML,
    }


@pytest.mark.parametrize("format_id", sorted(SAMPLE))
def test_bad_input_of_every_kind_is_never_a_500(gateway, format_id):
    for name, body in _garbage(SAMPLE[format_id]).items():
        response = gateway.ingest(format_id, body, SENDER[format_id])
        outcome = _answered(response, 200, 400, 413)
        if response.status_code == 200:  # read: every record accounted for
            got = counts(response)
            assert got["records"] == got["translated"] + got["skipped"] + got["rejected"], (name, got)
        else:
            assert outcome["issue"][0]["details"]["text"], name


def test_bad_message_bodies_are_never_a_500(gateway, make_message):
    bundle = json.dumps(make_message()).encode()
    for name, body in _garbage(bundle).items():
        _answered(gateway.message(body), 400, 403, 409, 413, 422)


@pytest.mark.parametrize("path, value", [
    ("entry.1.resource.identifier", 5), ("entry.1.resource.identifier.0.value", 999101),
    # Found by fuzzing: identifies_agency put (system, value) in a set, and a list is unhashable (was a 500).
    ("entry.1.resource.identifier.0.value", ["999101"]), ("entry.1.resource.identifier.0.value", {"v": 1}),
    ("entry.1.resource.identifier.0.system", {"a": 1}),
    ("entry.0.resource.source", "x"), ("entry.0.resource.source.endpoint", ["x"]),
    ("entry.0.resource.sender", 1), ("entry.0.resource.sender.reference", {"a": 1}),
    ("entry.0.resource.eventCoding", []), ("entry.0.resource.focus", "x"), ("entry", {}), ("entry", [1]),
    ("entry.2.resource.birthDate", 20120304), ("entry.2.resource.name", "Alex"),
    ("entry.4.resource.note", [{"text": {"div": "<script>alert(1)</script>"}}]),
    ("identifier", "x"), ("timestamp", 1), ("signature", "x"), ("signature", {"data": 5}),
])
def test_values_of_the_wrong_json_type_are_a_4xx(gateway, make_message, path, value):
    bundle = make_message()
    *parents, last = path.split(".")
    target = bundle
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    _answered(gateway.message(json.dumps(bundle).encode()), 400, 403, 409, 422)


def test_nul_bytes_and_invalid_utf8_in_a_message_are_named(gateway, make_message):
    body = json.dumps(make_message()).encode()
    invalid = _answered(gateway.message(body.replace(b"Fictional narrative", b"Fictional \xff narrative")), 400)
    assert "UTF-8" in invalid["issue"][0]["details"]["text"]
    nul = body.replace(b"Fictional narrative", b"Fictional \\u0000 narrative")
    _answered(gateway.message(nul), 200, 400, 422)


# XML: no entity, DTD or include is ever resolved -------------------------------------------------------------

@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-FICTIONAL-CONTENT", encoding="utf-8")
    return path


XXE_BODIES = {
    "external entity": '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
                       '<NoticeBatch xmlns="urn:x-police-uk:ppn:1">&xxe;</NoticeBatch>',
    "billion laughs": '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">' +
                      "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                              for i in range(1, 10)) +
                      ']>\n<NoticeBatch xmlns="urn:x-police-uk:ppn:1">&lol9;</NoticeBatch>',
    "external DTD": '<?xml version="1.0"?>\n<!DOCTYPE NoticeBatch SYSTEM "file://{secret}">\n'
                    '<NoticeBatch xmlns="urn:x-police-uk:ppn:1"/>',
    "parameter entity": '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>\n'
                        '<NoticeBatch xmlns="urn:x-police-uk:ppn:1"/>',
    "network DTD": '<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
                   '<NoticeBatch xmlns="urn:x-police-uk:ppn:1"/>',
    "doctype after comments": '<?xml version="1.0"?>\n<!-- a -->\n<!-- b -->\n<!DOCTYPE x [<!ENTITY e "v">]>\n'
                              '<NoticeBatch xmlns="urn:x-police-uk:ppn:1">&e;</NoticeBatch>',
}


@pytest.mark.parametrize("name", sorted(XXE_BODIES))
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_doctypes_are_refused_before_the_parser_sees_them(gateway, secret, name, encoding):
    body = XXE_BODIES[name].replace("{secret}", str(secret))
    if encoding == "utf-16":
        body = body.replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?')
    response = gateway.ingest("ppn-xml", body.encode(encoding), POLICE)
    outcome = _answered(response, 400)
    text = json.dumps(outcome)
    assert "TOP-SECRET" not in text and "lollol" not in text
    assert "DOCTYPE" in text or "not XML" in text or "UTF" in text, text


def test_the_reader_refuses_a_doctype_without_reading_on(secret):
    body = XXE_BODIES["external entity"].replace("{secret}", str(secret)).encode()
    with pytest.raises(InputUnreadable, match="DOCTYPE"):
        list(read_ppn_xml(io.BytesIO(body), "x.xml"))


def test_an_xinclude_is_never_followed(gateway, secret):
    include = (f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret}" '
               'parse="text"/>').encode()
    body = XML.replace(b"</ppn:PublicProtectionNotice>", include + b"</ppn:PublicProtectionNotice>", 1)
    response = gateway.ingest("ppn-xml", body, POLICE)
    outcome = _answered(response, 200)
    assert "TOP-SECRET" not in json.dumps(outcome)
    assert counts(response)["rejected"] >= 1  # the schema has no place for it: that notice is rejected


def test_entities_inside_the_document_are_not_expanded():
    """Without a DOCTYPE no entity can be declared; a reference to one is broken XML, not a lookup."""
    body = XML.replace(b"</ppn:PublicProtectionNotice>", b"&xxe;</ppn:PublicProtectionNotice>", 1)
    with pytest.raises(InputUnreadable, match="XML is broken"):
        list(read_ppn_xml(io.BytesIO(body), "x.xml"))


# SQL metacharacters in every text field ----------------------------------------------------------------------

SQL = ["O'Brien; DROP TABLE person;--", "Robert'); DROP TABLE message_person;--",
       "x' OR '1'='1", '"; DELETE FROM accepted_message; --', "\\'; TRUNCATE directory_agency; --"]


def _referral_row_with(payloads: list[str]) -> bytes:
    rows = list(csv.reader(io.StringIO(CSV.decode("utf-8-sig"))))
    header, referral = rows[0], rows[3]
    texts = {"Student": f"{payloads[0].upper()}, {payloads[1]}", "Incident": f"Leo said {payloads[2]}",
             "Action Taken": payloads[3], "Parents/Carers": f"{payloads[4]} (Mother, PR)",
             "Reported By": f"{payloads[2]} (Designated Safeguarding Lead)", "Year Group": payloads[3],
             "Linked Students": f"{payloads[1]} (K850210117001)"}
    for column, value in texts.items():
        referral[header.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, referral])
    return out.getvalue().encode()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_sql_metacharacters_in_every_text_field_are_data(make_gateway, request, engine):
    database = {} if engine == "sqlite" else {"database_url": request.getfixturevalue("upgraded_postgres_schema").url}
    gateway = make_gateway(**database)
    url = gateway.settings.database_url
    db = create_engine(url)
    try:
        tables = set(inspect(db).get_table_names())
        response = gateway.ingest("schoolsafe-csv", _referral_row_with(SQL))
        _answered(response, 200)
        assert counts(response)["accepted"] == 1, outcome_texts(response)
        assert set(inspect(db).get_table_names()) == tables
        with db.connect() as connection:
            # Read through the store's columns: names and messages are encrypted at rest (docs/encryption.md).
            people = connection.execute(select(MessagePersonRow.family, MessagePersonRow.given)).all()
            raw = connection.execute(select(AcceptedMessageRow.raw_message)).scalar_one()
            assert connection.execute(text("SELECT count(*) FROM directory_agency")).scalar_one() > 0
            assert connection.execute(text("SELECT count(*) FROM person")).scalar_one() > 0
        # The person index keeps names normalised for matching: the payload is there, as words.
        assert ("obrien drop table person", "robert drop table message person") in people, people
        message = json.dumps(json.loads(raw))
        for payload in SQL[2:4]:
            assert json.dumps(payload)[1:-1] in message
    finally:
        db.dispose()


# Script in narratives: the JSON API answers JSON ---------------------------------------------------------------

def test_script_in_a_narrative_comes_back_as_json_text(gateway):
    script = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    response = gateway.ingest("schoolsafe-csv", _referral_row_with([script] * 5))
    body = _answered(response, 200)
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    message_id = next(i["diagnostics"] for i in body["issue"] if i["details"]["text"].startswith("message "))
    status = gateway.app.test_client().get(f"/messages/{message_id}/status",
                                           environ_base={"gateway.agency": SCHOOL})
    assert status.status_code < 500 and "html" not in status.headers.get("Content-Type", "")


@pytest.mark.parametrize("path", ["/ingest/<script>alert(1)</script>", "/ingest/..%2F..%2Fetc%2Fpasswd",
                                  "/ingest/..%5C..%5Cwindows", "/ingest/%00"])
def test_format_ids_in_urls_are_names_never_paths(gateway, path):
    response = gateway.post(path, CSV)
    _answered(response, 404)
    assert "root:" not in response.get_data(as_text=True)


def test_an_unknown_format_on_the_command_line_is_a_clear_error(runner, tmp_path):
    from gateway.adapters.cli import translate_command

    source = tmp_path / "in.csv"
    source.write_bytes(CSV)
    result = runner.invoke(translate_command, ["--format", "../../mappings/schoolsafe-csv", str(source)])
    assert result.exit_code != 0 and "unknown format" in result.output and "Traceback" not in result.output


def test_error_reports_name_the_file_not_its_folders(tmp_path):
    folder = tmp_path / "a" / ".." / "b"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source = folder / "export.csv"
    source.write_bytes(CSV)
    errors = io.StringIO()
    summary = translate_file(get_adapter("schoolsafe-csv"), source, io.StringIO(), errors, now=NOW)
    assert summary.file == "export.csv"
    assert all(json.loads(line)["file"] == "export.csv" for line in errors.getvalue().splitlines())


# Re-sending an accepted export ----------------------------------------------------------------------------------

def _message_texts(response) -> list[str]:
    return [t for t in outcome_texts(response) if t.startswith("message ")]


@pytest.mark.parametrize("format_id", sorted(SAMPLE))
def test_an_export_sent_again_is_already_accepted_every_time(gateway, format_id):
    first = gateway.ingest(format_id, SAMPLE[format_id], SENDER[format_id])
    accepted = counts(first)["accepted"]
    assert accepted >= 1 and all(" accepted" in t and "already" not in t for t in _message_texts(first))
    for later in (dt.timedelta(minutes=5), dt.timedelta(hours=3), dt.timedelta(days=30)):
        gateway.now = NOW + later  # inside and outside the replay window
        again = gateway.ingest(format_id, SAMPLE[format_id], SENDER[format_id])
        assert again.status_code == 200
        assert counts(again)["accepted"] == accepted and counts(again)["refused"] == 0, outcome_texts(again)
        texts = _message_texts(again)
        assert len(texts) == accepted and all("already accepted" in t for t in texts), texts


def test_concurrent_re_sends_all_answer_already_accepted(make_gateway):
    gateway = make_gateway(max_requests_per_agency=4)
    tick = itertools.count()
    gateway.app.config[CLOCK_KEY] = lambda: NOW + dt.timedelta(seconds=next(tick))  # every request its own time
    answers: list = []
    barrier = threading.Barrier(4)

    def send():
        barrier.wait(10)
        answers.append(gateway.ingest("schoolsafe-csv", CSV))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4
    texts = [t for answer in answers for t in _message_texts(answer)]
    assert all(answer.status_code == 200 and counts(answer)["refused"] == 0 for answer in answers), texts
    assert len(texts) == 4 and sum("already accepted" not in t for t in texts) == 1, texts

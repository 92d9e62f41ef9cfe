"""Translating whole files: nothing lost, one bad record never stops the rest, deterministic ids."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.goldens import check_rules, strip_volatile
from gateway.adapters.translate import Summary, translate_file, translate_stream
from gateway.model import systems as S
from gateway.model import validate_resource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
LATER = dt.datetime(2026, 3, 9, 17, 45, tzinfo=dt.timezone.utc)
FORMATS = {"schoolsafe-csv": "csv", "concernhub-json": "json", "ppn-xml": "xml"}
SAMPLES = {"schoolsafe-csv": "schoolsafe-sample.csv", "concernhub-json": "concernhub-sample.json",
           "ppn-xml": "ppn-sample.xml"}
COUNT = 300


def validator(bundle: dict):
    validate_resource(bundle)  # raises FhirInvalid, which rejects the record
    return None


def run(format_id: str, data: bytes, filename: str = "input", *, now=NOW, include_all=False):
    out, errors = io.StringIO(), io.StringIO()
    summary = translate_stream(get_adapter(format_id), io.BytesIO(data), filename, out, errors, now=now,
                               include_all=include_all, validator=validator)
    lines = out.getvalue().splitlines()
    return summary, [json.loads(line) for line in lines], [json.loads(line) for line in errors.getvalue().splitlines()]


@pytest.fixture(scope="module")
def synth() -> dict[str, bytes]:
    files = {}
    for format_id in FORMATS:
        out = io.BytesIO()
        get_adapter(format_id).synth(out, COUNT, seed=11)
        files[format_id] = out.getvalue()
    return files


@pytest.fixture(scope="module")
def translated(synth) -> dict:
    return {f: run(f, data, f"synth.{FORMATS[f]}") for f, data in synth.items()}


def resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict, rtype: str) -> dict:
    (found,) = resources(bundle, rtype)
    return found


# -- nothing lost ------------------------------------------------------------------------

@pytest.mark.parametrize("format_id", FORMATS)
def test_every_record_is_accounted_for(translated, format_id):
    summary, bundles, report = translated[format_id]
    assert summary.records == COUNT
    assert summary.records == summary.translated + summary.skipped + summary.rejected
    assert summary.translated > 0 and summary.skipped > 0
    assert len(bundles) == summary.messages >= summary.translated
    outcomes = [e["outcome"] for e in report]
    assert outcomes.count("rejected") == summary.rejected
    assert outcomes.count("skipped") == summary.skipped
    assert sum(summary.skipped_reasons.values()) == summary.skipped


@pytest.mark.parametrize("format_id", FORMATS)
def test_every_report_line_says_file_place_and_reason(translated, format_id):
    _, _, report = translated[format_id]
    for entry in report:
        assert entry["file"] == f"synth.{FORMATS[format_id]}"
        assert entry["location"] and entry["reason"]
        if entry["outcome"] == "rejected":
            assert entry["field"] and entry["place"] and entry["action"]
            assert entry["problems"][0]["field"] == entry["field"]


@pytest.mark.parametrize("format_id", FORMATS)
def test_every_record_has_one_outcome_and_no_place_twice(translated, format_id):
    _, bundles, report = translated[format_id]
    translated_places = {b_location(b) for b in bundles}
    reported_places = [e["location"] for e in report]
    assert len(reported_places) == len(set(reported_places))
    assert not translated_places & set(reported_places)
    assert len(translated_places) + len(reported_places) == COUNT


def b_location(bundle: dict) -> str:
    prov = one(bundle, "Provenance")
    return next(e["valueString"] for e in prov["extension"] if e["url"] == S.EXT_SOURCE_LOCATION)


@pytest.mark.parametrize("format_id", FORMATS)
def test_all_translates_the_non_referrals_too(synth, translated, format_id):
    summary, bundles, report = run(format_id, synth[format_id], include_all=True)
    before = translated[format_id][0]
    assert summary.records == COUNT and summary.balanced
    assert summary.skipped == before.skipped - before.skipped_reasons.get("not a referral", 0)
    assert summary.translated == before.translated + before.skipped_reasons.get("not a referral", 0)
    events = {b["entry"][0]["resource"]["eventCoding"]["code"] for b in bundles}
    if format_id != "ppn-xml":  # every PPN naming a child is a referral
        assert events == {S.EVENT_REFERRAL, S.EVENT_CONCERN}


@pytest.mark.parametrize("format_id", FORMATS)
def test_every_message_is_a_valid_message_bundle(translated, format_id):
    _, bundles, _ = translated[format_id]
    for bundle in bundles:
        assert check_rules(bundle) == []
        assert bundle["type"] == "message"
        assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"
        prov = one(bundle, "Provenance")
        urls = {e["url"]: e for e in prov["extension"]}
        assert urls[S.EXT_MAPPING_VERSION]["valueString"] == f"{format_id} 1.0.0"
        assert urls[S.EXT_SOURCE_LOCATION]["valueString"]
        assert f"file synth.{FORMATS[format_id]}," in prov["entity"][0]["what"]["display"]
    assert len({b["id"] for b in bundles}) == len(bundles)


@pytest.mark.parametrize("format_id", FORMATS)
def test_sample_files_translate_to_valid_bundles(format_id):
    data = (FIXTURES / "samples" / SAMPLES[format_id]).read_bytes()
    summary, bundles, _ = run(format_id, data, SAMPLES[format_id], include_all=True)
    assert summary.rejected == 0 and summary.translated == summary.records
    assert bundles
    for bundle in bundles:
        assert check_rules(bundle) == []
        assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"


# -- one bad record never stops the rest ----------------------------------------------------

def test_bad_csv_rows_do_not_stop_the_rest(synth):
    lines = synth["schoolsafe-csv"].split(b"\r\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    bad_width = b'999999,999101,"BROKEN, Row",,01/01/2013' + b",x" * 30
    data = b"\r\n".join([header, *rows[:10], bad_width, *rows[10:]]) + b"\r\n"
    summary, bundles, report = run("schoolsafe-csv", data, "broken.csv")
    assert summary.records == COUNT + 1 and summary.balanced
    bad = [e for e in report if e["location"] == "row 12"]
    assert bad and bad[0]["outcome"] == "rejected" and "cells" in bad[0]["reason"]
    assert any(b_location(b) > "row 12" for b in bundles)  # rows after it still became messages


def test_a_concern_that_is_not_an_object_does_not_stop_the_rest(synth):
    doc = json.loads(synth["concernhub-json"])
    doc["concerns"].insert(5, "not a concern")
    summary, _, report = run("concernhub-json", json.dumps(doc).encode())
    assert summary.records == COUNT + 1 and summary.balanced
    assert [e["location"] for e in report if e.get("field") == "record"] == ["/concerns/5"]


def test_a_notice_failing_the_schema_does_not_stop_the_batch():
    data = (FIXTURES / "ppn" / "batch-one-invalid.xml").read_bytes()
    summary, bundles, report = run("ppn-xml", data, "batch-one-invalid.xml")
    assert summary.rejected == 1 and summary.translated >= 1 and summary.balanced
    rejected = next(e for e in report if e["outcome"] == "rejected")
    assert rejected["location"].startswith("/ppn:NoticeBatch/ppn:PublicProtectionNotice[")
    assert rejected["line"]


def test_truncated_batch_keeps_what_came_before():
    summary, bundles, report = run("ppn-xml", (FIXTURES / "ppn" / "truncated.xml").read_bytes(), "truncated.xml")
    assert (summary.records, summary.translated, summary.rejected) == (2, 1, 1)
    assert "truncated" in report[0]["reason"]


@pytest.mark.parametrize("fixture,format_id", [("ppn/html-as-xml.xml", "ppn-xml"),
                                               ("ppn/doctype-entities.xml", "ppn-xml"),
                                               ("concernhub/html-page.json", "concernhub-json")])
def test_input_that_cannot_be_read_raises_input_unreadable(fixture, format_id):
    with pytest.raises(InputUnreadable) as caught:
        run(format_id, (FIXTURES / fixture).read_bytes(), Path(fixture).name)
    assert str(caught.value).startswith(Path(fixture).name)


# -- deterministic ids ------------------------------------------------------------------------

@pytest.mark.parametrize("format_id", FORMATS)
def test_same_file_twice_gives_identical_bundles(synth, translated, format_id):
    _, first, _ = translated[format_id]
    _, second, _ = run(format_id, synth[format_id], f"synth.{FORMATS[format_id]}", now=LATER)
    assert strip_volatile(second) == strip_volatile(first)
    assert first[0]["timestamp"] != second[0]["timestamp"]


def test_re_export_in_another_order_and_file_is_recognised(synth, translated):
    lines = synth["schoolsafe-csv"].split(b"\r\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    summary, bundles, _ = run("schoolsafe-csv", b"\r\n".join([header, *reversed(rows)]) + b"\r\n", "again.csv")
    first = translated["schoolsafe-csv"][1]
    assert sorted(b["id"] for b in bundles) == sorted(b["id"] for b in first)


def test_edited_record_keeps_its_ids_but_gets_a_new_bundle_id(translated, synth):
    data = (FIXTURES / "samples" / "schoolsafe-sample.csv").read_bytes()
    edited = data.replace(b"Leo arrived without breakfast", b"Leo arrived again without breakfast")
    assert edited != data
    _, (before,), _ = run("schoolsafe-csv", data)
    _, (after,), _ = run("schoolsafe-csv", edited)
    assert after["id"] != before["id"]
    for rtype in ("ServiceRequest", "Patient", "Organization", "Provenance"):
        assert one(after, rtype)["id"] == one(before, rtype)["id"], rtype


def test_the_same_record_twice_in_one_file_is_one_message():
    data = (FIXTURES / "samples" / "schoolsafe-sample.csv").read_bytes()
    mash_referral = data.rstrip(b"\r\n").split(b"\n")[-1]
    assert mash_referral.startswith(b"4263,")
    doubled = data + mash_referral + b"\n"
    summary, bundles, report = run("schoolsafe-csv", doubled)
    assert (summary.records, summary.translated, summary.messages) == (4, 1, 1)
    assert report[-1]["reason"].startswith("a resend of a record already read")


# -- summary ----------------------------------------------------------------------------------

def test_summary_dict_and_text():
    summary = Summary(file="x.csv", format="schoolsafe-csv", records=5, translated=2, skipped=2, rejected=1,
                      messages=2, ignored_fields=["Form Tutor"])
    summary.skipped_reasons["not a referral"] += 2
    data = summary.as_dict()
    assert {k: data[k] for k in ("records", "translated", "skipped", "rejected", "messages")} == {
        "records": 5, "translated": 2, "skipped": 2, "rejected": 1, "messages": 2}
    assert data["balanced"] is True
    assert "5 records read = 2 translated + 2 skipped + 1 rejected" in summary.text()
    assert "ignored (not in the mapping): Form Tutor" in summary.text()


def test_translate_file_names_the_file(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes((FIXTURES / "samples" / "schoolsafe-sample.csv").read_bytes())
    out = io.StringIO()
    summary = translate_file(get_adapter("schoolsafe-csv"), path, out, now=NOW)
    assert summary.file == "export.csv" and summary.messages == 1
    assert "file export.csv, row 4" in out.getvalue()


def test_one_childs_failing_message_does_not_lose_a_siblings_message():
    """A notice naming two children: the first child's message fails the standard, the second's is sent."""
    from gateway.validation import validate_bundle

    path = Path(__file__).parent.parent / "fixtures" / "translate" / "ppn-household.xml"
    out, errors = io.StringIO(), io.StringIO()
    summary = translate_file(get_adapter("ppn-xml"), path, out, errors, now=NOW,
                             validator=lambda b: validate_bundle(b, now=NOW))
    report = [json.loads(line) for line in errors.getvalue().splitlines()]
    partly = [r for r in report if r["outcome"] == "partly-rejected"]
    assert summary.balanced
    assert summary.messages_rejected == len(partly) == 1
    assert partly[0]["location"] == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[1]"
    assert partly[0]["child"] and "no valid NHS number or UPN" in partly[0]["reason"]
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert any(b_location(b) == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[1]" for b in written)

"""``gateway formats``, ``translate`` and ``synth`` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLES = FIXTURES / "samples"
COUNTS = ("records", "translated", "skipped", "rejected", "messages")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_translate_writes_messages_errors_and_summary(runner, tmp_path):
    out, errors, summary = tmp_path / "out" / "messages.ndjson", tmp_path / "errors.ndjson", tmp_path / "summary.json"
    result = runner.invoke(main, ["translate", "--format", "schoolsafe-csv", str(SAMPLES / "schoolsafe-sample.csv"),
                                  "-o", str(out), "--errors", str(errors), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text(encoding="utf-8"))
    assert {k: counts[k] for k in COUNTS} == {"records": 3, "translated": 1, "skipped": 2, "rejected": 0,
                                              "messages": 1}
    assert counts["records"] == counts["translated"] + counts["skipped"] + counts["rejected"]
    (bundle,) = lines(out)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "message"
    report = lines(errors)
    assert [(e["outcome"], e["location"]) for e in report] == [("skipped", "row 2"), ("skipped", "row 3")]
    assert all(e["file"] == "schoolsafe-sample.csv" for e in report)
    assert result.stdout == ""
    assert "3 records read = 1 translated + 2 skipped + 0 rejected; 1 messages written" in result.stderr


def test_translate_without_output_writes_ndjson_to_stdout(runner):
    result = runner.invoke(main, ["translate", "--format", "ppn-xml", str(SAMPLES / "ppn-sample.xml")])
    assert result.exit_code == 0, result.output
    bundles = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(bundles) == 2 and {b["type"] for b in bundles} == {"message"}
    assert "2 records read = 2 translated" in result.stderr


def test_translate_all_includes_concern_records(runner, tmp_path):
    summary = tmp_path / "summary.json"
    result = runner.invoke(main, ["translate", "--format", "schoolsafe-csv", str(SAMPLES / "schoolsafe-sample.csv"),
                                  "--all", "-o", str(tmp_path / "o.ndjson"), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text())
    assert (counts["translated"], counts["skipped"], counts["messages"]) == (3, 0, 3)
    events = [b["entry"][0]["resource"]["eventCoding"]["code"] for b in lines(tmp_path / "o.ndjson")]
    assert sorted(events) == ["safeguarding-concern", "safeguarding-concern", "safeguarding-referral"]


@pytest.mark.parametrize("format_id,ext", [("schoolsafe-csv", "csv"), ("concernhub-json", "json"), ("ppn-xml", "xml")])
def test_synth_then_translate_loses_nothing(runner, tmp_path, format_id, ext):
    source = tmp_path / f"synth.{ext}"
    result = runner.invoke(main, ["synth", "--format", format_id, "--count", "120", "--seed", "5", "-o", str(source)])
    assert result.exit_code == 0, result.output
    out, errors, summary = tmp_path / "o.ndjson", tmp_path / "e.ndjson", tmp_path / "s.json"
    result = runner.invoke(main, ["translate", "--format", format_id, str(source), "-o", str(out),
                                  "--errors", str(errors), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text())
    assert counts["records"] == 120
    assert counts["records"] == counts["translated"] + counts["skipped"] + counts["rejected"]
    assert len(lines(out)) == counts["messages"]
    report = lines(errors)
    assert sum(e["outcome"] == "rejected" for e in report) == counts["rejected"]
    assert sum(e["outcome"] == "skipped" for e in report) == counts["skipped"]
    for entry in report:
        assert entry["file"] == f"synth.{ext}" and entry["location"] and entry["reason"]
        if entry["outcome"] == "rejected":
            assert entry["field"] and entry["place"]


def test_missing_required_column_exits_non_zero_naming_it(runner, tmp_path):
    data = (SAMPLES / "schoolsafe-sample.csv").read_text(encoding="utf-8-sig")
    source = tmp_path / "old-report.csv"
    source.write_text(data.replace("Categories", "Concern Types", 1), encoding="utf-8")
    result = runner.invoke(main, ["translate", "--format", "schoolsafe-csv", str(source)])
    assert result.exit_code == 1
    assert "old-report.csv at row 1 (header): the header has no 'Categories' column" in result.stderr
    assert "add a mapping for this variant" in result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert result.stdout == ""


@pytest.mark.parametrize("fixture,words", [
    ("ppn/html-as-xml.xml", "this is an HTML page, not PPN XML"),
    ("ppn/doctype-entities.xml", "the file declares a DOCTYPE"),
    ("ppn/doctype-external-entity.xml", "the file declares a DOCTYPE"),
])
def test_files_that_are_not_what_they_claim_exit_with_a_clear_error(runner, fixture, words):
    result = runner.invoke(main, ["translate", "--format", "ppn-xml", str(FIXTURES / fixture)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot translate: {Path(fixture).name}")
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_truncated_xml_is_a_rejected_record_not_a_failure(runner, tmp_path):
    errors, summary = tmp_path / "e.ndjson", tmp_path / "s.json"
    result = runner.invoke(main, ["translate", "--format", "ppn-xml", str(FIXTURES / "ppn" / "truncated.xml"),
                                  "-o", str(tmp_path / "o.ndjson"), "--errors", str(errors), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text())
    assert (counts["records"], counts["translated"], counts["rejected"]) == (2, 1, 1)
    (entry,) = lines(errors)
    assert entry["location"] == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[2]"
    assert "truncated" in entry["reason"]


def test_unknown_format_lists_the_known_ones_and_exits_2(runner):
    result = runner.invoke(main, ["translate", "--format", "nope", str(SAMPLES / "ppn-sample.xml")])
    assert result.exit_code == 2
    assert "unknown format 'nope'; known formats: concernhub-json, ppn-xml, schoolsafe-csv" in result.stderr
    result = runner.invoke(main, ["synth", "--format", "nope", "--count", "1"])
    assert result.exit_code == 2 and "known formats" in result.stderr


def test_missing_input_file_exits_2(runner, tmp_path):
    result = runner.invoke(main, ["translate", "--format", "ppn-xml", str(tmp_path / "absent.xml")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("format_id", ["schoolsafe-csv", "concernhub-json", "ppn-xml"])
def test_synth_is_deterministic_for_a_seed(runner, tmp_path, format_id):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        result = runner.invoke(main, ["synth", "--format", format_id, "--count", "40", "--seed", seed, "-o", str(path)])
        assert result.exit_code == 0, result.output
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    result = runner.invoke(main, ["synth", "--format", format_id, "--count", "40", "--seed", "3"])
    assert result.stdout_bytes == a.read_bytes()


def test_formats_command_output(runner):
    result = runner.invoke(main, ["formats"])
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["concernhub-json", "ppn-xml", "schoolsafe-csv"]
    assert all(len(r) == 2 and r[1] for r in rows)


def test_translate_reads_the_file_given_not_the_working_directory(runner, tmp_path, monkeypatch):
    shutil.copy(SAMPLES / "concernhub-sample.json", tmp_path / "export.json")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["translate", "--format", "concernhub-json", "export.json", "--summary", "s.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["file"] == "export.json"

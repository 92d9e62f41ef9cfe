"""``gateway mappings test``: golden cases found by glob, volatile values stripped, rule checks."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from gateway.adapters.goldens import (
    VOLATILE,
    check_rules,
    run_golden_cases,
    strip_volatile,
    unused_fields,
)
from gateway.adapters.mapping import Mapping
from gateway.cli import main
from gateway.config import Settings

MAPPINGS = Settings().mappings_dir
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def mappings_copy(tmp_path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, target)
    return target


def test_shipped_mappings_pass(runner):
    result = runner.invoke(main, ["mappings", "test"])
    assert result.exit_code == 0, result.output
    cases = sorted(p.parent.relative_to(MAPPINGS).as_posix().replace("/cases/", "/")
                   for p in MAPPINGS.glob("*/cases/*/input.*"))
    assert len(cases) >= 9
    assert [line.split()[-1] for line in result.output.splitlines() if line.startswith("ok")] == cases
    assert result.output.splitlines()[-1] == f"{len(cases)} passed, 0 failed"


def test_every_format_has_golden_cases():
    formats = {p.parent.name for p in MAPPINGS.glob("*/mapping.yaml")}
    assert formats == {"schoolsafe-csv", "concernhub-json", "ppn-xml"}
    for fmt in formats:
        assert list((MAPPINGS / fmt / "cases").glob("*/input.*")), fmt


def test_broken_expected_fails_with_a_readable_diff(runner, mappings_copy):
    expected = mappings_copy / "schoolsafe-csv" / "cases" / "sample" / "expected.json"
    data = json.loads(expected.read_text(encoding="utf-8"))
    data["summary"]["translated"] = 99
    data["messages"][0]["entry"][0]["resource"]["eventCoding"]["code"] = "something-else"
    expected.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")

    result = runner.invoke(main, ["mappings", "test", str(mappings_copy)])
    assert result.exit_code == 1
    out = result.output
    assert "FAIL schoolsafe-csv/sample" in out
    assert "--- schoolsafe-csv/sample/expected.json" in out and "+++ schoolsafe-csv/sample (now)" in out
    assert '-  "translated": 99' in out and '+  "translated": 1' in out
    assert '"code": "something-else"' in out
    assert "ok   schoolsafe-csv/windows-1252" in out  # the other cases still run
    assert out.splitlines()[-1].endswith("1 failed")
    assert "Traceback" not in out


def test_one_case_or_one_format_can_be_run(runner, mappings_copy):
    result = runner.invoke(main, ["mappings", "test", str(mappings_copy / "ppn-xml")])
    assert result.exit_code == 0, result.output
    assert {line.split()[-1] for line in result.output.splitlines() if line.startswith("ok")} == {
        f"ppn-xml/{p.name}" for p in (mappings_copy / "ppn-xml" / "cases").iterdir()}
    result = runner.invoke(main, ["mappings", "test", str(mappings_copy / "ppn-xml" / "cases" / "sample")])
    assert result.exit_code == 0 and result.output.splitlines() == ["ok   ppn-xml/sample", "1 passed, 0 failed"]


def test_input_field_the_mapping_never_reads_is_reported(runner, mappings_copy):
    case = mappings_copy / "concernhub-json" / "cases" / "sample" / "input.json"
    doc = json.loads(case.read_text(encoding="utf-8"))
    doc["concerns"][0]["favouriteColour"] = "green"
    doc["concerns"][0]["subject"]["shoeSize"] = "2"
    case.write_text(json.dumps(doc, indent=1), encoding="utf-8")

    result = runner.invoke(main, ["mappings", "test", str(mappings_copy / "concernhub-json" / "cases" / "sample")])
    assert result.exit_code == 1
    assert ("input field 'favouriteColour' (first at /concerns/0) is never read by the mapping; "
            "map it or list it under ignored_fields with the reason") in result.output
    assert "input field 'subject.shoeSize'" in result.output


def test_unused_fields_respects_ignored_fields_and_reported_columns(mappings_copy):
    mapping = Mapping.load(mappings_copy / "concernhub-json")
    sample = mappings_copy / "concernhub-json" / "cases" / "single-concern" / "input.json"
    with open(sample, "rb") as stream:
        assert unused_fields(mapping, stream, sample.name) == {}   # 'score' is listed under ignored_fields
    csv_mapping = Mapping.load(mappings_copy / "schoolsafe-csv")
    quirks = mappings_copy / "schoolsafe-csv" / "cases" / "field-quirks" / "input.csv"
    with open(quirks, "rb") as stream:
        assert unused_fields(csv_mapping, stream, quirks.name) == {}  # 'Form Tutor' is in summary.ignored_fields


def test_missing_expected_json_is_a_failure_until_updated(runner, mappings_copy):
    case = mappings_copy / "ppn-xml" / "cases" / "new-case"
    case.mkdir()
    shutil.copy(FIXTURES / "ppn" / "signed-notice.xml", case / "input.xml")
    result = runner.invoke(main, ["mappings", "test", str(case)])
    assert result.exit_code == 1
    assert "no expected.json: run `gateway mappings test --update` and review it" in result.output

    result = runner.invoke(main, ["mappings", "test", "--update", str(case)])
    assert result.exit_code == 0, result.output
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    assert expected["summary"]["messages"] == 1
    assert "timestamp" not in expected["messages"][0]
    assert runner.invoke(main, ["mappings", "test", str(case)]).exit_code == 0


def test_no_cases_is_an_error(runner, tmp_path):
    result = runner.invoke(main, ["mappings", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert f"no golden cases found under {tmp_path}" in result.output


def test_broken_mapping_is_reported_without_traceback(runner, mappings_copy):
    path = mappings_copy / "ppn-xml" / "mapping.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("parse: datetime", "parse: when", 1), encoding="utf-8")
    result = runner.invoke(main, ["mappings", "test", str(mappings_copy / "ppn-xml")])
    assert result.exit_code == 1
    assert "unknown transform 'when'" in result.output and "Traceback" not in result.output


# -- the pieces -----------------------------------------------------------------------------

def golden_message() -> dict:
    expected = json.loads((MAPPINGS / "ppn-xml" / "cases" / "sample" / "expected.json").read_text(encoding="utf-8"))
    return expected["messages"][0]


def test_strip_volatile_removes_only_the_named_values():
    bundle = golden_message()
    bundle["timestamp"] = "2026-01-05T09:00:00+00:00"
    prov = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance")
    prov["recorded"] = "2026-01-05T09:00:00+00:00"
    stripped = strip_volatile(bundle)
    assert "timestamp" not in stripped
    prov_stripped = next(e["resource"] for e in stripped["entry"] if e["resource"]["resourceType"] == "Provenance")
    assert "recorded" not in prov_stripped and prov_stripped["target"] == prov["target"]
    assert stripped["id"] == bundle["id"]
    assert ("Bundle", "timestamp") in VOLATILE and ("Provenance", "recorded") in VOLATILE
    assert strip_volatile([bundle]) == [stripped]


def test_check_rules_finds_duplicates_dangling_references_and_invalid_fhir():
    bundle = golden_message()
    bundle.setdefault("timestamp", "2026-01-05T09:00:00+00:00")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Provenance":
            entry["resource"].setdefault("recorded", "2026-01-05T09:00:00+00:00")
    assert check_rules(bundle) == []

    dup = copy.deepcopy(bundle)
    dup["entry"].append(copy.deepcopy(dup["entry"][1]))
    assert any("appears more than once" in p for p in check_rules(dup))

    dangling = copy.deepcopy(bundle)
    dangling["entry"][0]["resource"]["focus"] = [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}]
    assert check_rules(dangling) == [
        "Bundle.entry[0].resource.focus[0].reference urn:uuid:00000000-0000-4000-8000-000000000000 "
        "does not resolve inside the Bundle"]

    invalid = copy.deepcopy(bundle)
    patient = next(e["resource"] for e in invalid["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["birthDate"] = "14/05/2013"
    problems = check_rules(invalid)
    assert problems and all(p.startswith("not valid FHIR R4") for p in problems)
    assert any("birthDate" in p for p in problems)


def test_golden_run_api(mappings_copy):
    results = run_golden_cases(mappings_copy)
    assert results and all(r.passed for r in results), [r.messages for r in results if not r.passed]

"""``POST /fhir/Bundle/$validate``, ``gateway validate`` and ``gateway quality``."""

from __future__ import annotations

import json
import re

import pytest
from .referral_builders import NOW, clone, complete_bundle, first, quality_input

from gateway.cli import main
from gateway.model import systems as S
from gateway.validation import gap_items, has_errors, validate_bundle

FHIR_JSON = "application/fhir+json"
NOW_ARG = ["--now", NOW.isoformat()]


def _refused(bundle: dict) -> dict:
    bundle = clone(bundle)
    del first(bundle, "ServiceRequest")["note"]
    return bundle


# The endpoint -------------------------------------------------------------------------------------------
def test_validate_endpoint_returns_the_outcome(client):
    response = client.post("/fhir/Bundle/$validate", json=complete_bundle("school"))
    assert response.status_code == 200
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["extension"][0]["url"] == S.EXT_COMPLETENESS
    assert not has_errors(outcome)


def test_validate_endpoint_reports_errors_with_200(client):
    response = client.post("/fhir/Bundle/$validate", data=json.dumps(_refused(complete_bundle("school"))),
                           content_type=FHIR_JSON)
    assert response.status_code == 200
    assert has_errors(response.get_json())


def test_validate_endpoint_accepts_parameters(client):
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": complete_bundle("police")}]}
    response = client.post("/fhir/Bundle/$validate", json=body)
    assert response.status_code == 200 and not has_errors(response.get_json())


@pytest.mark.parametrize(("body", "needle"), [
    (b'{"resourceType": "Bundle", ', "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[" * 100000, "not JSON"),
    (b'{"resourceType": "Patient"}', "'Patient'"),
    (b"[1, 2]", "'list'"),
    (b'"just a string"', "'str'"),
])
def test_validate_endpoint_refuses_what_is_not_a_bundle(client, body, needle):
    response = client.post("/fhir/Bundle/$validate", data=body, content_type=FHIR_JSON)
    assert response.status_code == 400
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert needle in outcome["issue"][0]["details"]["text"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_validate_endpoint_only_posts(client):
    response = client.get("/fhir/Bundle/$validate")
    assert response.status_code == 405 and response.mimetype == FHIR_JSON


# gateway validate -----------------------------------------------------------------------------------------
def test_validate_one_bundle_file(runner, tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(complete_bundle("school"), indent=2))
    result = runner.invoke(main, ["validate", str(path), *NOW_ARG])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["resourceType"] == "OperationOutcome"
    assert "1 Bundle(s): 0 with errors" in result.stderr


def test_validate_ndjson_exit_1_when_any_has_an_error(runner, tmp_path):
    path = tmp_path / "bundles.ndjson"
    good, bad = complete_bundle("school"), _refused(complete_bundle("police"))
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    result = runner.invoke(main, ["validate", str(path), *NOW_ARG])
    assert result.exit_code == 1
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [has_errors(o) for o in outcomes] == [False, True]
    assert "2 Bundle(s): 1 with errors" in result.stderr


def test_validate_ndjson_all_good_exits_0(runner, tmp_path):
    path = tmp_path / "bundles.ndjson"
    path.write_text("".join(json.dumps(complete_bundle(k)) + "\n" for k in ("school", "police")))
    result = runner.invoke(main, ["validate", str(path), *NOW_ARG, "--no-base"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(("content", "needle"), [
    ("this is not json\n", "not JSON and not NDJSON"),
    ('{"resourceType": "Patient"}\n', "line 1: expected a FHIR Bundle, got 'Patient'"),
    ("", "empty"),
])
def test_validate_bad_input_is_an_error_outcome_not_a_traceback(runner, tmp_path, content, needle):
    path = tmp_path / "input.json"
    path.write_text(content)
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stdout.splitlines()
    assert needle in json.loads(line)["issue"][0]["details"]["text"]


def test_validate_names_the_bad_line_of_ndjson(runner, tmp_path):
    path = tmp_path / "bundles.ndjson"
    path.write_text(json.dumps(complete_bundle("school")) + "\n{oops\n")
    result = runner.invoke(main, ["validate", str(path), *NOW_ARG])
    assert result.exit_code == 1
    assert "line 2: not JSON" in json.loads(result.stdout.splitlines()[1])["issue"][0]["details"]["text"]


def test_validate_rejects_a_naive_now(runner, tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(complete_bundle("school")))
    result = runner.invoke(main, ["validate", str(path), "--now", "2019-06-10T12:00:00"])
    assert result.exit_code == 2
    assert "no offset" in result.output


def test_validate_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(main, ["validate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# gateway quality -------------------------------------------------------------------------------------------
def test_quality_per_sender(runner, tmp_path):
    result = runner.invoke(main, ["quality", str(quality_input(tmp_path)), *NOW_ARG])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Referral quality: 4 message(s) from 2 sender(s)" in out
    assert "1 line(s) could not be read" in out
    school = out.split("Quillmere Primary School (urn:x-safeguarding:agency:school:999101)")[1].split("Dorset")[0]
    assert "messages: 3 (referrals 3" in school
    assert "80-100: 2" in school and "60-79: 1" in school
    gaps = re.findall(r"^\s+(\d+)\s+(.+) \(([a-z-]+)\)$", school, re.M)
    assert [(n, item) for n, _, item in gaps] == [
        ("2", "childs-voice"), ("2", "immediate-risk"), ("1", "consent"), ("1", "occurred"),
        ("1", "parents-informed"), ("1", "referrer-contact")]
    assert "Dorset Police (urn:x-safeguarding:agency:police:DOR)" in out


def test_quality_lists_at_most_ten_gaps(runner, tmp_path):
    bare = complete_bundle("police")
    sr = first(bare, "ServiceRequest")
    sr["extension"] = []
    bare["entry"] = [e for e in bare["entry"] if e["resource"]["resourceType"] != "RelatedPerson"]
    first(bare, "PractitionerRole").pop("telecom")
    first(bare, "Practitioner").pop("telecom")
    path = tmp_path / "bare.ndjson"
    path.write_text(json.dumps(bare) + "\n")
    assert len(gap_items(validate_bundle(bare, now=NOW))) > 10
    result = runner.invoke(main, ["quality", str(path), *NOW_ARG])
    gaps = re.findall(r"^\s+1\s+.+ \([a-z-]+\)$", result.stdout, re.M)
    assert len(gaps) == 10


def test_quality_html_has_a_chart_and_no_external_assets(runner, tmp_path):
    out = tmp_path / "report" / "quality.html"
    result = runner.invoke(main, ["quality", str(quality_input(tmp_path)), "--html", str(out), *NOW_ARG])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 2 and "<rect" in page
    assert "Quillmere Primary School" in page and "The child&#x27;s voice, or why not" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page

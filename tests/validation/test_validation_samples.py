"""The three sample files give the warnings their content implies."""

from __future__ import annotations

import datetime as dt

import pytest
from .referral_builders import flagged, issues_for

from gateway.adapters import get_adapter
from gateway.adapters.base import BadRecord
from gateway.model import build_bundle
from gateway.validation import has_errors, validate_bundle

# The gateway receives the PPNs on 2018-09-30 and the school records in June 2019 (docs/scenario-family-a.md).
NOW = dt.datetime(2019, 10, 1, 12, tzinfo=dt.timezone.utc)


def _messages(samples, format_id: str, filename: str) -> list[tuple[dict, dict, dict]]:
    adapter = get_adapter(format_id)
    path = samples / filename
    out = []
    with open(path, "rb") as stream:
        for raw in adapter.records(stream, filename):
            assert not isinstance(raw, BadRecord), raw
            for record in adapter.translate(raw, filename=filename, now=NOW):
                bundle = build_bundle(record, now=NOW)
                out.append((record, bundle, validate_bundle(bundle, now=NOW)))
    return out


@pytest.fixture
def ppn(samples):
    return _messages(samples, "ppn-xml", "ppn-sample.xml")


def test_ppn_sample_both_notices_go_on_with_warnings(ppn):
    assert len(ppn) == 2
    for _, _, outcome in ppn:
        assert not has_errors(outcome)


def test_ppn_sample_submitted_21_days_after_the_incident(ppn):
    for _, _, outcome in ppn:
        (late,) = issues_for(outcome, "ppn-submitted-late")
        assert late["severity"] == "warning"
        assert late["details"]["text"].startswith("Submitted 21 days 13 hours after the incident")


def test_ppn_sample_dash_not_completed(ppn):
    (_, _, first), (_, _, second) = ppn
    (dash,) = issues_for(first, "dash")
    assert "was not completed" in dash["details"]["text"]
    assert "Victim would not engage" in dash["details"]["text"]
    (dash,) = issues_for(second, "dash")
    assert "No DASH risk assessment" in dash["details"]["text"]


def test_ppn_sample_cctv_not_secured(ppn):
    (_, _, first), (_, _, second) = ppn
    (unsecured,) = issues_for(first, "evidence-not-secured")
    assert "CCTV" in unsecured["details"]["text"]
    assert "No evidence items" in issues_for(second, "evidence")[0]["details"]["text"]


def test_ppn_sample_other_gaps(ppn):
    for _, _, outcome in ppn:
        found = flagged(outcome)
        assert {"nhs-number", "consent", "referrer-contact", "immediate-risk"} <= found
        # The children's school is named, the suspect is known and the incident time is given.
        assert not {"school", "alleged-harm", "occurred", "child-identified", "routable"} & found


def test_schoolsafe_sample(samples):
    messages = _messages(samples, "schoolsafe-csv", "schoolsafe-sample.csv")
    assert len(messages) == 3
    referral = [outcome for record, _, outcome in messages if record["kind"] == "referral"]
    assert len(referral) == 1
    for _, _, outcome in messages:
        assert not has_errors(outcome)
        found = flagged(outcome)
        # UPN but no NHS number; no child's voice, contact, consent or household recorded by this export.
        assert {"nhs-number", "childs-voice", "child-spoken-to", "referrer-contact", "household", "consent"} <= found
        # The school sends about its own pupil, records on the day and says what it did.
        assert not {"school", "school-recorded-late", "action-taken", "concern-category"} & found


def test_concernhub_sample(samples):
    ((_, _, outcome),) = _messages(samples, "concernhub-json", "concernhub-sample.json")
    assert not has_errors(outcome)
    # Happened on 5 June (no time), recorded at 14:32 on 6 June: not late on the shortest reading.
    assert flagged(outcome) == {"immediate-risk", "requested-action", "consent"}
    assert outcome["extension"][0]["valueInteger"] == 81

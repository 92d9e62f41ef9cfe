"""Timeliness warnings state the delay; invalid identifiers are warnings naming the value."""

from __future__ import annotations

import datetime as dt

import pytest
from .referral_builders import (NOW, UPN_TEMPORARY_OK, complete_bundle, drop_ext, entries, first, flagged, index_of,
                               issues_for, place, police_record, school_record)

from gateway.model import build_bundle
from gateway.model import systems as S
from gateway.validation import extensions as X
from gateway.validation import validate_bundle
from gateway.validation.checks import describe_delay, instant_bounds


def _bundle(record: dict) -> dict:
    bundle = build_bundle(record, now=NOW)
    first(bundle, "ServiceRequest")["extension"].append(
        {"url": X.EXT_REQUESTED_ACTION, "valueString": "Assessment"})
    return bundle


def _sr_path(bundle, path):
    return f"Bundle.entry[{index_of(bundle, 'ServiceRequest')}].resource.{path}"


# Timeliness ------------------------------------------------------------------------------------------
def test_ppn_submitted_21_days_after_the_incident_states_the_delay():
    record = police_record()
    record["concern"].update(occurred="2018-09-09T03:00:00+01:00", submitted="2018-09-30T16:20:00+01:00",
                             recorded="2018-09-30T16:20:00+01:00")
    bundle = _bundle(record)
    (issue,) = issues_for(validate_bundle(bundle, now=NOW), "ppn-submitted-late")
    assert issue["severity"] == "warning" and issue["code"] == "business-rule"
    assert issue["details"]["text"].startswith("Submitted 21 days 13 hours after the incident")
    assert place(issue) == _sr_path(bundle, f"extension('{S.EXT_SUBMITTED}')")


def test_ppn_submitted_within_24_hours_is_on_time():
    record = police_record()
    record["concern"].update(occurred="2019-06-05T03:00:00+01:00", submitted="2019-06-06T02:59:00+01:00")
    assert "ppn-submitted-late" not in flagged(validate_bundle(_bundle(record), now=NOW))


def test_ppn_without_submitted_uses_recorded():
    record = police_record()
    record["concern"].update(submitted=None, recorded="2019-06-08T03:00:00+01:00")
    (issue,) = issues_for(validate_bundle(_bundle(record), now=NOW), "ppn-submitted-late")
    assert "3 days" in issue["details"]["text"]


def test_school_concern_recorded_more_than_24_hours_after_it_happened():
    record = school_record()
    record["concern"].update(occurred="2019-06-03T09:00:00+01:00", recorded="2019-06-04T15:30:00+01:00")
    bundle = _bundle(record)
    (issue,) = issues_for(validate_bundle(bundle, now=NOW), "school-recorded-late")
    assert issue["details"]["text"].startswith("Recorded 1 day 6 hours after the incident")
    assert place(issue) == _sr_path(bundle, "authoredOn")


def test_school_concern_with_a_date_alone_gets_the_benefit_of_the_doubt():
    record = school_record()
    record["concern"].update(occurred="2019-06-05", recorded="2019-06-06T14:32:00+01:00")
    assert "school-recorded-late" not in flagged(validate_bundle(_bundle(record), now=NOW))
    record["concern"].update(occurred="2019-06-03")
    (issue,) = issues_for(validate_bundle(_bundle(record), now=NOW), "school-recorded-late")
    assert "2 days 14 hours" in issue["details"]["text"]


def test_school_lateness_does_not_apply_to_police():
    record = police_record()
    record["concern"].update(occurred="2019-06-01T03:00:00+01:00", submitted="2019-06-01T05:00:00+01:00",
                             recorded="2019-06-05T11:00:00+01:00")
    assert "school-recorded-late" not in flagged(validate_bundle(_bundle(record), now=NOW))


@pytest.mark.parametrize(("key", "value", "path"), [
    ("recorded", "2019-07-01T09:00:00+01:00", "authoredOn"),
    ("occurred", "2019-06-12", f"extension('{S.EXT_OCCURRED}')"),
])
def test_record_dated_in_the_future(key, value, path):
    record = school_record()
    record["concern"][key] = value
    bundle = _bundle(record)
    issues = issues_for(validate_bundle(bundle, now=NOW), "future-date")
    assert [place(i) for i in issues] == [_sr_path(bundle, path)]
    assert "in the future" in issues[0]["details"]["text"]


def test_future_birth_date_is_reported_on_the_patient():
    record = school_record()
    record["child"]["birth_date"] = "2020-01-01"
    bundle = _bundle(record)
    (issue,) = issues_for(validate_bundle(bundle, now=NOW), "future-date")
    assert place(issue) == f"Bundle.entry[{index_of(bundle, 'Patient')}].resource.birthDate"
    assert "204 days" in issue["details"]["text"]


def test_a_few_minutes_ahead_is_clock_skew_not_the_future():
    record = school_record()
    record["concern"]["recorded"] = (NOW + dt.timedelta(minutes=4)).isoformat()
    assert "future-date" not in flagged(validate_bundle(_bundle(record), now=NOW))


def test_recorded_before_it_happened():
    record = school_record()
    record["concern"].update(occurred="2019-06-06T10:00:00+01:00", recorded="2019-06-05T14:32:00+01:00")
    (issue,) = issues_for(validate_bundle(_bundle(record), now=NOW), "dates-in-order")
    assert "19 hours after it was recorded" in issue["details"]["text"]


def test_delay_wording():
    assert describe_delay(dt.timedelta(days=21, hours=13, minutes=20)) == "21 days 13 hours"
    assert describe_delay(dt.timedelta(days=1)) == "1 day"
    assert describe_delay(dt.timedelta(hours=5)) == "5 hours"
    assert describe_delay(dt.timedelta(minutes=30)) == "0 hours"


def test_instant_bounds_of_partial_and_naive_times():
    start, end = instant_bounds("2019-06")
    assert (start.day, end.day, end.month) == (1, 30, 6)
    start, end = instant_bounds("2019-06-05T10:00:00")  # UK summer time
    assert start == end and start.utcoffset() == dt.timedelta(hours=1)
    assert instant_bounds("not a date") is None and instant_bounds(None) is None


# Identifiers ---------------------------------------------------------------------------------------
def test_invalid_nhs_number_is_a_warning_naming_the_value_and_is_not_counted():
    record = school_record()
    record["child"]["nhs_number"] = "999 000 0019"
    bundle = _bundle(record)
    outcome = validate_bundle(bundle, now=NOW)
    (issue,) = issues_for(outcome, "nhs-number-invalid")
    assert issue["severity"] == "warning" and issue["code"] == "value"
    assert "'999 000 0019'" in issue["details"]["text"]
    assert "never used for linking" in issue["details"]["text"]
    pt_i = index_of(bundle, "Patient")
    nhs_j = next(j for j, i in enumerate(bundle["entry"][pt_i]["resource"]["identifier"]) if i["system"] == S.NHS_NUMBER)
    assert place(issue) == f"Bundle.entry[{pt_i}].resource.identifier[{nhs_j}]"
    assert "nhs-number" in flagged(outcome)  # an invalid number is not an NHS number


def test_unmarked_invalid_identifier_is_still_caught():
    bundle = complete_bundle("school")
    pt = first(bundle, "Patient")
    for ident in pt["identifier"]:
        if ident["system"] == S.NHS_NUMBER:
            ident["value"] = "9990000019"
    outcome = validate_bundle(bundle, now=NOW)
    assert "'9990000019'" in issues_for(outcome, "nhs-number-invalid")[0]["details"]["text"]
    assert "nhs-number" in flagged(outcome)


def test_upn_with_a_wrong_check_letter():
    record = school_record()
    record["child"].update(upn="A850210117001", nhs_number=None)
    outcome = validate_bundle(_bundle(record), now=NOW)
    assert "'A850210117001'" in issues_for(outcome, "upn-invalid")[0]["details"]["text"]


def test_temporary_upn_is_valid_and_identifies_the_child():
    record = school_record()
    record["child"].update(upn=UPN_TEMPORARY_OK, nhs_number=None, given=[], family=None)
    outcome = validate_bundle(_bundle(record), now=NOW)
    assert not {"upn-invalid", "child-identified"} & flagged(outcome)


def test_invalid_identifiers_alone_do_not_identify_the_child():
    record = school_record()
    record["child"].update(upn="A850210117001", nhs_number="9990000019", given=[], family=None)
    outcome = validate_bundle(_bundle(record), now=NOW)
    assert issues_for(outcome, "child-identified")[0]["severity"] == "error"


def test_school_urn_must_be_six_digits():
    record = police_record()
    record["child"]["school"]["urn"] = "99910"
    bundle = _bundle(record)
    outcome = validate_bundle(bundle, now=NOW)
    (issue,) = issues_for(outcome, "urn-invalid")
    assert "'99910'" in issue["details"]["text"]
    school_i = [i for i, o in entries(bundle, "Organization") if o.get("name") == "Quillmere Primary School"][0]
    assert place(issue) == f"Bundle.entry[{school_i}].resource.identifier[0]"
    assert "school" in flagged(outcome)


def test_unknown_la_number():
    record = school_record()
    record["sender"]["la_number"] = "999"
    (issue,) = issues_for(validate_bundle(_bundle(record), now=NOW), "la-invalid")
    assert "'999' is not a known local authority" in issue["details"]["text"]


def test_invalid_postcode_does_not_route():
    record = police_record()
    record["child"]["address"]["postcode"] = "SP10 1A"
    record["child"].pop("school")
    bundle = _bundle(record)
    outcome = validate_bundle(bundle, now=NOW)
    (issue,) = issues_for(outcome, "postcode-invalid")
    assert "'SP10 1A'" in issue["details"]["text"]
    assert place(issue) == f"Bundle.entry[{index_of(bundle, 'Patient')}].resource.address[0].postalCode"
    assert issues_for(outcome, "routable")[0]["severity"] == "error"


def test_valid_identifiers_give_no_warnings():
    outcome = validate_bundle(complete_bundle("police"), now=NOW)
    assert not {"nhs-number-invalid", "upn-invalid", "urn-invalid", "la-invalid", "postcode-invalid"} & flagged(outcome)


def test_la_sender_routes_without_postcode():
    record = school_record()
    record["sender"] = {"kind": "la", "code": "850", "name": "Example County Council"}
    record["child"].pop("address")
    bundle = _bundle(record)
    drop_ext(first(bundle, "Patient"), S.EXT_SCHOOL)
    assert "routable" not in flagged(validate_bundle(bundle, now=NOW))

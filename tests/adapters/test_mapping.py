"""Declarative mappings: every "Seen in the field" quirk of the three formats, and vendor variants."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.errors import MappingError
from gateway.adapters.goldens import check_rules
from gateway.adapters.mapping import Mapping
from gateway.adapters.transforms import FieldContext, FieldProblem, get_transform
from gateway.adapters.translate import translate_stream
from gateway.cli import main
from gateway.config import Settings
from gateway.model import systems as S

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRANSLATE = FIXTURES / "translate"
MAPPINGS = Settings().mappings_dir
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)

HEADER = ["Incident ID", "School URN", "Student", "UPN", "Date of Birth", "Gender", "Year Group", "Home Postcode",
          "Incident Date", "Date Added", "Categories", "Incident", "Action Taken", "Linked Students",
          "Parents/Carers", "Reported By", "Status", "Referral"]


def csv_row(**cells) -> dict:
    row = {"Incident ID": "7001", "School URN": "999101", "Student": "TESTER, Ada", "UPN": "",
           "Date of Birth": "14/05/2013", "Gender": "F", "Year Group": "Year 1", "Home Postcode": "SP10 1AA",
           "Incident Date": "14/03/2019 09:10", "Date Added": "14/03/2019 11:42", "Categories": "Neglect",
           "Incident": "Came in hungry.", "Action Taken": "", "Linked Students": "", "Parents/Carers": "",
           "Reported By": "Sam Tully (Class Teacher)", "Status": "Referred", "Referral": "MASH"}
    row.update({k.replace("_", " "): v for k, v in cells.items()})
    return row


def csv_bytes(*rows: dict, header=HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def translate(adapter, data: bytes, filename: str = "input", include_all: bool = False):
    if isinstance(adapter, str):
        adapter = get_adapter(adapter)
    out, errors = io.StringIO(), io.StringIO()
    summary = translate_stream(adapter, io.BytesIO(data), filename, out, errors, now=NOW, include_all=include_all)
    bundles = [json.loads(line) for line in out.getvalue().splitlines()]
    report = [json.loads(line) for line in errors.getvalue().splitlines()]
    for bundle in bundles:
        assert check_rules(bundle) == []
    assert summary.balanced
    return summary, bundles, report


def resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict, rtype: str) -> dict:
    (found,) = resources(bundle, rtype)
    return found


def ext(resource: dict, url: str):
    for e in resource.get("extension", []):
        if e["url"] == url:
            return next(v for k, v in e.items() if k != "url")
    return None


def issues(bundle: dict) -> list[str]:
    prov = one(bundle, "Provenance")
    return [e["valueString"] for e in prov["extension"] if e["url"] == S.EXT_TRANSLATION_ISSUE]


def identifiers(resource: dict) -> dict:
    return {i["system"]: i for i in resource.get("identifier", [])}


# == schoolsafe-csv ========================================================================

@pytest.fixture(scope="module")
def quirks():
    data = (TRANSLATE / "schoolsafe-quirks.csv").read_bytes()
    return translate("schoolsafe-csv", data, "schoolsafe-quirks.csv")


def test_quirks_file_through_the_cli_counts_and_rejections(tmp_path):
    """Run as a user runs it: impossible and future dates of birth are rejected with field and row."""
    out, errors, summary = tmp_path / "o.ndjson", tmp_path / "e.ndjson", tmp_path / "s.json"
    result = CliRunner().invoke(main, ["translate", "--format", "schoolsafe-csv",
                                       str(TRANSLATE / "schoolsafe-quirks.csv"), "-o", str(out),
                                       "--errors", str(errors), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    counts = json.loads(summary.read_text())
    assert [counts[k] for k in ("records", "translated", "skipped", "rejected", "messages")] == [8, 4, 2, 2, 4]
    assert counts["ignored_fields"] == ["Form Tutor"]
    assert counts["missing_fields"] == ["Gender", "Year Group"]
    assert counts["encoding"] == "utf-8"
    report = [json.loads(line) for line in errors.read_text().splitlines()]
    assert len(report) == counts["skipped"] + counts["rejected"]
    rejected = {e["location"]: e for e in report if e["outcome"] == "rejected"}
    assert set(rejected) == {"row 6", "row 7"}
    for row, reason in (("row 6", "'31/02/2014' is not a real date"), ("row 7", "'01/01/2099' is in the future")):
        entry = rejected[row]
        assert entry["file"] == "schoolsafe-quirks.csv" and entry["line"]
        assert entry["field"] == "child.birth_date"
        assert entry["place"] == f"{row}, column 'Date of Birth'"
        assert entry["reason"].startswith(reason)
        assert entry["action"]


def test_non_referral_rows_are_skipped_with_the_reason(quirks):
    _, _, report = quirks
    skipped = {e["location"]: e["reason"] for e in report if e["outcome"] == "skipped"}
    assert skipped == {
        "row 8": "Referral is 'None' and Status is 'Open': not a referral to children's services",
        "row 9": "Referral is 'Police' and Status is 'Referred': not a referral to children's services",
    }


def by_name(bundles) -> dict:
    """Bundles by the child's first given name (the family name when there is none)."""
    out = {}
    for bundle in bundles:
        name = one(bundle, "Patient")["name"][0]
        out[(name.get("given") or [name["family"]])[0]] = bundle
    return out


def test_apostrophes_accents_single_digit_dates_and_multi_line_text(quirks):
    bundle = by_name(quirks[1])["Siobhán"]
    patient, sr = one(bundle, "Patient"), one(bundle, "ServiceRequest")
    assert patient["name"][0] == {"use": "official", "family": "O'NEILL", "given": ["Siobhán", "Áine"],
                                  "text": "Siobhán Áine O'NEILL"}
    assert patient["birthDate"] == "2013-03-04"
    assert identifiers(patient)[S.UPN]["value"] == "K850210117001"   # 'k850 2101 17001'
    assert patient["address"][0]["postalCode"] == "SP10 1AA"          # 'sp101aa'
    assert ext(sr, S.EXT_OCCURRED) == "2019-03-04T09:05:00+00:00"      # '4/3/2019 9:05', GMT
    assert sr["authoredOn"] == "2019-03-04T09:40:00+00:00"
    assert sr["note"][0]["text"] == "Siobhán said her dad \"hit me with a belt, again\".\nShe showed a mark on her leg, about 5cm."
    parents = {p["name"][0]["text"]: p for p in resources(bundle, "RelatedPerson")}
    assert parents["Pádraig O'Neill"]["relationship"][0]["coding"][0]["code"] == "FTH"
    assert ext(parents["Aoife O'Neill"], S.EXT_PARENTAL_RESPONSIBILITY) is True


def test_disclosure_is_context_and_a_flag_not_a_harm(quirks):
    sr = one(by_name(quirks[1])["Siobhán"], "ServiceRequest")
    harms = [c["coding"][0]["code"] for c in sr["category"] if c["coding"][0]["system"] == S.CONCERN_CATEGORY]
    context = [c["coding"][0]["code"] for c in sr["category"] if c["coding"][0]["system"] == S.CONCERN_CONTEXT]
    assert harms == ["physical"] and context == ["disclosure"]
    assert ext(sr, S.EXT_DISCLOSURE) is True


def test_siblings_sharing_an_incident_id_give_distinct_bundles(quirks):
    siblings = [b for b in quirks[1] if one(b, "Patient")["name"][0]["family"] == "O'NEILL"]
    assert len(siblings) == 2
    a, b = siblings
    for rtype in ("Patient", "ServiceRequest", "Provenance"):
        assert one(a, rtype)["id"] != one(b, rtype)["id"]
    assert a["id"] != b["id"]
    # Both keep the school's Incident ID as the record identifier.
    local = S.local_id_system("schoolsafe-csv", "999101")
    assert identifiers(one(a, "ServiceRequest"))[local]["value"] == "6001"
    assert identifiers(one(b, "ServiceRequest"))[local]["value"] == "6001"
    younger = one(b, "Patient")
    assert younger["birthDate"] == "2015-11-02"                          # '02/11/15'
    again = translate("schoolsafe-csv", (TRANSLATE / "schoolsafe-quirks.csv").read_bytes(), "copy.csv")[1]
    assert [x["id"] for x in again] == [x["id"] for x in quirks[1]]


def test_one_part_name_is_kept_whole_and_noted(quirks):
    bundle = by_name(quirks[1])["ZEPHYR"]
    assert one(bundle, "Patient")["name"] == [{"use": "official", "family": "ZEPHYR", "text": "ZEPHYR"}]
    assert "child: name 'ZEPHYR' has one part only" in issues(bundle)


def test_status_referred_with_referral_blank_is_a_referral(quirks):
    bundle = by_name(quirks[1])["ZEPHYR"]
    assert bundle["entry"][0]["resource"]["eventCoding"]["code"] == S.EVENT_REFERRAL
    sr = one(bundle, "ServiceRequest")
    assert ext(sr, S.EXT_SOURCE_STATUS) == "Referred" and ext(sr, S.EXT_REFERRED_TO) is None
    assert ext(sr, S.EXT_OCCURRED) == "2019-03-05"   # date only: time unknown


def test_unknown_vendor_category_is_kept_verbatim_and_flagged(quirks):
    bundle = by_name(quirks[1])["ZEPHYR"]
    sr = one(bundle, "ServiceRequest")
    assert {"extension": [{"url": S.EXT_UNMAPPED_CATEGORY, "valueBoolean": True}], "text": "Young Carer"} in sr["category"]
    assert [c["coding"][0]["code"] for c in sr["category"] if "coding" in c] == ["neglect"]
    assert any("'Young Carer' is on no map" in i for i in issues(bundle))


def test_blank_upn_and_invalid_upn(quirks):
    bundles = by_name(quirks[1])
    assert S.UPN not in identifiers(one(bundles["ZEPHYR"], "Patient"))
    upn = identifiers(one(bundles["Letter"], "Patient"))[S.UPN]
    assert upn["value"] == "A850210117001" and upn["use"] == "secondary"
    assert "check digit does not match" in ext(upn, S.EXT_IDENTIFIER_INVALID)
    carer = one(bundles["Letter"], "RelatedPerson")
    assert carer["relationship"][0]["coding"][0]["code"] == "PRNFOST"
    assert ext(carer, S.EXT_PARENTAL_RESPONSIBILITY) is False


def test_windows_1252_export_translates_exactly():
    summary, (bundle,), _ = translate("schoolsafe-csv", (TRANSLATE / "schoolsafe-cp1252.csv").read_bytes())
    assert summary.encoding == "cp1252"
    patient, sr = one(bundle, "Patient"), one(bundle, "ServiceRequest")
    assert patient["name"][0]["family"] == "D\u2019ARCY" and patient["name"][0]["given"] == ["Zo\u00eb", "Ren\u00e9e"]
    assert patient["birthDate"] == "2012-09-03"            # '03/09/12'
    assert sr["note"][0]["text"] == ("Zo\u00eb said \u201cthere\u2019s no food\u201d, and owes \u00a35 for lunch. "
                                     "Caf\u00e9 staff saw her crying.")
    assert one(bundle, "RelatedPerson")["name"][0]["text"] == "No\u00ebl D\u2019Arcy"
    assert ext(sr, S.EXT_OCCURRED) == "2019-09-03T09:05:00+01:00"   # BST


def test_lf_and_crlf_give_the_same_messages():
    crlf = csv_bytes(csv_row(Incident="Line one\r\nline two"))
    lf = crlf.replace(b"\r\n", b"\n")
    assert translate("schoolsafe-csv", crlf)[1] == translate("schoolsafe-csv", lf)[1]


def test_two_digit_year_is_never_in_the_future():
    # NOW is 5 January 2026: '05/03/26' can only be 1926, '04/01/26' is yesterday.
    _, (bundle,), report = translate("schoolsafe-csv", csv_bytes(csv_row(
        Date_of_Birth="05/03/26", Incident_Date="04/01/26 10:00", Date_Added="05/01/26")))
    assert report == []
    assert one(bundle, "Patient")["birthDate"] == "1926-03-05"
    assert ext(one(bundle, "ServiceRequest"), S.EXT_OCCURRED) == "2026-01-04T10:00:00+00:00"


def test_impossible_incident_date_is_rejected_and_the_rest_go_on():
    summary, bundles, report = translate("schoolsafe-csv", csv_bytes(
        csv_row(Date_Added="31/02/2019 10:00"), csv_row(Incident_ID="7002")))
    assert (summary.translated, summary.rejected) == (1, 1)
    assert report[0]["field"] == "concern.recorded" and report[0]["place"] == "row 2, column 'Date Added'"


def test_blank_incident_id_is_rejected_not_keyed_by_row():
    summary, _, report = translate("schoolsafe-csv", csv_bytes(csv_row(Incident_ID="")))
    assert summary.rejected == 1
    assert report[0]["field"] == "record_id" and report[0]["place"] == "row 2, column 'Incident ID'"
    assert report[0]["action"] == "Every row needs its Incident ID."


@pytest.mark.parametrize("status,referral,referral_expected", [
    ("Referred", "MASH", True), ("Open", "MASH", True), ("Referred", "", True), ("referred", " ", True),
    ("Referred", "Police", False), ("Referred", "Early Help", False), ("Open", "None", False), ("Closed", "", False),
])
def test_referral_rule_from_the_spec(status, referral, referral_expected):
    summary, bundles, report = translate("schoolsafe-csv", csv_bytes(csv_row(Status=status, Referral=referral)))
    assert summary.translated == int(referral_expected)
    assert summary.skipped == int(not referral_expected)
    if not referral_expected:
        assert report[0]["outcome"] == "skipped" and "not a referral" in report[0]["reason"]
        assert "--all" in report[0]["action"]


def test_all_translates_non_referrals_as_concern_records():
    summary, (bundle,), report = translate("schoolsafe-csv", csv_bytes(csv_row(Status="Open", Referral="None")),
                                           include_all=True)
    assert (summary.translated, summary.skipped, report) == (1, 0, [])
    assert bundle["entry"][0]["resource"]["eventCoding"]["code"] == S.EVENT_CONCERN
    assert one(bundle, "ServiceRequest")["intent"] == "proposal"


# == concernhub-json =======================================================================

def concern(**fields) -> dict:
    item = {"id": "c-100", "reference": "CH-2019-00100",
            "subject": {"firstName": "Ada", "lastName": "Tester", "dateOfBirth": "2012-03-04",
                        "nhsNumber": "9990000018", "gender": "female",
                        "address": {"line1": "1 Example Road", "town": "Andover", "postcode": "sp10 1aa"}},
            "raisedBy": {"name": "Sam Tully", "role": "Class Teacher"},
            "raisedAt": "2019-06-06T14:32:00+01:00", "categories": ["neglect"], "summary": "Hungry.",
            "details": "Came in hungry.", "outcome": {"status": "referred", "referredTo": "MASH"}}
    item.update(fields)
    return item


def export(*concerns, version="2.3") -> bytes:
    return json.dumps({"exportVersion": version, "exportedAt": "2019-06-07T10:15:00Z",
                       "organisation": {"urn": "999101", "name": "Example Primary School", "laNumber": "850"},
                       "concerns": list(concerns)}).encode()


def test_version_1x_and_2x_give_the_same_child():
    v2 = concern()
    v1 = concern()
    pupil = v1.pop("subject")
    pupil["dob"] = "04/03/2012"
    del pupil["dateOfBirth"]
    v1["pupil"] = pupil
    _, (from_2x,), _ = translate("concernhub-json", export(v2))
    _, (from_1x,), _ = translate("concernhub-json", export(v1, version="1.4"))
    assert one(from_1x, "Patient") == one(from_2x, "Patient")
    assert one(from_2x, "Patient")["birthDate"] == "2012-03-04"
    assert strip_ids(from_1x) == strip_ids(from_2x)


def strip_ids(bundle: dict) -> dict:
    text = json.dumps(bundle)
    for entry in bundle["entry"]:
        text = text.replace(entry["resource"]["id"], "ID")
    return json.loads(text.replace(bundle["id"], "ID"))


@pytest.mark.parametrize("raised,expected", [
    ("2019-06-06T14:32:00", "2019-06-06T14:32:00+01:00"),   # summer: BST
    ("2019-01-06T14:32:00", "2019-01-06T14:32:00+00:00"),   # winter: GMT
    ("2019-10-27T01:30:00", "2019-10-27T01:30:00+01:00"),   # the hour that happens twice: the first
])
def test_raised_at_without_offset_is_uk_local_time_and_noted(raised, expected):
    _, (bundle,), _ = translate("concernhub-json", export(concern(raisedAt=raised)))
    assert one(bundle, "ServiceRequest")["authoredOn"] == expected
    assert f"concern.recorded: '{raised}' has no time-zone offset; taken as UK local time" in issues(bundle)


def test_happened_after_raised_is_kept_as_given():
    _, (bundle,), _ = translate("concernhub-json", export(concern(happenedAt="2019-06-07T10:00:00+01:00")))
    sr = one(bundle, "ServiceRequest")
    assert ext(sr, S.EXT_OCCURRED) == "2019-06-07T10:00:00+01:00"
    assert sr["authoredOn"] == "2019-06-06T14:32:00+01:00"


def test_nhs_number_with_spaces_and_with_a_failing_check_digit():
    spaced = concern(subject=dict(concern()["subject"], nhsNumber="999 000 0018"))
    failing = concern(id="c-101", subject=dict(concern()["subject"], nhsNumber="999 000 0019"))
    _, (good, bad), _ = translate("concernhub-json", export(spaced, failing))
    assert identifiers(one(good, "Patient"))[S.NHS_NUMBER] == {"system": S.NHS_NUMBER, "value": "9990000018",
                                                               "use": "official"}
    marked = identifiers(one(bad, "Patient"))[S.NHS_NUMBER]
    assert marked["value"] == "9990000019" and marked["use"] == "secondary"
    assert "check digit" in ext(marked, S.EXT_IDENTIFIER_INVALID)


def test_empty_strings_are_not_given():
    subject = {"firstName": "Ada", "lastName": "Tester", "dateOfBirth": "2012-03-04", "nhsNumber": "", "upn": "",
               "gender": "", "address": {"line1": "", "line2": "", "town": "", "postcode": ""}}
    item = concern(subject=subject, happenedAt="", childsVoice="", riskRating="", parentsInformed="",
                   raisedBy={"name": "Sam Tully", "role": "", "email": ""})
    summary, (bundle,), _ = translate("concernhub-json", export(item))
    patient, sr = one(bundle, "Patient"), one(bundle, "ServiceRequest")
    assert set(patient) == {"resourceType", "id", "name", "birthDate"}
    assert ext(sr, S.EXT_OCCURRED) is None and ext(sr, S.EXT_CHILDS_VOICE) is None
    assert ext(sr, S.EXT_PARENTS_INFORMED) is None
    assert not [o for o in resources(bundle, "Observation")]
    assert issues(bundle) == []  # not given is not a problem


@pytest.mark.parametrize("value", ["yes", "no", "not-safe"])
def test_parents_informed_codes(value):
    _, (bundle,), _ = translate("concernhub-json", export(concern(parentsInformed=value)))
    assert ext(one(bundle, "ServiceRequest"), S.EXT_PARENTS_INFORMED) == {"system": S.PARENTS_INFORMED, "code": value}
    assert issues(bundle) == []


def test_unknown_category_codes_are_kept_and_flagged():
    _, (bundle,), _ = translate("concernhub-json", export(concern(categories=["domestic-abuse", "county-lines",
                                                                               "disclosure"])))
    sr = one(bundle, "ServiceRequest")
    assert {"extension": [{"url": S.EXT_UNMAPPED_CATEGORY, "valueBoolean": True}], "text": "county-lines"} in sr["category"]
    assert ext(sr, S.EXT_DISCLOSURE) is True
    harms = [c["coding"][0]["code"] for c in sr["category"]
             if c.get("coding") and c["coding"][0]["system"] == S.CONCERN_CATEGORY]
    assert harms == ["domestic-abuse"]


def test_single_concern_sent_on_its_own():
    summary, (bundle,), _ = translate("concernhub-json", json.dumps(concern()).encode(), "single.json")
    assert (summary.records, summary.translated) == (1, 1)
    prov = one(bundle, "Provenance")
    assert ext(prov, S.EXT_SOURCE_LOCATION) == "/"
    assert one(bundle, "Patient")["name"][0]["text"] == "Ada Tester"


@pytest.mark.parametrize("outcome,is_referral", [
    ({"status": "referred", "referredTo": "MASH"}, True),
    ({"status": "referred", "referredTo": "childrens-services"}, True),
    ({"status": "referred", "referredTo": "early-help"}, False),
    ({"status": "monitoring"}, False),
    ({"status": "closed", "referredTo": "MASH"}, False),
])
def test_concernhub_referral_rule(outcome, is_referral):
    summary, _, report = translate("concernhub-json", export(concern(outcome=outcome)))
    assert (summary.translated, summary.skipped) == (int(is_referral), int(not is_referral))
    if not is_referral:
        assert report[0]["reason"].startswith(f"outcome.status is '{outcome['status']}'")


def test_family_and_school_rating():
    item = concern(riskRating="red", family=[
        {"name": "Claire Tester", "relationship": "mother", "parentalResponsibility": True, "livesWithChild": True},
        {"name": "Mark Notreal", "relationship": "stepfather", "parentalResponsibility": False,
         "livesWithChild": True, "concernsAbout": True}])
    _, (bundle,), _ = translate("concernhub-json", export(item))
    people = {p["name"][0]["text"]: p for p in resources(bundle, "RelatedPerson")}
    assert people["Mark Notreal"]["relationship"][0]["coding"][0]["code"] == "STPFTH"
    assert ext(people["Mark Notreal"], S.EXT_ALLEGED_HARM) is True
    assert ext(people["Claire Tester"], S.EXT_LIVES_WITH_CHILD) is True
    (rating,) = resources(bundle, "Observation")
    assert rating["valueCodeableConcept"]["coding"][0] == {"system": S.RISK_RATING, "code": "red"}


# == ppn-xml ===============================================================================

@pytest.fixture(scope="module")
def household():
    return translate("ppn-xml", (TRANSLATE / "ppn-household.xml").read_bytes(), "ppn-household.xml")


def children(bundles) -> dict:
    return {one(b, "Patient")["name"][0]["given"][0]: b for b in bundles}


def test_household_counts(household):
    summary, bundles, report = household
    assert (summary.records, summary.translated, summary.skipped, summary.rejected, summary.messages) == (4, 2, 2, 0, 3)
    assert sorted(children(bundles)) == ["Ivy", "Rowan", "Sorrel"]


def test_one_bundle_per_child_with_relationships_resolved_per_child(household):
    kids = children(household[1])
    ivy = {p["name"][0]["given"][0]: p for p in resources(kids["Ivy"], "RelatedPerson")}
    rowan = {p["name"][0]["given"][0]: p for p in resources(kids["Rowan"], "RelatedPerson")}
    code = lambda p: p["relationship"][0]["coding"][0]["code"]  # noqa: E731
    assert (code(ivy["Wren"]), code(ivy["Corin"]), code(ivy["Rowan"])) == ("MTH", "FTH", "BRO")
    assert (code(rowan["Wren"]), code(rowan["Corin"]), code(rowan["Ivy"])) == ("MTH", "STPFTH", "SIS")
    for people in (ivy, rowan):
        assert ext(people["Corin"], S.EXT_ALLEGED_HARM) is True      # Suspect
        assert ext(people["Wren"], S.EXT_ALLEGED_HARM) is None
    assert one(kids["Ivy"], "Patient")["id"] != one(kids["Rowan"], "Patient")["id"]
    assert one(kids["Ivy"], "ServiceRequest")["id"] != one(kids["Rowan"], "ServiceRequest")["id"]


def test_child_without_birth_date_or_address_still_translates(household):
    rowan = one(children(household[1])["Rowan"], "Patient")
    assert "birthDate" not in rowan and "address" not in rowan
    nhs = identifiers(rowan)[S.NHS_NUMBER]
    assert nhs["value"] == "9990000019" and nhs["use"] == "secondary"


def test_times_without_offset_are_uk_local_and_noted(household):
    ivy = children(household[1])["Ivy"]
    sr = one(ivy, "ServiceRequest")
    assert ext(sr, S.EXT_OCCURRED) == "2019-07-01T22:15:00+01:00"
    assert ext(sr, S.EXT_REPORTED) == "2019-07-01T22:20:00+01:00"
    assert ext(sr, S.EXT_SUBMITTED) == "2019-07-03T09:00:00+01:00"
    assert "concern.occurred: '2019-07-01T22:15:00' has no time-zone offset; taken as UK local time" in issues(ivy)


def test_notices_sharing_a_reference_are_both_translated(household):
    kids = children(household[1])
    ids = {name: identifiers(one(b, "ServiceRequest")) for name, b in kids.items()}
    assert ids["Ivy"][S.PPN_REFERENCE]["value"] == ids["Sorrel"][S.PPN_REFERENCE]["value"] == "HAM/2019/000777"
    assert ids["Ivy"][S.PPN_NOTICE_ID]["value"] != ids["Sorrel"][S.PPN_NOTICE_ID]["value"]
    assert kids["Ivy"]["id"] != kids["Sorrel"]["id"]
    assert one(kids["Ivy"], "ServiceRequest")["id"] != one(kids["Sorrel"], "ServiceRequest")["id"]
    # Both notices call their child 'p3': they are still different people.
    local = S.local_id_system("ppn-xml", "HAM", "person")
    assert identifiers(one(kids["Ivy"], "Patient"))[local]["value"] != \
        identifiers(one(kids["Sorrel"], "Patient"))[local]["value"]


def test_resend_and_notice_without_child_are_skipped_with_reasons(household):
    report = household[2]
    assert [(e["outcome"], e["location"]) for e in report] == [
        ("skipped", "/ppn:NoticeBatch/ppn:PublicProtectionNotice[3]"),
        ("skipped", "/ppn:NoticeBatch/ppn:PublicProtectionNotice[4]")]
    assert report[0]["reason"].startswith("a resend of a record already read")
    assert report[0]["reason"].endswith("first at /ppn:NoticeBatch/ppn:PublicProtectionNotice[1]")
    assert "names no child" in report[1]["reason"]
    assert household[0].skipped_reasons == {
        "a resend of a record already read (same identity and content)": 1,
        "the notice names no child (no Person with role 'Child'): not a child safeguarding referral": 1}


def test_dash_risk_and_evidence(household):
    ivy = children(household[1])["Ivy"]
    observations = {o["code"]["coding"][0]["code"]: o for o in resources(ivy, "Observation")}
    dash = observations["dash"]
    assert dash["valueCodeableConcept"]["coding"][0]["code"] == "High"
    answers = {c["code"]["coding"][0]["code"]: c for c in dash["component"]}
    assert answers["completed"]["valueBoolean"] is True
    assert answers["1"]["valueCodeableConcept"]["coding"][0]["code"] == "Yes"
    evidence = observations[S.EVIDENCE_ITEM]
    assert evidence["valueString"] == "Body-worn video of the hallway"
    assert evidence["component"][0]["valueBoolean"] is True


def test_signature_presence_is_recorded_in_provenance():
    _, (signed,), _ = translate("ppn-xml", (FIXTURES / "ppn" / "signed-notice.xml").read_bytes())
    _, (plain,), _ = translate("ppn-xml", (FIXTURES / "ppn" / "single-notice.xml").read_bytes())
    assert ext(one(signed, "Provenance"), S.EXT_SIGNATURE_PRESENT) is True
    assert ext(one(plain, "Provenance"), S.EXT_SIGNATURE_PRESENT) is False


# == transforms ============================================================================

def ctx() -> FieldContext:
    return FieldContext("f", "row 2", NOW, ZoneInfo("Europe/London"), [])


@pytest.mark.parametrize("text,expected", [("3/9/2019 9:05", "2019-09-03T09:05:00+01:00"),
                                           ("03/12/2019 09:05", "2019-12-03T09:05:00+00:00"),
                                           ("2019-06-06T14:32:00Z", "2019-06-06T14:32:00+00:00"),
                                           ("2019-06-06T14:32:00-0500", "2019-06-06T14:32:00-05:00"),
                                           ("03/09/19", "2019-09-03")])
def test_datetime_transform(text, expected):
    assert get_transform("datetime")(text, {}, ctx()) == expected


@pytest.mark.parametrize("text", ["31/02/2019", "29/02/2019 10:00", "12/13/2019", "14/03/2019 25:00", "tomorrow"])
def test_datetime_transform_refuses_what_is_not_a_date(text):
    with pytest.raises(FieldProblem):
        get_transform("datetime")(text, {}, ctx())


def test_date_before_1900_is_refused():
    with pytest.raises(FieldProblem, match="before 1900"):
        get_transform("date")("01/01/1850", {}, ctx())


# == a vendor variant needs no Python =======================================================

def test_vendor_variant_is_only_a_mapping_file_and_conceptmap(tmp_path):
    variant = tmp_path / "othersafe-csv"
    shutil.copytree(MAPPINGS / "schoolsafe-csv", variant, ignore=shutil.ignore_patterns("cases"))
    spec = yaml.safe_load((variant / "mapping.yaml").read_text(encoding="utf-8"))
    spec["format"] = "othersafe-csv"
    fields = spec["fields"]
    fields["child"]["from"] = "Pupil Name"
    fields["child_key"]["from"] = ["UPN", "Pupil Name"]
    fields["child.birth_date"]["from"] = "DOB"
    fields["child.birth_date"]["args"]["formats"] = ["dd.mm.yyyy"]
    fields["concern.categories"]["from"] = "Concern Types"
    renamed = {"Student": "Pupil Name", "Date of Birth": "DOB", "Categories": "Concern Types"}
    spec["reader"]["required_columns"] = [renamed.get(c, c) for c in spec["reader"]["required_columns"]]
    (variant / "mapping.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    cmap = json.loads((variant / "categories.conceptmap.json").read_text(encoding="utf-8"))
    for element in cmap["group"][0]["element"]:
        if element["code"] == "Domestic Abuse":
            element["code"] = "DV at home"
    (variant / "categories.conceptmap.json").write_text(json.dumps(cmap), encoding="utf-8")

    mapping = Mapping.load(variant)
    assert mapping.format_id == "othersafe-csv"
    header = [{"Student": "Pupil Name", "Date of Birth": "DOB", "Categories": "Concern Types"}.get(h, h) for h in HEADER]
    row = csv_row(Date_of_Birth="14.05.2013", Categories="DV at home; Disclosure")
    row = {{"Student": "Pupil Name", "Date of Birth": "DOB", "Categories": "Concern Types"}.get(k, k): v
           for k, v in row.items()}
    summary, (bundle,), report = translate(mapping, csv_bytes(row, header=header))
    assert report == [] and summary.ignored_fields == []
    assert one(bundle, "Patient")["birthDate"] == "2013-05-14"
    assert one(bundle, "Patient")["name"][0]["text"] == "Ada TESTER"
    codes = [c["coding"][0]["code"] for c in one(bundle, "ServiceRequest")["category"]]
    assert codes == ["domestic-abuse", "disclosure"]
    assert ext(one(bundle, "Provenance"), S.EXT_MAPPING_VERSION) == "othersafe-csv 1.0.0"
    # The shipped mapping does not know the variant's headers: its required columns are missing.
    with pytest.raises(InputUnreadable, match="has no .*'Categories' column"):
        translate("schoolsafe-csv", csv_bytes(row, header=header))


# == broken mappings are the integrator's problem, said clearly ==========================

@pytest.mark.parametrize("change,words", [
    (lambda s: s.replace("parse: urn", "parse: no-such-transform"), "unknown transform 'no-such-transform'"),
    (lambda s: s.replace("parse: urn, required: true", "parse: urn, requierd: true"), "unknown keys ['requierd']"),
    (lambda s: s.replace("conceptmap: categories.conceptmap.json", "conceptmap: missing.json"), "missing.json"),
    (lambda s: s.replace("version: \"1.0.0\"\n", ""), "no 'version'"),
])
def test_broken_mapping_raises_mapping_error(tmp_path, change, words):
    shutil.copytree(MAPPINGS / "schoolsafe-csv", tmp_path / "m", ignore=shutil.ignore_patterns("cases"))
    path = tmp_path / "m" / "mapping.yaml"
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(MappingError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Mapping.load(path)


def test_unreadable_mapping_file(tmp_path):
    (tmp_path / "mapping.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(MappingError, match="must be a YAML mapping"):
        Mapping.load(tmp_path)
    with pytest.raises(MappingError, match="cannot read"):
        Mapping.load(tmp_path / "nope" / "mapping.yaml")


def test_a_code_map_with_yaml_booleans_is_refused_at_load(tmp_path):
    """`yes: yes` in YAML is True: True; the engine refuses it instead of silently dropping values."""
    import shutil

    from gateway.adapters.errors import MappingError
    from gateway.adapters.mapping import Mapping
    from gateway.config import Settings

    folder = tmp_path / "concernhub-json"
    shutil.copytree(Settings().mappings_dir / "concernhub-json", folder)
    text = (folder / "mapping.yaml").read_text(encoding="utf-8")
    text = text.replace('"yes": "yes", "no": "no"', "yes: yes, no: no")
    assert "yes: yes, no: no" in text
    (folder / "mapping.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match="not text; quote them"):
        Mapping.load(folder)


def test_schoolsafe_file_without_a_spec_required_column_is_unreadable(tmp_path):
    from gateway.adapters.base import InputUnreadable

    header = ("Incident ID,School URN,Student,UPN,Incident Date,Date Added,Categories,Incident,"
              "Reported By,Status,Referral\r\n")
    row = '1,999101,"PARKER, Leo",,07/06/2019,07/06/2019 10:30,Neglect,Text,A B (DSL),Referred,MASH\r\n'
    adapter = get_adapter("schoolsafe-csv")
    with pytest.raises(InputUnreadable, match="Date of Birth"):
        list(adapter.records(io.BytesIO((header + row).encode()), "no-dob.csv"))

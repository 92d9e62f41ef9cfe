"""Canonical record -> FHIR message Bundle: structure, references, ids and provenance."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from gateway.adapters.goldens import check_rules, strip_volatile
from gateway.model import build_bundle, deterministic_id
from gateway.model import systems as S

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
LATER = dt.datetime(2026, 2, 1, 12, 30, tzinfo=dt.timezone.utc)


def record(**overrides) -> dict:
    rec = {
        "format": "schoolsafe-csv", "mapping_version": "1.0.0", "kind": "referral",
        "source": {"file": "export.csv", "location": "row 7", "line": 9, "record_id": 4101},
        "sender": {"kind": "school", "code": "999101", "name": "Example Primary School", "la_number": "850"},
        "referrer": {"name": "Sam Tully", "role": "Class Teacher"},
        "child": {"given": ["Ada"], "family": "TESTER", "birth_date": "2013-05-14", "gender": "female",
                  "nhs_number": "999 000 0018", "upn": "k850 2101 17001",
                  "address": {"lines": ["1 Example Road"], "town": "Andover", "postcode": "sp10 1aa"}},
        "people": [{"given": ["Alex"], "family": "Tester", "relationship": {"code": "MTH", "display": "mother",
                                                                           "text": "Mother"},
                    "parental_responsibility": True, "lives_with_child": True, "alleged_harm": False}],
        "concern": {"local_id": 4101, "narrative": "Came in hungry, said \"nothing at home\".",
                    "occurred": "2019-03-14T09:10:00+00:00", "recorded": "2019-03-14T11:42:00+00:00",
                    "categories": [{"label": "Neglect", "mapped": True, "system": S.CONCERN_CATEGORY,
                                    "code": "neglect", "display": "Neglect"},
                                   {"label": "Disclosure", "mapped": True, "system": S.CONCERN_CONTEXT,
                                    "code": "disclosure", "display": "Disclosure"},
                                   {"label": "Young Carer", "mapped": False}],
                    "disclosure": True, "status": "Referred", "referred_to": "MASH"},
        "risk": [{"kind": "school-rating", "value": "amber"}],
        "issues": [{"field": "concern.categories", "location": "row 7, column 'Categories'",
                    "reason": "category 'Young Carer' is on no map", "action": "", "code": "unmapped-category"}],
    }
    rec.update(overrides)
    return rec


def resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict, rtype: str) -> dict:
    found = resources(bundle, rtype)
    assert len(found) == 1, f"{len(found)} {rtype}"
    return found[0]


def ext(resource: dict, url: str):
    values = [{k: v for k, v in e.items() if k != "url"} for e in resource.get("extension", []) if e["url"] == url]
    return next(iter(values[0].values())) if values else None


def test_message_bundle_structure_and_rules():
    bundle = build_bundle(record(), now=NOW)
    assert check_rules(bundle) == []
    assert bundle["type"] == "message"
    assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"
    assert bundle["identifier"] == {"system": S.MESSAGE_ID, "value": f"urn:uuid:{bundle['id']}"}
    header = bundle["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == S.EVENT_REFERRAL
    assert header["source"]["endpoint"] == "urn:x-safeguarding:agency:school:999101"
    assert header["focus"] == [{"reference": f"urn:uuid:{one(bundle, 'ServiceRequest')['id']}"}]
    assert {e["fullUrl"] for e in bundle["entry"]} == {f"urn:uuid:{e['resource']['id']}" for e in bundle["entry"]}
    assert bundle["timestamp"] == "2026-01-05T09:00:00+00:00"


def test_child_identifiers_are_normalised():
    patient = one(build_bundle(record(), now=NOW), "Patient")
    assert {i["system"]: (i["value"], i["use"]) for i in patient["identifier"]} == {
        S.NHS_NUMBER: ("9990000018", "official"), S.UPN: ("K850210117001", "official")}
    assert patient["address"][0]["postalCode"] == "SP10 1AA"
    assert patient["birthDate"] == "2013-05-14" and patient["gender"] == "female"


def test_invalid_identifiers_are_kept_marked_and_secondary():
    child = dict(record()["child"], nhs_number="9990000019", upn="A850210117001")
    bundle = build_bundle(record(child=child), now=NOW)
    assert check_rules(bundle) == []
    idents = {i["system"]: i for i in one(bundle, "Patient")["identifier"]}
    for system, value in ((S.NHS_NUMBER, "9990000019"), (S.UPN, "A850210117001")):
        assert idents[system]["value"] == value
        assert idents[system]["use"] == "secondary"
        assert "check digit does not match" in ext(idents[system], S.EXT_IDENTIFIER_INVALID)


def test_temporary_upn_is_marked_temp():
    child = dict(record()["child"], upn="W85021011700A")
    idents = {i["system"]: i for i in one(build_bundle(record(child=child), now=NOW), "Patient")["identifier"]}
    assert idents[S.UPN] == {"system": S.UPN, "value": "W85021011700A", "use": "temp"}


def test_categories_unmapped_kept_and_disclosure_is_context_not_harm():
    sr = one(build_bundle(record(), now=NOW), "ServiceRequest")
    by_text = {c["text"]: c for c in sr["category"]}
    assert by_text["Neglect"]["coding"][0] == {"system": S.CONCERN_CATEGORY, "code": "neglect", "display": "Neglect"}
    assert by_text["Disclosure"]["coding"][0]["system"] == S.CONCERN_CONTEXT
    assert by_text["Young Carer"] == {"extension": [{"url": S.EXT_UNMAPPED_CATEGORY, "valueBoolean": True}],
                                      "text": "Young Carer"}
    assert ext(sr, S.EXT_DISCLOSURE) is True
    assert sr["intent"] == "order"
    assert sr["authoredOn"] == "2019-03-14T11:42:00+00:00"
    assert ext(sr, S.EXT_OCCURRED) == "2019-03-14T09:10:00+00:00"


def test_date_only_occurred_is_a_date():
    rec = record()
    rec["concern"]["occurred"] = "2019-03-14"
    sr = one(build_bundle(rec, now=NOW), "ServiceRequest")
    assert {"url": S.EXT_OCCURRED, "valueDate": "2019-03-14"} in sr["extension"]


def test_related_person_extensions():
    person = one(build_bundle(record(), now=NOW), "RelatedPerson")
    assert person["relationship"][0]["coding"][0]["code"] == "MTH"
    assert ext(person, S.EXT_PARENTAL_RESPONSIBILITY) is True
    assert ext(person, S.EXT_LIVES_WITH_CHILD) is True
    assert ext(person, S.EXT_ALLEGED_HARM) is False
    assert person["patient"] == {"reference": f"urn:uuid:{one(build_bundle(record(), now=NOW), 'Patient')['id']}"}


def test_provenance_names_file_location_and_mapping_version():
    bundle = build_bundle(record(), now=NOW)
    prov = one(bundle, "Provenance")
    assert ext(prov, S.EXT_MAPPING_VERSION) == "schoolsafe-csv 1.0.0"
    assert ext(prov, S.EXT_SOURCE_LOCATION) == "row 7"
    assert ext(prov, S.EXT_SIGNATURE_PRESENT) is False
    assert prov["entity"][0]["what"]["display"] == "schoolsafe-csv file export.csv, row 7"
    assert prov["entity"][0]["what"]["identifier"]["value"] == "4101"
    issues = [e["valueString"] for e in prov["extension"] if e["url"] == S.EXT_TRANSLATION_ISSUE]
    assert issues == ["concern.categories: category 'Young Carer' is on no map"]
    targets = {t["reference"] for t in prov["target"]}
    assert targets == {e["fullUrl"] for e in bundle["entry"][1:-1]}  # everything but header and itself


def test_signature_presence_is_recorded():
    rec = record()
    rec["source"]["signature_present"] = True
    assert ext(one(build_bundle(rec, now=NOW), "Provenance"), S.EXT_SIGNATURE_PRESENT) is True


def test_concern_record_has_the_concern_event():
    bundle = build_bundle(record(kind="concern"), now=NOW)
    assert bundle["entry"][0]["resource"]["eventCoding"]["code"] == S.EVENT_CONCERN
    assert one(bundle, "ServiceRequest")["intent"] == "proposal"
    assert check_rules(bundle) == []


# -- deterministic ids --------------------------------------------------------------------

def all_ids(bundle: dict) -> dict:
    return {(e["resource"]["resourceType"], i): e["resource"]["id"] for i, e in enumerate(bundle["entry"])}


def test_same_record_same_ids_whatever_the_time():
    first, second = build_bundle(record(), now=NOW), build_bundle(record(), now=LATER)
    assert strip_volatile(first) == strip_volatile(second)
    assert first["timestamp"] != second["timestamp"]


def test_same_record_at_another_place_is_the_same_message():
    moved = record(source={"file": "re-export.csv", "location": "row 93", "line": 95, "record_id": 4101},
                   issues=[dict(record()["issues"][0], location="row 93, column 'Categories'")])
    first, again = build_bundle(record(), now=NOW), build_bundle(moved, now=NOW)
    assert again["id"] == first["id"]
    assert all_ids(again) == all_ids(first)


def test_edited_record_keeps_resource_ids_but_gets_a_new_bundle_id():
    edited = record()
    edited["concern"]["narrative"] += " Edited later by the DSL."
    first, second = build_bundle(record(), now=NOW), build_bundle(edited, now=NOW)
    assert second["id"] != first["id"]
    assert second["entry"][0]["resource"]["id"] != first["entry"][0]["resource"]["id"]
    for rtype in ("ServiceRequest", "Patient", "RelatedPerson", "Organization", "Provenance"):
        assert one(second, rtype)["id"] == one(first, rtype)["id"], rtype


def test_different_children_of_one_record_get_different_ids():
    a = build_bundle(record(child_key="K850210117001"), now=NOW)
    b = build_bundle(record(child_key="K850210119003"), now=NOW)
    assert a["id"] != b["id"]
    assert one(a, "Patient")["id"] != one(b, "Patient")["id"]
    assert one(a, "ServiceRequest")["id"] != one(b, "ServiceRequest")["id"]


def test_person_local_ids_are_scoped_by_their_record():
    child = dict(record()["child"], local_id="p3")
    a = one(build_bundle(record(child=child), now=NOW), "Patient")
    other = record(child=child)
    other["source"] = dict(other["source"], record_id=4102)
    b = one(build_bundle(other, now=NOW), "Patient")
    local = S.local_id_system("schoolsafe-csv", "999101", "person")
    assert [i["value"] for i in a["identifier"] if i["system"] == local] == ["4101/p3"]
    assert [i["value"] for i in b["identifier"] if i["system"] == local] == ["4102/p3"]


def test_deterministic_id_is_uuid5_of_its_parts():
    assert deterministic_id("a", 1, None) == deterministic_id("a", "1", "")
    assert deterministic_id("a", 1) != deterministic_id("a", 2)
    assert deterministic_id("x")[14] == "5"  # version nibble


def test_missing_required_canonical_key_is_a_key_error():
    rec = record()
    del rec["child"]
    with pytest.raises(KeyError):
        build_bundle(rec, now=NOW)


def test_build_does_not_change_its_input():
    rec = record()
    before = copy.deepcopy(rec)
    build_bundle(rec, now=NOW)
    assert rec == before

"""Each MUST and SHOULD item of the standard, removed from a complete message, is reported.

The cases are parametrised over the definition (standard.yaml): a new item
without a remover here fails ``test_item_removed_is_reported`` for that item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from .referral_builders import (NOW, clone, complete_bundle, drop_ext, entries, first, flagged, index_of,
                               issues_for, place)

from gateway.model import systems as S
from gateway.validation import extensions as X
from gateway.validation import has_errors, load_standard, validate_bundle
from gateway.validation.checks import CHECKS
from gateway.validation.standard import concrete_expression

STANDARD = load_standard()
KIND_APPLIES = {"school": {"all", "school"}, "police": {"all", "police", "domestic-abuse"}}


@dataclasses.dataclass(frozen=True)
class Remover:
    """How to take one item out of a complete message.

    ``remove`` mutates the Bundle; ``expression`` gives the expected FHIRPath
    (default: the item's own place in the message); ``also`` names other
    items the removal necessarily takes with it; ``kinds`` limits the
    complete messages it applies to.
    """

    remove: Callable[[dict], None]
    expression: Callable[[dict], str] | None = None
    also: frozenset[str] = frozenset()
    kinds: tuple[str, ...] = ("school", "police")


def _sr(b):
    return first(b, "ServiceRequest")


def _pt(b):
    return first(b, "Patient")


def _at(rtype, path):
    return lambda b: concrete_expression(rtype, index_of(b, rtype), path)


def _drop_sr_ext(url):
    return lambda b: drop_ext(_sr(b), url)


def _related(url):
    # No single RelatedPerson is "the" one lacking it: the expression names them all.
    return lambda b: f"Bundle.entry.resource.ofType(RelatedPerson).extension('{url}')"


def _drop_related_ext(*urls):
    def remove(b):
        for _, rp in entries(b, "RelatedPerson"):
            drop_ext(rp, *urls)
    return remove


def _remove_identity(b):
    del b["identifier"]


def _remove_sender(b):
    header = first(b, "MessageHeader")
    del header["sender"]
    header["source"]["endpoint"] = "https://sender.example/fhir"


def _remove_child_identity(b):
    pt = _pt(b)
    pt["identifier"] = [i for i in pt["identifier"] if i["system"] not in (S.NHS_NUMBER, S.UPN)]
    del pt["name"]


def _remove_routing(b):
    pt = _pt(b)
    del pt["address"]
    drop_ext(pt, S.EXT_SCHOOL)
    for _, org in entries(b, "Organization"):
        org["identifier"] = [i for i in org.get("identifier", []) if i["system"] not in (S.SCHOOL_URN, S.DFE_LA)]


def _categories_context_only(b):
    sr = _sr(b)
    sr["category"] = [c for c in sr["category"] if c["coding"][0]["system"] == S.NOTICE_TYPE] + [
        {"coding": [{"system": S.CONCERN_CONTEXT, "code": "disclosure"}], "text": "Disclosure"}]


def _remove_narrative(b):
    _sr(b)["note"].pop(0)


def _remove_recorded(b):
    del _sr(b)["authoredOn"]


def _remove_nhs(b):
    pt = _pt(b)
    pt["identifier"] = [i for i in pt["identifier"] if i["system"] != S.NHS_NUMBER]


def _remove_school(b):
    drop_ext(_pt(b), S.EXT_SCHOOL)


def _remove_referrer_name(b):
    del first(b, "Practitioner")["name"]


def _remove_referrer_role(b):
    del first(b, "PractitionerRole")["code"]


def _remove_contact(b):
    first(b, "Practitioner").pop("telecom", None)
    first(b, "PractitionerRole").pop("telecom", None)


def _remove_actions(b):
    del _sr(b)["note"][1:]


def _dash_not_completed(b):
    dash = [o for _, o in entries(b, "Observation") if o["code"]["coding"][0]["code"] == "dash"][0]
    dash["component"][0]["valueBoolean"] = False


def _evidence_secured_unknown(b):
    for _, obs in entries(b, "Observation"):
        if obs["code"]["coding"][0]["code"] == S.EVIDENCE_ITEM:
            del obs["component"]


def _evidence_index(b):
    return next(i for i, o in entries(b, "Observation") if o["code"]["coding"][0]["code"] == S.EVIDENCE_ITEM)


def _dash_index(b):
    return next(i for i, o in entries(b, "Observation") if o["code"]["coding"][0]["code"] == "dash")


REMOVERS: dict[str, Remover] = {
    "message-identity": Remover(_remove_identity, lambda b: "Bundle.identifier"),
    # Without a known sender the gateway cannot tell that a school is sending about its own pupil.
    "sender": Remover(_remove_sender, also=frozenset({"school"})),
    "child-identified": Remover(_remove_child_identity, also=frozenset({"nhs-number"})),
    "routable": Remover(_remove_routing, kinds=("school",)),
    "concern-category": Remover(_categories_context_only),
    "narrative": Remover(_remove_narrative),
    "recorded": Remover(_remove_recorded),
    "nhs-number": Remover(_remove_nhs),
    "occurred": Remover(_drop_sr_ext(S.EXT_OCCURRED)),
    "childs-voice": Remover(_drop_sr_ext(S.EXT_CHILDS_VOICE)),
    "child-spoken-to": Remover(_drop_sr_ext(S.EXT_CHILD_SPOKEN_TO)),
    "parental-responsibility": Remover(_drop_related_ext(S.EXT_PARENTAL_RESPONSIBILITY),
                                       _related(S.EXT_PARENTAL_RESPONSIBILITY)),
    "parents-informed": Remover(_drop_sr_ext(S.EXT_PARENTS_INFORMED)),
    "household": Remover(_drop_related_ext(S.EXT_LIVES_WITH_CHILD), _related(S.EXT_LIVES_WITH_CHILD)),
    "alleged-harm": Remover(_drop_related_ext(S.EXT_ALLEGED_HARM, S.EXT_PARTICIPANT_ROLE),
                            _related(S.EXT_ALLEGED_HARM)),
    # A school sending about its own pupil is the child's school: only a police notice can lack it.
    "school": Remover(_remove_school, kinds=("police",)),
    "referrer-name": Remover(_remove_referrer_name),
    "referrer-role": Remover(_remove_referrer_role),
    "referrer-contact": Remover(_remove_contact),
    "immediate-risk": Remover(_drop_sr_ext(S.EXT_IMMEDIATE_RISK)),
    "action-taken": Remover(_remove_actions),
    "requested-action": Remover(_drop_sr_ext(X.EXT_REQUESTED_ACTION)),
    "dash": Remover(_dash_not_completed, lambda b: f"Bundle.entry[{_dash_index(b)}].resource.component.where("
                                                   "code.coding.code = 'completed').value"),
    "evidence": Remover(_evidence_secured_unknown,
                        lambda b: f"Bundle.entry[{_evidence_index(b)}].resource.component.where("
                                  "code.coding.code = 'secured').value"),
    "consent": Remover(_drop_sr_ext(S.EXT_CONSENT_TO_SHARE)),
}


def _cases():
    for item in STANDARD.level("MUST") + STANDARD.level("SHOULD"):
        remover = REMOVERS.get(item.id)
        kinds = remover.kinds if remover else ("school", "police")
        for kind in kinds:
            if item.applies in KIND_APPLIES[kind]:
                yield pytest.param(item, kind, id=f"{item.id}-{kind}")


@pytest.fixture(scope="module")
def complete():
    return {kind: complete_bundle(kind) for kind in KIND_APPLIES}


@pytest.mark.parametrize("kind", sorted(KIND_APPLIES))
def test_complete_message_has_no_issues(complete, kind):
    outcome = validate_bundle(complete[kind], now=NOW)
    assert [i["severity"] for i in outcome["issue"]] == ["information"]
    assert outcome["extension"] == [{"url": S.EXT_COMPLETENESS, "valueInteger": 100}]
    assert not has_errors(outcome)


@pytest.mark.parametrize(("item", "kind"), list(_cases()))
def test_item_removed_is_reported(complete, item, kind):
    remover = REMOVERS.get(item.id)
    assert remover is not None, f"standard item {item.id!r} has no remover in REMOVERS; add one"
    bundle = clone(complete[kind])
    remover.remove(bundle)

    outcome = validate_bundle(bundle, now=NOW, base=False)

    issues = issues_for(outcome, item.id)
    assert issues, f"removing {item.id} gave no issue: {outcome['issue']}"
    assert {i["severity"] for i in issues} == {item.severity}
    assert {i["code"] for i in issues} == {item.issue_code}
    expected = remover.expression(bundle) if remover.expression else item.expression(index_of(bundle, item.resource))
    assert place(issues[0]) == expected
    assert issues[0]["details"]["text"]
    assert flagged(outcome) - {item.id} <= remover.also
    assert has_errors(outcome) == (item.level == "MUST")
    if item.level == "SHOULD":
        applicable = [i for i in STANDARD.level("SHOULD") if i.applies in KIND_APPLIES[kind]]
        missing = 1 + len(remover.also & {i.id for i in applicable})
        score = round(100 * (len(applicable) - missing) / len(applicable))
        assert outcome["extension"][0]["valueInteger"] == score


def test_every_remover_is_for_an_item():
    ids = {i.id for i in STANDARD.level("MUST") + STANDARD.level("SHOULD")}
    assert set(REMOVERS) <= ids


def test_every_check_named_in_the_definition_exists():
    named = ({i.check for i in STANDARD.items if i.check} | {i.explain for i in STANDARD.items if i.explain}
             | {f.check for f in STANDARD.flags})
    assert named - set(CHECKS) == set()
    assert set(CHECKS) - named == set(), "a registered check that no item uses"


def test_every_must_and_should_item_has_an_invariant_on_resources():
    for item in STANDARD.level("MUST") + STANDARD.level("SHOULD"):
        assert item.invariant, f"{item.id} has no invariant"
        for alternative in item.invariant:
            assert not alternative.expression.startswith(("Bundle.", alternative.resource + ".")), item.id
            assert "{" not in alternative.expression, f"{item.id}: unresolved placeholder"
    # Only rules FHIRPath cannot say (check digits, postcodes, timeliness) are decided in Python.
    python = {i.id for i in STANDARD.items if i.check}
    assert python == {"child-identified", "routable", "nhs-number", "school"} | {
        i.id for i in STANDARD.level("TIMELINESS")}


def test_every_extension_url_is_described():
    from gateway.validation.extensions import BY_URL
    defined = {v for k, v in vars(S).items() if k.startswith("EXT_")}
    defined |= {v for k, v in vars(X).items() if k.startswith("EXT_")}
    assert defined - set(BY_URL) == set(), "describe each new extension in gateway/validation/extensions.py"


def test_no_patient_is_an_error_naming_where_it_goes(complete):
    bundle = clone(complete["school"])
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    outcome = validate_bundle(bundle, now=NOW, base=False)
    (issue,) = issues_for(outcome, "child-identified")
    assert issue["severity"] == "error"
    assert place(issue) == "Bundle.entry.resource.ofType(Patient)"
    assert "no Patient" in issue["details"]["text"]


def test_unborn_child_is_identified_by_name_and_due_date(complete):
    bundle = clone(complete["school"])
    pt = _pt(bundle)
    pt["identifier"] = []
    del pt["birthDate"]
    pt.setdefault("extension", []).append({"url": X.EXT_EXPECTED_DUE_DATE, "valueDate": "2019-09-01"})
    outcome = validate_bundle(bundle, now=NOW, base=False)
    assert "child-identified" not in flagged(outcome)
    del pt["name"]
    outcome = validate_bundle(bundle, now=NOW, base=False)
    (issue,) = issues_for(outcome, "child-identified")
    assert "no valid NHS number or UPN, and no name." in issue["details"]["text"]


def test_disclosure_alone_is_not_a_concern_category(complete):
    bundle = clone(complete["school"])
    _categories_context_only(bundle)
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "concern-category")
    assert "'Disclosure'" in issue["details"]["text"]
    assert "not a kind of harm" in issue["details"]["text"]


def test_unmapped_category_counts_as_present_but_is_flagged(complete):
    bundle = clone(complete["school"])
    _sr(bundle)["category"] = [{"extension": [{"url": S.EXT_UNMAPPED_CATEGORY, "valueBoolean": True}],
                                "text": "Sexting"}]
    outcome = validate_bundle(bundle, now=NOW, base=False)
    assert "concern-category" not in flagged(outcome)
    (issue,) = issues_for(outcome, "unmapped-category")
    assert issue["severity"] == "warning" and issue["code"] == "code-invalid"
    assert "'Sexting'" in issue["details"]["text"]
    assert place(issue) == f"Bundle.entry[{index_of(bundle, 'ServiceRequest')}].resource.category[0]"


def test_nhs_number_absent_with_reason_counts_as_present(complete):
    bundle = clone(complete["school"])
    _remove_nhs(bundle)
    _pt(bundle)["extension"] = [{"url": S.EXT_NHS_NUMBER_ABSENT_REASON, "valueString": "not known to the school"}]
    assert "nhs-number" not in flagged(validate_bundle(bundle, now=NOW, base=False))


def test_child_not_spoken_to_explains_absent_voice(complete):
    bundle = clone(complete["school"])
    sr = _sr(bundle)
    drop_ext(sr, S.EXT_CHILDS_VOICE, S.EXT_CHILD_SPOKEN_TO)
    sr["extension"].append({"url": S.EXT_CHILD_SPOKEN_TO, "valueBoolean": False})
    assert "childs-voice" not in flagged(validate_bundle(bundle, now=NOW, base=False))
    drop_ext(sr, S.EXT_CHILD_SPOKEN_TO)
    sr["extension"].append({"url": X.EXT_CHILDS_VOICE_ABSENT_REASON, "valueCode": "too-young"})
    assert flagged(validate_bundle(bundle, now=NOW, base=False)) == {"child-spoken-to"}


def test_parents_not_informed_needs_a_reason(complete):
    bundle = clone(complete["school"])
    sr = _sr(bundle)
    drop_ext(sr, S.EXT_PARENTS_INFORMED)
    sr["extension"].append({"url": S.EXT_PARENTS_INFORMED, "valueCoding": {"system": S.PARENTS_INFORMED, "code": "no"}})
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "parents-informed")
    assert place(issue) == (f"Bundle.entry[{index_of(bundle, 'ServiceRequest')}].resource."
                            f"extension('{X.EXT_PARENTS_NOT_INFORMED_REASON}')")
    # Missing, so the simple form names the ServiceRequest that should hold it.
    assert issue["expression"] == [f"Bundle.entry[{index_of(bundle, 'ServiceRequest')}].resource"]
    sr["extension"].append({"url": X.EXT_PARENTS_NOT_INFORMED_REASON, "valueString": "father is alleged abuser"})
    assert "parents-informed" not in flagged(validate_bundle(bundle, now=NOW, base=False))


def test_consent_not_asked_needs_a_lawful_basis(complete):
    bundle = clone(complete["police"])
    sr = _sr(bundle)
    drop_ext(sr, S.EXT_CONSENT_TO_SHARE)
    sr["extension"].append({"url": S.EXT_CONSENT_TO_SHARE, "valueCode": "NotAsked"})
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "consent")
    assert "'NotAsked'" in issue["details"]["text"] and "lawful basis" in issue["details"]["text"]
    sr["extension"].append({"url": X.EXT_LAWFUL_BASIS, "valueString": "UK GDPR 6(1)(e); DPA 2018 Sch 8 para 18"})
    assert "consent" not in flagged(validate_bundle(bundle, now=NOW, base=False))


def test_dash_missing_or_without_level(complete):
    bundle = clone(complete["police"])
    dash_i = _dash_index(bundle)
    del bundle["entry"][dash_i]["resource"]["valueCodeableConcept"]
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "dash")
    assert place(issue) == f"Bundle.entry[{dash_i}].resource.value"
    assert "no risk level" in issue["details"]["text"]
    del bundle["entry"][dash_i]
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "dash")
    assert place(issue) == f"Bundle.entry[{index_of(bundle, 'ServiceRequest')}].resource.supportingInfo"


def test_dash_applies_only_to_domestic_abuse_notices(complete):
    bundle = clone(complete["police"])
    _sr(bundle)["category"] = [{"coding": [{"system": S.CONCERN_CATEGORY, "code": "neglect"}]},
                               {"coding": [{"system": S.NOTICE_TYPE, "code": "ChildConcern"}]}]
    bundle["entry"].pop(_dash_index(bundle))
    outcome = validate_bundle(bundle, now=NOW, base=False)
    assert "dash" not in flagged(outcome)
    assert outcome["extension"][0]["valueInteger"] == 100


def test_no_evidence_listed_on_a_police_notice(complete):
    bundle = clone(complete["police"])
    bundle["entry"].pop(_evidence_index(bundle))
    (issue,) = issues_for(validate_bundle(bundle, now=NOW, base=False), "evidence")
    assert "No evidence items" in issue["details"]["text"]


def test_evidence_not_secured_is_flagged_without_changing_the_score(complete):
    bundle = clone(complete["police"])
    obs = bundle["entry"][_evidence_index(bundle)]["resource"]
    obs["component"][0]["valueBoolean"] = False
    outcome = validate_bundle(bundle, now=NOW, base=False)
    (issue,) = issues_for(outcome, "evidence-not-secured")
    assert "BodyWorn" in issue["details"]["text"]
    assert outcome["extension"][0]["valueInteger"] == 100


def test_base_validation_failures_are_errors_with_paths(complete):
    bundle = clone(complete["school"])
    _pt(bundle)["birthDate"] = "14/05/2013"
    outcome = validate_bundle(bundle, now=NOW)
    base = issues_for(outcome, "fhir-base")
    assert base and base[0]["severity"] == "error" and base[0]["code"] == "structure"
    assert place(base[0]) == f"Bundle.entry[{index_of(bundle, 'Patient')}].resource.birthDate"
    assert "fhir-base" not in flagged(validate_bundle(bundle, now=NOW, base=False))


@pytest.mark.parametrize("garbage", [
    {"resourceType": "Bundle"},
    {"resourceType": "Bundle", "entry": "nope"},
    {"resourceType": "Bundle", "entry": [None, 3, {"resource": "x"}, {"resource": {"resourceType": 5}}]},
    {"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader",
                                                                         "focus": "x", "sender": [1]}}]},
    {"resourceType": "Bundle", "entry": [{"fullUrl": "a", "resource": {
        "resourceType": "ServiceRequest", "extension": [{"url": S.EXT_OCCURRED, "valueDateTime": "yesterday"}],
        "note": [None], "category": [{"coding": "x"}], "authoredOn": 7, "subject": "a"}}]},
])
def test_odd_input_gives_errors_not_exceptions(garbage):
    outcome = validate_bundle(garbage, now=NOW)
    assert has_errors(outcome)
    assert outcome["issue"][-1]["severity"] == "information"


def test_outcome_is_valid_fhir(complete):
    from gateway.model import validate_resource
    bundle = clone(complete["police"])
    _remove_child_identity(bundle)
    validate_resource(validate_bundle(bundle, now=NOW))


def test_not_a_bundle_raises():
    from gateway.validation import NotABundle
    with pytest.raises(NotABundle, match="Patient"):
        validate_bundle({"resourceType": "Patient"}, now=NOW)
    with pytest.raises(NotABundle):
        validate_bundle([], now=NOW)  # type: ignore[arg-type]


def test_an_invariant_that_is_not_fhirpath_is_refused_naming_the_item():
    from importlib import resources

    from gateway.validation.standard import StandardError, parse_standard

    text = resources.files("gateway.validation").joinpath("standard.yaml").read_text(encoding="utf-8")
    broken = text.replace('ServiceRequest: >-\n        authoredOn.exists()', 'ServiceRequest: >-\n        authoredOn.exists(')
    assert broken != text
    with pytest.raises(StandardError, match="item recorded, invariant.ServiceRequest"):
        parse_standard(broken)

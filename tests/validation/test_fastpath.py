"""The fast FHIRPath evaluator gives fhirpathpy's answer on every rule, on every case and on variants of them.

fhirpathpy is the judge: each rule of the standard (an item's alternatives, an
applicability condition, and every published constraint on the whole Bundle)
is evaluated by both on the standard's cases, the golden outputs, and
variants of their resources with each element or extension taken out in
turn, and on some odd values.
"""

from __future__ import annotations

import copy

import pytest

from gateway.validation.fastpath import EvaluationError, Unsupported, compile_fast
from gateway.validation.rules import is_true, is_true_by_fhirpathpy

from .standard_cases import STANDARD, golden_messages, standard_cases

CASES = list(standard_cases()) + list(golden_messages())
ALTERNATIVES = [a for item in STANDARD.items for a in item.invariant] + [
    a for applicability in STANDARD.applicability.values() for a in applicability.when]
CONSTRAINTS = [STANDARD.constraint(item) for item in STANDARD.items if item.invariant]


def _variants(resource: dict):
    yield resource
    for key in resource:
        if key != "resourceType":
            yield {k: v for k, v in resource.items() if k != key}
    for n in range(len(resource.get("extension") or ())):
        yield {**resource, "extension": [e for i, e in enumerate(resource["extension"]) if i != n]}


def test_every_rule_of_the_standard_compiles_to_the_fast_path():
    assert [e for e in [a.expression for a in ALTERNATIVES] + CONSTRAINTS if compile_fast(e) is None] == []


@pytest.mark.parametrize(("name", "bundle"), CASES, ids=[n for n, _ in CASES])
def test_fast_path_agrees_with_fhirpathpy(name, bundle):
    for constraint in CONSTRAINTS:
        assert is_true(constraint, bundle) == is_true_by_fhirpathpy(constraint, bundle), (name, constraint)
    for entry in bundle["entry"]:
        for variant in _variants(entry["resource"]):
            for alternative in ALTERNATIVES:
                if alternative.resource == variant["resourceType"]:
                    assert is_true(alternative.expression, variant) == \
                        is_true_by_fhirpathpy(alternative.expression, variant), (name, alternative, variant)


@pytest.mark.parametrize("resource", [
    {"resourceType": "ServiceRequest", "extension": [{"url": "u", "valueBoolean": True}, {"url": "u"}]},
    {"resourceType": "ServiceRequest", "note": [{"text": "a"}, {"text": "b"}], "authoredOn": "2019"},
    {"resourceType": "ServiceRequest", "category": [{"coding": [{"system": "s", "code": "x"}, {"code": "y"}]}]},
    {"resourceType": "RelatedPerson", "extension": [{"url": "u", "valueCoding": {"code": "Suspect"}}]},
])
@pytest.mark.parametrize("expression", [
    "extension('u').value.exists()", "extension('u').where(value = true).exists()", "note.count() > 1",
    "note.first().text.startsWith('a')", "category.coding.code in ('x' | 'y')", "category.coding.code = 'x'",
    "authoredOn.matches('^20')", "extension('u').value.code.lower() = 'suspect'", "(note.text = 'a').not()",
    "note.exists() implies authoredOn.exists()", "extension('u').value or note.exists()",
])
def test_fast_path_agrees_on_odd_values(resource, expression):
    assert is_true(expression, resource) == is_true_by_fhirpathpy(expression, resource)


def test_what_the_fast_path_does_not_do_goes_to_fhirpathpy():
    assert compile_fast("name.given.join(' ')") is None
    assert compile_fast("Patient.name.exists()") is not None  # compiles; evaluating it hands over
    with pytest.raises(Unsupported):
        compile_fast("Patient.name.exists()")({"resourceType": "Patient"})
    assert is_true("Patient.name.exists()", {"resourceType": "Patient", "name": [{"text": "A"}]})
    with pytest.raises(Unsupported):
        compile_fast("birthDate.exists()")({"resourceType": "Patient", "_birthDate": {"extension": []}})
    with pytest.raises(EvaluationError):
        compile_fast("name.text.startsWith('A')")({"name": [{"text": "A"}, {"text": "B"}]})


def test_a_changed_copy_is_not_evaluated_from_a_cache():
    bundle = copy.deepcopy(CASES[0][1])
    constraint = CONSTRAINTS[0]
    assert is_true(constraint, bundle)
    bundle["type"] = "collection"
    assert not is_true(constraint, bundle)

"""Every published invariant agrees with `gateway validate` on the standard's cases, the goldens and synthetic data.

The gateway evaluates each item's FHIRPath on the resources of its type; the
published constraint is the same FHIRPath on the whole Bundle. Here each
published constraint is evaluated on the whole Bundle (fhirpathpy) and must
fail exactly for the items the gateway reports, the items decided in Python
(check digits) included.
"""

from __future__ import annotations

import pytest

from gateway.validation import gap_items, validate_bundle
from gateway.validation.rules import on_bundle

from .referral_builders import NOW
from .standard_cases import STANDARD, golden_messages, standard_cases, synth_messages

CASES = list(standard_cases()) + list(golden_messages()) + list(synth_messages(count=100))
INVARIANT_ITEMS = [item for item in STANDARD.items if item.invariant]


def test_the_cases_cover_every_item_and_the_goldens():
    assert {n.split("-removed-")[0] for n, _ in CASES if "-removed-" in n} == {i.id for i in INVARIANT_ITEMS}
    assert sum("/" in n and "/synth/" not in n for n, _ in CASES) >= 13
    assert sum("/synth/" in n for n, _ in CASES) >= 100


@pytest.mark.parametrize(("name", "bundle"), CASES, ids=[n for n, _ in CASES])
def test_published_invariants_agree_with_the_gateway(name, bundle):
    outcome = validate_bundle(bundle, now=NOW, base=False)
    reported = set(gap_items(outcome)) & {i.id for i in INVARIANT_ITEMS}
    failing = {item.id for item in INVARIANT_ITEMS if not on_bundle(STANDARD.constraint(item), bundle)}
    assert failing == reported, f"{name}: invariants fail for {sorted(failing)}, the gateway reports {sorted(reported)}"


def test_where_python_decides_an_unmarked_wrong_identifier_is_the_known_difference():
    from .referral_builders import clone, complete_bundle, first

    bundle = clone(complete_bundle("school"))
    patient = first(bundle, "Patient")
    patient["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000019"}]  # bad check digit
    del patient["name"]
    reported = set(gap_items(validate_bundle(bundle, now=NOW, base=False)))
    assert {"child-identified", "nhs-number", "nhs-number-invalid"} <= reported
    assert on_bundle(STANDARD.constraint(STANDARD.item("child-identified")), bundle)
    patient["identifier"][0]["extension"] = [{"url": "https://fhir.safeguarding-gateway.example/StructureDefinition/"
                                                     "identifier-invalid", "valueString": "check digit"}]
    assert not on_bundle(STANDARD.constraint(STANDARD.item("child-identified")), bundle)

"""issue.expression is R4's simple FHIRPath naming one node; the fuller FHIRPath stays in issue.location."""

from __future__ import annotations

import pytest

from gateway.model import systems as S
from gateway.validation import validate_bundle
from gateway.validation.expressions import simple_expression, split_steps

from .referral_builders import NOW, complete_bundle, index_of, place
from .standard_cases import golden_messages, standard_cases


@pytest.fixture(scope="module")
def police():
    return complete_bundle("police")


def test_steps_split_outside_parentheses_and_quotes():
    assert split_steps("Bundle.entry[2].resource.extension('https://a.example/x.y').where(a.b = 'c.d').value") == (
        "Bundle", "entry[2]", "resource", "extension('https://a.example/x.y')", "where(a.b = 'c.d')", "value")


def test_rich_paths_become_one_existing_node(police):
    sr = index_of(police, "ServiceRequest")
    dash = next(i for i, e in enumerate(police["entry"]) if e["resource"]["resourceType"] == "Observation"
                and e["resource"]["code"]["coding"][0]["code"] == "dash")
    assert simple_expression(police, f"Bundle.entry[{sr}].resource.extension('{S.EXT_OCCURRED}')") == \
        f"Bundle.entry[{sr}].resource.extension[" \
        f"{[e['url'] for e in police['entry'][sr]['resource']['extension']].index(S.EXT_OCCURRED)}]"
    assert simple_expression(police, f"Bundle.entry[{dash}].resource.component.where("
                                      "code.coding.code = 'completed').value") == \
        f"Bundle.entry[{dash}].resource.component[0].value"
    assert simple_expression(police, "Bundle.entry.resource.ofType(ServiceRequest).authoredOn") == \
        f"Bundle.entry[{sr}].resource.authoredOn"


def test_missing_things_name_where_they_go(police):
    sr = index_of(police, "ServiceRequest")
    assert simple_expression(police, f"Bundle.entry[{sr}].resource.extension('https://x.example/none')") == \
        f"Bundle.entry[{sr}].resource"
    assert simple_expression(police, "Bundle.entry.resource.ofType(RelatedPerson).extension('x')") == "Bundle"
    assert simple_expression(police, "Patient.name") == "Bundle"


@pytest.mark.parametrize(("name", "bundle"), list(standard_cases()) + list(golden_messages()))
def test_every_issue_has_a_simple_expression(name, bundle):
    for issue in validate_bundle(bundle, now=NOW)["issue"]:
        if "expression" in issue:
            place(issue)

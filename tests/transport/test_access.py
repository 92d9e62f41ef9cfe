"""The message-kind matrix as data: the docs table is generated from it, and its refusals say why.

``tests/access/test_matrix.py`` walks every cell over mutual TLS.
"""

from __future__ import annotations

import pytest

from gateway.model import systems as S
from gateway.signing.messages import identifies_agency
from gateway.transport.access import (
    DOCS,
    MESSAGE_RULES,
    RESPONSE,
    check_message_kind,
    message_kind,
    render_docs,
    render_matrix,
)
from gateway.transport.intake import Refused

SCHOOL = "urn:x-safeguarding:agency:school:999101"
LA = "urn:x-safeguarding:agency:la:850"


def test_the_docs_table_is_the_one_the_intake_enforces():
    text = DOCS.read_text(encoding="utf-8")
    assert render_docs(text) == text, "docs/access-control.md is out of date: run python -m gateway.transport.access"
    table = render_matrix()
    for rule in MESSAGE_RULES:
        row = next(line for line in table.splitlines() if line.startswith(f"| {rule.label} |"))
        cells = row.split(" | ")[2:2 + len(S.AGENCY_KINDS)]
        assert [kind for kind, cell in zip(S.AGENCY_KINDS, cells) if cell.startswith("yes")] == list(rule.senders)


def _header(event: str | None, **extra) -> dict:
    header = {"resourceType": "MessageHeader", "id": "h", **extra}
    if event is not None:
        header["eventCoding"] = {"system": S.MESSAGE_EVENT, "code": event}
    return header


def test_a_response_is_a_response_whatever_event_it_repeats():
    assert message_kind(_header(S.EVENT_REFERRAL, response={"identifier": "x", "code": "ok"})) == RESPONSE
    assert check_message_kind(_header(S.EVENT_REFERRAL, response={"identifier": "x", "code": "ok"}), LA).kind \
        == RESPONSE


@pytest.mark.parametrize("event, agency, status, words", [
    (None, SCHOOL, 400, "MessageHeader.eventCoding.code"),
    ("made-up-event", SCHOOL, 403, "no agency may send a 'made-up-event' message"),
    (S.EVENT_ENCOMPASS, SCHOOL, 403, "only the gateway builds these"),
    (S.EVENT_OUTCOME, SCHOOL, 403, "only a local authority (children's services) may send one"),
    (S.EVENT_REFERRAL, LA, 403, "only a school or a police force may send one"),
    (S.EVENT_CONCERN, "urn:x-safeguarding:agency:police:TST", 403, "only a school may send one"),
])
def test_a_refusal_names_the_rule(event, agency, status, words):
    with pytest.raises(Refused) as refused:
        check_message_kind(_header(event), agency)
    assert refused.value.status == status and words in refused.value.text, refused.value.text
    assert refused.value.expression == "MessageHeader.eventCoding"


@pytest.mark.parametrize("identifiers, expected", [
    ([{"system": S.SCHOOL_URN, "value": "999101"}], True),
    ({"system": S.SCHOOL_URN, "value": "999101"}, True),  # a Reference's single identifier
    ([{"system": S.SCHOOL_URN, "value": "999101"}, {"system": S.SCHOOL_URN, "value": "999101"}], True),
    ([{"system": S.SCHOOL_URN, "value": "999101"}, {"system": "https://example.org/Id/other", "value": "7"}], True),
    ([{"system": S.SCHOOL_URN, "value": "999101"}, {"system": S.POLICE_FORCE, "value": "TST"}], False),
    # the LA a school belongs to, as concernhub-json exports name it: places the school, claims nothing
    ([{"system": S.SCHOOL_URN, "value": "999101"}, {"system": S.DFE_LA, "value": "850"}], True),
    ([{"system": S.DFE_LA, "value": "850"}], False),
    ([{"system": S.SCHOOL_URN, "value": "999101"}, {"system": S.SCHOOL_URN, "value": "999102"}], False),
    ([{"system": S.POLICE_FORCE, "value": "TST"}], False),
    ([{"system": S.SCHOOL_URN}], False),
    ([], False), (None, False), ("999101", False), (5, False),
])
def test_the_sender_organisation_identifies_exactly_one_agency(identifiers, expected):
    assert identifies_agency({"resourceType": "Organization", "identifier": identifiers}, SCHOOL) is expected


def test_an_la_number_is_the_las_own_identity_for_an_la():
    la = "urn:x-safeguarding:agency:la:850"
    assert identifies_agency({"identifier": [{"system": S.DFE_LA, "value": "850"}]}, la)
    assert not identifies_agency({"identifier": [{"system": S.DFE_LA, "value": "850"},
                                                 {"system": S.SCHOOL_URN, "value": "999101"}]}, la)

"""The person index on both engines: deterministic links, conflicts, people's decisions, undo, re-scoring, joins."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import insert, select

from gateway.linkage.index import PersonIndex, ReviewError, household, open_matches
from gateway.linkage.matching import MatchModel, normalise
from gateway.linkage.models import LinkDecisionRow, PossibleMatchRow
from gateway.store.models import AcceptedMessageRow, MessagePersonRow

NOW = dt.datetime(2019, 6, 7, 9, 30, tzinfo=dt.timezone.utc)
LA = "urn:x-safeguarding:agency:la:850"
_MP = MessagePersonRow.__table__


@pytest.fixture(scope="module")
def model() -> MatchModel:
    return MatchModel.load()


def _add(store, model, *, kind="child", home_la=LA, **fields):
    """Insert one record (as an initial load does) and link it; return (record id, Linked)."""
    record = normalise(**fields)
    with store.transaction() as unit:
        linked = PersonIndex(unit.session.connection(), model).add(
            {"resource": "import", "role": "child" if kind == "child" else "MTH", "source": "test",
             **dataclasses.asdict(record)}, record, kind=kind, now=NOW, home_la=home_la)
    return linked.record_id, linked


def _person(store, record_id):
    with store.engine.connect() as connection:
        return connection.execute(select(_MP.c.person_id).where(_MP.c.id == record_id)).scalar_one()


LEO = dict(given="Leo", family="Parker", birth_date="2015-11-02", sex="M", postcode="SP10 1AA", school_urn="999101")


def test_the_same_valid_upn_links_whatever_else_differs(store, model):
    first, _ = _add(store, model, **LEO, upn="K850210119003")
    second, linked = _add(store, model, given="L", family="Smithson", upn="K850210119003")
    assert linked.decision == "linked" and linked.reason == "same valid UPN"
    assert _person(store, first) == _person(store, second)


def test_two_different_valid_nhs_numbers_are_two_people_whatever_the_names_say(store, model):
    first, _ = _add(store, model, **LEO, nhs_number="9990000018")
    second, linked = _add(store, model, **LEO, nhs_number="9990000026")
    assert linked.decision == "new"
    assert _person(store, first) != _person(store, second)
    with store.engine.connect() as connection:
        assert open_matches(connection) == []


def test_twins_are_never_linked_automatically(store, model):
    ella, _ = _add(store, model, given="Ella", family="Testtwin", birth_date="2014-01-01", sex="F",
                   postcode="SP10 1AA", school_urn="999101")
    emma, linked = _add(store, model, given="Emma", family="Testtwin", birth_date="2014-01-01", sex="F",
                        postcode="SP10 1AA", school_urn="999101")
    assert linked.decision != "linked"
    assert _person(store, ella) != _person(store, emma)


def _possible(store, model):
    """Leo, then a record a person must decide on (a close given name: a twin would look the same)."""
    leo, _ = _add(store, model, **LEO)
    lee, linked = _add(store, model, **dict(LEO, given="Lee"))
    assert linked.decision == "possible" and linked.match_id is not None, linked
    return leo, lee, linked


def test_a_confirmed_match_makes_one_person_and_re_scoring_never_undoes_it(store, model):
    leo, lee, linked = _possible(store, model)
    with store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), model)
        person = index.confirm(linked.match_id, by=f"{LA} (A. Worker)", reason="Same child, a typo", now=NOW)
        with pytest.raises(ReviewError) as again:
            index.confirm(linked.match_id, by=LA, reason="twice", now=NOW)
        assert again.value.status == 409
        assert index.rescore(lee, now=NOW) is None      # a person decided: re-scoring leaves it alone
    assert _person(store, leo) == _person(store, lee) == person
    with store.engine.connect() as connection:
        history = connection.execute(select(LinkDecisionRow).where(LinkDecisionRow.record_id == lee)
                                     .order_by(LinkDecisionRow.id)).all()
    assert [h.decision for h in history] == ["possible", "confirmed"]
    assert history[-1].by_person and history[-1].decided_by == f"{LA} (A. Worker)"
    assert history[0].explanation and "fields" in history[0].explanation


def test_a_rejected_match_is_never_proposed_again(store, model):
    leo, lee, linked = _possible(store, model)
    with store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), model)
        with pytest.raises(ReviewError) as unreasoned:
            index.reject(linked.match_id, by=LA, reason="  ", now=NOW)
        assert unreasoned.value.status == 400
        index.reject(linked.match_id, by=LA, reason="Different children: twins", now=NOW)
        assert index.rescore(lee, now=NOW) is None
    assert _person(store, leo) != _person(store, lee)
    with store.engine.connect() as connection:
        assert open_matches(connection) == []
        statuses = connection.execute(select(PossibleMatchRow.status)).scalars().all()
    assert statuses == ["rejected"]


def test_any_link_can_be_undone_and_is_not_made_again_by_re_scoring(store, model):
    leo, _ = _add(store, model, **LEO, upn="K850210119003")
    again, linked = _add(store, model, **LEO, upn="K850210119003")
    assert linked.decision == "linked"
    with store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), model)
        new_person = index.unlink(again, by=LA, reason="Linked in error", now=NOW)
        assert index.rescore(again, now=NOW) is None
    assert _person(store, again) == new_person != _person(store, leo)


def test_re_scoring_a_record_the_gateway_decided_can_link_it(store, model):
    leo, _ = _add(store, model, **LEO)
    with store.transaction() as unit:  # a record left on its own (as if an older model had not linked it)
        connection = unit.session.connection()
        record = normalise(**LEO)
        record_id = connection.execute(insert(_MP).returning(_MP.c.id), {
            "resource": "import", "role": "child", **dataclasses.asdict(record)}).scalar_one()
        index = PersonIndex(connection, model)
        alone = index.new_person(kind="child", now=NOW)
        connection.execute(_MP.update().where(_MP.c.id == record_id).values(person_id=alone, link_decision="new"))
        outcome = index.rescore(record_id, now=NOW)
    assert outcome is not None and outcome.decision == "linked"
    assert _person(store, record_id) == _person(store, leo)


def test_a_record_that_links_to_two_people_on_its_own_joins_them(store, model):
    police, _ = _add(store, model, **LEO)                                            # no UPN
    sibling, _ = _add(store, model, given="Leo", family="Parker", upn="K850210119003")  # UPN only
    assert _person(store, police) != _person(store, sibling)
    school, linked = _add(store, model, **LEO, upn="K850210119003")                   # both
    assert linked.decision == "linked"
    assert _person(store, police) == _person(store, sibling) == _person(store, school)


def test_people_with_different_identifiers_are_never_joined(store, model):
    one, _ = _add(store, model, **LEO, nhs_number="9990000018")
    other, _ = _add(store, model, given="Leo", family="Parker", upn="K850210119003", nhs_number="9990000026")
    bridge, linked = _add(store, model, **LEO, upn="K850210119003")
    assert _person(store, one) != _person(store, other)
    assert _person(store, bridge) in (_person(store, one), _person(store, other))


def test_the_household_reaches_siblings_through_a_shared_adult(store, model):
    mia, _ = _add(store, model, given="Mia Rose", family="Parker", birth_date="2013-05-14", sex="F",
                  postcode="SP10 1AA")
    leo, _ = _add(store, model, **LEO)
    mother, _ = _add(store, model, kind="adult", home_la=None, given="Emma", family="Parker",
                     birth_date="1989-02-11", sex="F", postcode="SP10 1AA")
    message = "urn:uuid:00000000-0000-4000-8000-0000000000aa"
    children = [_person(store, mia), _person(store, leo)]
    adult = _person(store, mother)
    with store.transaction() as unit:
        connection = unit.session.connection()
        connection.execute(insert(AcceptedMessageRow.__table__), {
            "message_id": message, "sender_agency": "urn:x-safeguarding:agency:police:DOR", "received_at": NOW,
            "payload_sha256": "0" * 64, "raw_message": "{}", "signed_message": "{}", "response_status": 200,
            "response_body": "{}"})
        index = PersonIndex(connection, model)
        for child in children:
            index.relate(child, adult, "MTH", message)
    with store.engine.connect() as connection:
        people = household(connection, _person(store, leo))
    assert people[0] == _person(store, leo)
    assert set(people[1:]) == {_person(store, mia), _person(store, mother)}

"""The synthetic people: deterministic, fictional, and as hard as the generator's docstring says."""

from __future__ import annotations

import collections

import pytest
from stdnum.gb import nhs, upn

from gateway.linkage import synth
from gateway.linkage.matching import features, nickname_groups


@pytest.fixture(scope="module")
def records():
    return synth.generate(6000, seed=41)


def test_the_same_seed_gives_the_same_records(records):
    assert synth.generate(500, seed=41) == synth.generate(500, seed=41)
    assert synth.generate(500, seed=41) != synth.generate(500, seed=42)
    assert len(records) == 6000


def test_identifiers_are_valid_fictional_and_one_per_person(records):
    by_nhs, by_upn = collections.defaultdict(set), collections.defaultdict(set)
    for r in records:
        if r.record.nhs_number:
            assert r.record.nhs_number.startswith("999") and nhs.is_valid(r.record.nhs_number)
            by_nhs[r.record.nhs_number].add(r.person_id)
        if r.record.upn:
            assert upn.is_valid(r.record.upn) and r.record.upn[1:4] in synth.LA_NUMBERS
            by_upn[r.record.upn].add(r.person_id)
        if r.record.school_urn:
            assert r.record.school_urn.startswith("999")
    assert all(len(people) == 1 for people in by_nhs.values())
    assert all(len(people) == 1 for people in by_upn.values())
    assert 0.2 < len(by_nhs) / len({r.person_id for r in records}) < 0.9


def _share(records, test) -> float:
    return sum(1 for r in records if test(r)) / len(records)


def test_the_hard_cases_are_there_in_the_documented_proportions(records):
    people = collections.defaultdict(list)
    for r in records:
        people[r.person_id].append(r)
    truth = {}
    for person_id, recs in people.items():
        truth[person_id] = collections.Counter(r.record.family for r in recs).most_common(1)[0][0]
    twins = {r.twin_key for r in records if r.twin_key}
    assert len(twins) >= 10
    for key in twins:
        members = {r.person_id: r for r in records if r.twin_key == key}
        if len(members) == 2:
            a, b = members.values()
            assert a.family_id == b.family_id and a.person_id != b.person_id
    swapped = _share(records, lambda r: r.record.given and truth[r.person_id] == r.record.given)
    assert 0.005 < swapped < 0.04
    nicknames = _share(
        records,
        lambda r: r.record.given and features(r.record).given_first in nickname_groups()
        and features(r.record).given_first not in nickname_groups()[features(r.record).given_first],
    )
    assert nicknames > 0.01
    surnames = collections.Counter(truth.values())
    assert surnames.most_common(1)[0][1] / len(truth) > 0.03  # a "Smith" covers several per cent
    assert _share(records, lambda r: r.record.birth_date is None) > 0.01
    assert _share(records, lambda r: r.raw["family"] and "-" in r.raw["family"]) > 0.02
    moved = [p for p, recs in people.items() if len({r.record.postcode for r in recs if r.record.postcode}) > 1]
    assert len(moved) / len(people) > 0.03
    accents = _share(records, lambda r: any(ch in (r.raw["given"] or "") + (r.raw["family"] or "") for ch in "ëéóü"))
    assert accents > 0.002


def test_records_are_raw_as_sources_write_them(records):
    raw_dates = [r.raw["birth_date"] for r in records if r.raw["birth_date"]]
    assert any("/" in d for d in raw_dates) and any("-" in d for d in raw_dates)
    assert any(r.raw["nhs_number"] and " " in r.raw["nhs_number"] for r in records)
    assert any(r.raw["given"] and r.raw["given"].isupper() for r in records)


def test_a_count_below_one_is_refused():
    with pytest.raises(ValueError, match="records must be at least 1"):
        synth.generate(0)

"""Measuring the model: pairwise metrics against the truth, and the in-memory index the bench replays."""

from __future__ import annotations

import pytest

from gateway.linkage.evaluate import MemoryIndex, blocking_recall, pair_metrics
from gateway.linkage.matching import MatchModel, normalise
from gateway.linkage.synth import SynthRecord


def _record(n: int, person: str, twin_key: str | None = None, **raw) -> SynthRecord:
    raw = {"given": "Ella", "family": "Marsh", "birth_date": "2016-03-09", "postcode": "SP10 1AA", **raw}
    return SynthRecord(f"R{n}", person, "F1", "school", raw, normalise(**raw), twin_key)


def test_pair_metrics_counts_pairs_and_twins():
    records = [
        _record(0, "a"), _record(1, "a"), _record(2, "a"),          # 3 true pairs
        _record(3, "t1", "twins"), _record(4, "t2", "twins"),       # twins: no true pair
    ]
    # predicted: {0,1} {2} {3,4}: one correct pair, one twin pair linked
    accuracy = pair_metrics(records, ["x", "x", "y", "z", "z"], possible=1)
    assert (accuracy.true_pairs, accuracy.predicted_pairs, accuracy.correct_pairs) == (3, 2, 1)
    assert accuracy.twin_pairs_linked == 1
    assert accuracy.precision == pytest.approx(0.5) and accuracy.recall == pytest.approx(1 / 3)
    assert accuracy.f1 == pytest.approx(0.4)
    assert accuracy.possible_per_1000 == pytest.approx(200.0)


def test_memory_index_links_proposes_and_starts_people():
    index = MemoryIndex(MatchModel.load())
    first, decision = index.link(normalise(given="Ella", family="Marsh", birth_date="2016-03-09", postcode="SP10 1AA"))
    assert decision == "new"
    assert index.link(normalise(given="Ella", family="Marsh", birth_date="2016-03-09", postcode="SP10 1AA")) == (first, "linked")
    # a close twin's name is proposed: the record starts a new person, as in the live index
    twin, decision = index.link(normalise(given="Lila", family="Marsh", birth_date="2016-03-09", postcode="SP10 1AA"))
    assert decision == "possible" and twin != first
    assert len(index.people) == 2 and len(index.people[first]) == 2


def test_memory_index_joins_one_child_split_earlier_as_the_live_index_does():
    index = MemoryIndex(MatchModel.load())
    first, _ = index.link(normalise(given="Alexander", family="Marsh", birth_date="2016-03-09",
                                    postcode="SP10 1AA", school_urn="999101"))
    # a move, a new school, a nickname and the day and month transposed: not linked on its own
    moved, decision = index.link(normalise(given="Alex", family="Marsh", birth_date="2016-09-03",
                                           postcode="SO20 1AB", school_urn="999102"))
    assert decision != "linked" and moved != first
    bridge, decision = index.link(normalise(given="Alexander", family="Marsh", birth_date="2016-03-09",
                                            postcode="SO20 1AB", school_urn="999101"))
    assert decision == "linked" and len(index.people) == 1 and index.joins == 1
    assert index.person_of == [bridge, bridge, bridge]


def test_blocking_recall_counts_true_pairs_that_share_a_key():
    same = [_record(0, "a"), _record(1, "a", given="Ela")]
    apart = [_record(0, "a"), _record(1, "a", given="Oscar", family="Quayle", birth_date="2009-01-01", postcode="RG28 7QQ")]
    assert blocking_recall(same)[0] == 1.0
    assert blocking_recall(apart) == (0.0, 0.0)

"""Measuring the matching model on records with known truth.

:class:`MemoryIndex` links records one at a time exactly as the live index
does (the same :func:`~gateway.linkage.matching.blocking_keys` and
:func:`~gateway.linkage.matching.decide`, with thresholds for the people it
holds at the time; a record decided ``possible``
starts a new person, awaiting a person's review), and :func:`pair_metrics`
scores the resulting clusters pair by pair against the truth. The training
script chooses the thresholds with it and ``bench/linkage.py`` reports it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from gateway.linkage.matching import Candidate, MatchModel, PersonRecord, blocking_keys, decide, tells_apart
from gateway.linkage.synth import SynthRecord


class MemoryIndex:
    """A person index in memory: people, their records, and the blocking keys that find them."""

    def __init__(self, model: MatchModel):
        self.model = model
        self.people: dict[str, list[PersonRecord]] = {}
        self.by_key: dict[str, set[str]] = defaultdict(set)
        self.decisions: Counter[str] = Counter()
        self.joins = 0
        #: The person of each record linked so far, in order (joins move earlier records).
        self.person_of: list[str] = []
        self._numbers: dict[str, list[int]] = defaultdict(list)

    def link(self, record: PersonRecord) -> tuple[str, str]:
        """Return (person id, decision) for ``record``, after filing it: linked, or a new person.

        A record linked to a person and scoring above the link threshold
        against another that nothing tells apart from them joins the two, as
        the live index does (``PersonIndex._file``).
        """
        keys = blocking_keys(record)
        found: dict[str, None] = {}
        for key in keys:
            for person_id in self.by_key.get(key, ()):
                found[person_id] = None
        candidates = [Candidate(p, tuple(self.people[p])) for p in found]
        # The thresholds follow the index's size, as the live index's do (MatchModel.at_size).
        model = self.model.at_size(len(self.people))
        decision = decide(model, record, candidates)
        self.decisions[decision.decision] += 1
        if decision.decision == "linked":
            person_id = decision.person_id
        else:
            person_id = f"P{len(self.people) + self.joins + 1}"
            self.people[person_id] = []
        self.people[person_id].append(record)
        self._numbers[person_id].append(len(self.person_of))
        self.person_of.append(person_id)
        for key in keys:
            self.by_key[key].add(person_id)
        if decision.decision == "linked":
            for other, score in decision.alternatives:
                if (other != person_id and other in self.people and score.rule is None
                        and score.weight >= model.link_threshold
                        and not tells_apart(model, self.people[person_id], self.people[other])):
                    self._join(other, person_id)
        return person_id, decision.decision

    def _join(self, other: str, person_id: str) -> None:
        moved = self.people.pop(other)
        self.people[person_id].extend(moved)
        for record in moved:
            for key in blocking_keys(record):
                self.by_key[key].discard(other)
                self.by_key[key].add(person_id)
        for number in self._numbers.pop(other):
            self.person_of[number] = person_id
            self._numbers[person_id].append(number)
        self.joins += 1


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """Pairwise accuracy of a clustering against the truth."""

    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    twin_pairs_linked: int
    possible: int
    records: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def possible_per_1000(self) -> float:
        return 1000 * self.possible / self.records if self.records else 0.0


def _pairs_within(groups: Iterable[Sequence[int]]) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for members in groups:
        pairs.update(itertools.combinations(sorted(members), 2))
    return pairs


def pair_metrics(records: Sequence[SynthRecord], cluster_of: Sequence[str], possible: int = 0) -> Accuracy:
    """Return the pairwise accuracy of ``cluster_of`` (a cluster id per record, in order) against the truth.

    A predicted pair is two records in one cluster; a true pair two records of
    one person; a twin pair linked is a predicted pair of records about two
    twins.
    """
    truth: dict[str, list[int]] = defaultdict(list)
    predicted: dict[str, list[int]] = defaultdict(list)
    for i, (record, cluster) in enumerate(zip(records, cluster_of, strict=True)):
        truth[record.person_id].append(i)
        predicted[cluster].append(i)
    true_pairs = _pairs_within(truth.values())
    predicted_pairs = _pairs_within(predicted.values())
    twins = sum(
        1
        for a, b in predicted_pairs
        if records[a].twin_key and records[a].twin_key == records[b].twin_key and records[a].person_id != records[b].person_id
    )
    return Accuracy(
        true_pairs=len(true_pairs),
        predicted_pairs=len(predicted_pairs),
        correct_pairs=len(true_pairs & predicted_pairs),
        twin_pairs_linked=twins,
        possible=possible,
        records=len(records),
    )


def run_index(model: MatchModel, records: Sequence[SynthRecord]) -> tuple[Accuracy, MemoryIndex]:
    """Return the accuracy of linking ``records`` one at a time through a :class:`MemoryIndex`, and the index."""
    index = MemoryIndex(model)
    for r in records:
        index.link(r.record)
    return pair_metrics(records, index.person_of, index.decisions["possible"]), index


def blocking_recall(records: Sequence[SynthRecord]) -> tuple[float, float]:
    """Return (share of true pairs sharing a blocking key, mean candidates per key look-up).

    The second figure is the mean, over records, of how many other records
    share at least one key with it: the comparisons a look-up costs here.
    """
    by_key: dict[str, list[int]] = defaultdict(list)
    keys_of = [blocking_keys(r.record) for r in records]
    for i, keys in enumerate(keys_of):
        for key in keys:
            by_key[key].append(i)
    truth: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        truth[r.person_id].append(i)
    true_pairs = _pairs_within(truth.values())
    shared = sum(1 for a, b in true_pairs if not set(keys_of[a]).isdisjoint(keys_of[b]))
    neighbours = 0
    for keys in keys_of:
        seen: set[int] = set()
        for key in keys:
            seen.update(by_key[key])
        neighbours += max(len(seen) - 1, 0)
    return (shared / len(true_pairs) if true_pairs else 1.0), neighbours / max(len(records), 1)

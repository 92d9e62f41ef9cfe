"""Benchmark of person linkage: accuracy against the truth, beside Splink on the same records.

Run: ``.venv/bin/python bench/linkage.py [--part accuracy|all] [--records 20000] [--seed 11]``

Accuracy (``--part accuracy``): a generated set with known truth
(:mod:`gateway.linkage.synth`: typos, nicknames, moves, twins, common names;
a seed other than training's) is linked one record at a time through an
in-memory index using the gateway's blocking keys and ``decide`` (a record
decided "possible" starts a new person and counts as a possible match, a
record that links to two people nothing tells apart joins them, and the
thresholds are those of the index's size at the time), as the live index
does. Printed: pairwise precision and recall of the
automatic links, twin pairs linked, possible matches per 1,000 records,
blocking recall, and CPU seconds. Beside it, in the same run on the same
records, Splink (dedupe, DuckDB) with the same trained model and the same
candidate pairs (an exploding blocking rule on the gateway's keys), clustered
with ``cluster_pairwise_predictions_at_threshold`` at each match weight of a
grid: its best F1, and its best recall with precision >= 0.99. Splink has
the same term-frequency adjustments (exact given and family names), with
the frequencies it computes from these records, as it would by default.

Goal: precision >= 0.99 at recall >= 0.95, no twins linked, at most 50
possible matches per 1,000 records, and ahead of Splink.

Each part is a function in ``PARTS``; the speed and chronology parts are
added beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence

from gateway.linkage.evaluate import Accuracy, blocking_recall, pair_metrics, run_index
from gateway.linkage.matching import MatchModel
from gateway.linkage.synth import SynthRecord, generate

GOAL_PRECISION, GOAL_RECALL, GOAL_POSSIBLE_PER_1000 = 0.99, 0.95, 50.0
SPLINK_THRESHOLDS = tuple(float(w) for w in range(-6, 25))   # match weights tried for Splink's clusters


def _row(name: str, acc: Accuracy, cpu: float | None, note: str = "") -> str:
    cpu_text = f"{cpu:8.1f}" if cpu is not None else f"{'-':>8}"
    return (
        f"{name:<34} {acc.precision:9.4f} {acc.recall:7.4f} {acc.f1:7.4f} {acc.twin_pairs_linked:6d}"
        f" {acc.possible_per_1000:9.1f} {cpu_text}  {note}"
    )


def splink_sweep(records: Sequence[SynthRecord]) -> tuple[list[tuple[float, Accuracy]], float, float, int]:
    """Return Splink's accuracy at each threshold of the grid, the CPU seconds of predict and of one
    clustering, and how many pairs predict scored."""
    from splink import DuckDBAPI, Linker

    from gateway.linkage.train import SPLINK_MODEL_PATH, splink_rows, splink_table

    settings = json.loads(SPLINK_MODEL_PATH.read_text())
    cpu = time.process_time()
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(splink_table(splink_rows(records))), settings, log_level=logging.WARNING)
    predictions = linker.inference.predict(threshold_match_weight=min(SPLINK_THRESHOLDS))
    predict_cpu = time.process_time() - cpu
    scored = len(predictions.as_record_list())
    results = []
    cluster_cpu = 0.0
    for threshold in SPLINK_THRESHOLDS:
        cpu = time.process_time()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_weight=threshold
        ).as_record_list()
        cluster_cpu = time.process_time() - cpu
        cluster_of = {row["unique_id"]: f"c{row['cluster_id']}" for row in clusters}
        results.append((threshold, pair_metrics(records, [cluster_of.get(i, f"s{i}") for i in range(len(records))])))
    return results, predict_cpu, cluster_cpu, scored


def compare_cpu(model: MatchModel, records: Sequence[SynthRecord], pairs: int = 50_000) -> float:
    """Return CPU seconds per call of ``model.compare`` over ``pairs`` pairs of generated records."""
    plain = [r.record for r in records]
    cpu = time.process_time()
    for i in range(pairs):
        model.compare(plain[i % len(plain)], plain[(i * 7 + 1) % len(plain)])
    return (time.process_time() - cpu) / pairs


def accuracy_part(args: argparse.Namespace) -> bool:
    """Print the accuracy table; return True when every goal is met."""
    model = MatchModel.load()
    records = generate(args.records, seed=args.seed)
    people = len({r.person_id for r in records})
    twins = len({r.twin_key for r in records if r.twin_key})
    print(f"## Accuracy: {len(records):,} records about {people:,} fictional people ({twins} sets of twins), seed {args.seed}")
    cpu = time.process_time()
    key_recall, neighbours = blocking_recall(records)
    key_cpu = time.process_time() - cpu
    print(
        f"blocking recall (true pairs sharing a key): {key_recall:.4f};"
        f" mean records sharing a key with a record: {neighbours:.1f} ({key_cpu:.1f} CPU s)"
    )
    cpu = time.process_time()
    ours, index = run_index(model, records)
    our_cpu = time.process_time() - cpu
    sweep, predict_cpu, cluster_cpu, scored = splink_sweep(records)
    per_compare = compare_cpu(model, records)
    best_f1 = max(sweep, key=lambda item: (item[1].f1, item[0]))
    precise = [item for item in sweep if item[1].precision >= GOAL_PRECISION]
    best_precise = max(precise, key=lambda item: (item[1].recall, item[0])) if precise else None
    no_twins = [item for item in precise if item[1].twin_pairs_linked == 0]

    print()
    print(f"{'':<34} {'precision':>9} {'recall':>7} {'F1':>7} {'twins':>6} {'poss/1000':>9} {'CPU s':>8}")
    print(
        _row(
            f"gateway (link >= {model.link_threshold:g}, at {model.reference_people or 0:,}+)",
            ours,
            our_cpu,
            f"{our_cpu / len(records) * 1e3:.3f} ms CPU a record; decisions {dict(index.decisions)}",
        )
    )
    print(_row(f"Splink best F1 (weight >= {best_f1[0]:g})", best_f1[1], predict_cpu + cluster_cpu, "predict + one clustering"))
    if best_precise:
        print(_row(f"Splink precision >= 0.99 (>= {best_precise[0]:g})", best_precise[1], None))
    else:
        print(f"Splink reaches precision {GOAL_PRECISION} at no threshold of {SPLINK_THRESHOLDS[0]:g}..{SPLINK_THRESHOLDS[-1]:g}")
    if no_twins:
        best = max(no_twins, key=lambda item: (item[1].recall, item[0]))
        print(_row(f"Splink, precision >= 0.99, no twins (>= {best[0]:g})", best[1], None))
    else:
        print(f"Splink links twins at every threshold with precision >= {GOAL_PRECISION}"
              f" ({min((i[1].twin_pairs_linked for i in precise), default=0)} twin pairs at the fewest)")
    print(f"(Splink CPU: predict {predict_cpu:.1f} s, one clustering {cluster_cpu:.1f} s; gateway: one record at a time)")
    print(
        f"CPU per scored pair: gateway compare() {per_compare * 1e6:.1f} us (pure Python, one pair at a time);"
        f" Splink predict {predict_cpu / max(scored, 1) * 1e6:.1f} us ({scored:,} pairs in one DuckDB batch)"
    )

    splink_recall = best_precise[1].recall if best_precise else 0.0
    splink_twins = min(best_f1[1].twin_pairs_linked, best_precise[1].twin_pairs_linked if best_precise else 10**9)
    goals = {
        f"precision >= {GOAL_PRECISION}": ours.precision >= GOAL_PRECISION,
        f"recall >= {GOAL_RECALL}": ours.recall >= GOAL_RECALL,
        "no twins linked": ours.twin_pairs_linked == 0,
        f"possible <= {GOAL_POSSIBLE_PER_1000:g} per 1,000": ours.possible_per_1000 <= GOAL_POSSIBLE_PER_1000,
        f"ahead of Splink on twins ({ours.twin_pairs_linked} vs {splink_twins} twin pairs linked)": (
            ours.twin_pairs_linked < splink_twins
        ),
        f"ahead of Splink on recall at precision >= 0.99 ({ours.recall:.4f} vs {splink_recall:.4f})": (
            ours.precision >= GOAL_PRECISION and ours.recall > splink_recall
        ),
        f"ahead of Splink on F1 ({ours.f1:.4f} vs its best {best_f1[1].f1:.4f})": ours.f1 > best_f1[1].f1,
    }
    print()
    for goal, met in goals.items():
        print(f"  {'met   ' if met else 'MISSED'} {goal}")
    return all(goals.values())


PARTS: dict[str, Callable[[argparse.Namespace], bool]] = {"accuracy": accuracy_part}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--records", type=int, default=20_000, help="generated records (accuracy)")
    parser.add_argument("--seed", type=int, default=11, help="generator seed (training uses 2024)")
    args = parser.parse_args(argv)
    ok = True
    for name, part in PARTS.items():
        if args.part in (name, "all"):
            ok = part(args) and ok
            print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

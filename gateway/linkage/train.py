"""Training the matching model with Splink, unsupervised, and shipping its weights as data.

Run: ``python -m gateway.linkage.train [--records N] [--seed S] [-o PATH]``
(``--table`` prints the weights of the model file as Markdown, for docs/linkage.md;
``--thresholds-only`` chooses the thresholds of a model file again, keeping its weights.)

1. Generate ``N`` fictional records (:mod:`gateway.linkage.synth`) and derive
   the comparison features of each (:func:`~gateway.linkage.matching.features`).
2. Give Splink (DuckDB backend) one comparison per field whose levels are
   exactly :data:`~gateway.linkage.matching.COMPARISONS`: the same labels, in
   the same order, with the SQL condition written beside each Python test.
3. Estimate, without ever looking at the truth:
   - the prior (``probability_two_random_records_match``) from the pairs that
     share a valid NHS number or UPN, scaled by the share of true pairs such
     identifiers can find, itself estimated from how often each identifier is
     present (``1 - (1 - p_nhs^2)(1 - p_upn^2)``);
   - u by random sampling of record pairs;
   - m by expectation maximisation, in two sessions: pairs blocked on the
     birth date (trains every field but the birth date) and pairs blocked on
     the NHS number (trains the birth date, and the rest again).
4. Fill any level Splink saw no pair for (u of a level too rare among random
   pairs: given and family swapped, same NHS number) with half an observation
   of the sample, so that every weight is finite, and write Splink's own
   model (``splink-model.json``, loaded by the tests and the benchmark) and
   the gateway's (``match-model.json``: each level's label, m, u and weight,
   the prior, the thresholds and how they were chosen, the training settings).
5. Choose the thresholds on the training records, with their truth (the only
   supervised step): replay them one at a time through the in-memory index
   (:func:`gateway.linkage.evaluate.run_index`) for a grid of link and
   possible thresholds and keep the pair with the highest recall of
   automatic links whose precision is at least :data:`TARGET_PRECISION`, with
   no twins linked and at most :data:`TARGET_POSSIBLE_PER_1000` possible
   matches per 1,000 records.
6. Write them with the number of people the training records are about
   (``reference_people``): they are the thresholds of an index that size.
   The live index raises them as it grows (``MatchModel.at_size``, from the
   people it holds at scoring time): thresholds chosen among a few thousand
   people would link far too readily among a million, where a block holds
   many more people who are not the one looked for (measured: at 1,000,000
   generated children the training's thresholds linked 34 of 300 children
   the index did not hold to someone; at 200,000, 5 of 95). The
   Fellegi-Sunter prior odds that a candidate is the person fall in
   proportion to the people of the index, so the link threshold rises by
   log2(people / reference_people), and the possible threshold by half that.
7. Term frequencies: an exact given name (its first name) or family name
   is adjusted by how common the value is, as Splink does
   (``tf_adjustment_column`` on those levels); the frequencies of the
   training records, from Splink's ``compute_tf_table``, ship in the model
   file (values seen at least :data:`TF_MIN_COUNT` times).

Splink is imported here and in the tests and benchmark only; the live gateway
reads the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.linkage.evaluate import run_index
from gateway.linkage.matching import COMPARISONS, DATA, MODEL_PATH, MatchModel, features, blocking_keys
from gateway.linkage.synth import SynthRecord, generate

SPLINK_MODEL_PATH = DATA / "splink-model.json"
DEFAULT_RECORDS = 20_000
DEFAULT_SEED = 2024
U_MAX_PAIRS = 5e6
#: The features whose term frequencies adjust a level (matching.Level.tf_column), and the fewest times a value
#: is seen in training for the model file to keep its frequency (a one-off is a typo more often than a name).
TF_COLUMNS = tuple(dict.fromkeys(level.tf_column for c in COMPARISONS for level in c.levels if level.tf_column))
TF_MIN_COUNT = 2
#: Threshold choice on training data: margins inside the goals (precision 0.99, 50 possible per 1,000).
TARGET_PRECISION = 0.995
TARGET_POSSIBLE_PER_1000 = 40.0
LINK_GRID = tuple(float(x) for x in range(0, 21))     # 0 .. 20 step 1
POSSIBLE_GAPS = (2.0, 4.0, 6.0, 8.0)
#: Recall is compared to this many decimal places: below that, fewer records for a person to review wins.
RECALL_DECIMALS = 3

log = logging.getLogger(__name__)


def splink_rows(records: Sequence[SynthRecord]) -> list[dict]:
    """Return Splink's input rows: a unique id, the features and the blocking keys of each record."""
    rows = []
    for i, r in enumerate(records):
        row = features(r.record).as_row()
        row["unique_id"] = i
        row["blocking_keys"] = blocking_keys(r.record)
        rows.append(row)
    return rows


def splink_table(rows: list[dict]):
    """Return the rows as a pyarrow table with explicit types (lists of strings stay lists when empty)."""
    import pyarrow as pa

    columns = {"unique_id": pa.int64()}
    for name, value in rows[0].items():
        if name != "unique_id":
            columns[name] = (
                pa.list_(pa.string()) if isinstance(value, list) else pa.bool_() if isinstance(value, bool) else pa.string()
            )
    return pa.Table.from_pylist(rows, schema=pa.schema(list(columns.items())))


def splink_comparisons():
    """Return Splink comparisons mirroring :data:`COMPARISONS` level for level."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    out = []
    for comparison in COMPARISONS:
        levels = []
        for i, level in enumerate(comparison.levels):
            if i == 0:
                levels.append(cll.CustomLevel(level.sql, label_for_charts=level.label).configure(is_null_level=True))
            elif level.sql is None:
                levels.append(cll.ElseLevel().configure(label_for_charts=level.label))
            elif level.tf_column:
                # The level's own u is the base of the adjustment (its condition is on the whole given name,
                # the frequency on the first one, so Splink's search for an exact-match level is turned off).
                levels.append(cll.CustomLevel(level.sql, label_for_charts=level.label).configure(
                    tf_adjustment_column=level.tf_column, disable_tf_exact_match_detection=True))
            else:
                levels.append(cll.CustomLevel(level.sql, label_for_charts=level.label))
        out.append(
            cl.CustomComparison(
                levels, output_column_name=comparison.field, comparison_description=comparison.description
            )
        )
    return out


def splink_settings(prediction_rules: str = "keys"):
    """Return Splink settings for deduplication with :func:`splink_comparisons`.

    ``prediction_rules="keys"`` blocks predictions on the gateway's own
    blocking keys (an exploding rule on the ``blocking_keys`` list), so that
    Splink and the gateway compare the same candidate pairs.
    """
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=splink_comparisons(),
        blocking_rules_to_generate_predictions=[block_on("blocking_keys", arrays_to_explode=["blocking_keys"])],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def register_frequencies(db_api, linker, frequencies: dict) -> None:
    """Give ``linker`` the model file's term frequencies (instead of its own from its input records)."""
    import pyarrow as pa

    for column, table in frequencies.items():
        rows = pa.Table.from_pylist([{column: value, f"tf_{column}": tf} for value, tf in table.items()],
                                    schema=pa.schema([(column, pa.string()), (f"tf_{column}", pa.float64())]))
        linker.table_management.register_term_frequency_lookup(
            db_api.register(rows, dataset_display_name=f"tf_{column}_lookup"), column)


def _identifier_recall(rows: list[dict]) -> float:
    p_nhs = sum(1 for r in rows if r["nhs_number"]) / len(rows)
    p_upn = sum(1 for r in rows if r["upn"]) / len(rows)
    return 1 - (1 - p_nhs**2) * (1 - p_upn**2)


def train_splink(records: Sequence[SynthRecord], *, seed: int) -> tuple[dict, dict, dict]:
    """Return (Splink's trained model as a dict, training notes, term frequencies), estimated without the truth."""
    from splink import DuckDBAPI, Linker, block_on

    rows = splink_rows(records)
    db_api = DuckDBAPI()
    table = db_api.register(splink_table(rows), dataset_display_name="training")
    linker = Linker(table, splink_settings(), log_level=logging.WARNING)
    recall = _identifier_recall(rows)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number"), block_on("upn")], recall=recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("nhs_number"))
    model = linker.misc.save_model_to_json()
    filled = _fill_unobserved(model)
    frequencies = {}
    for column in TF_COLUMNS:
        # Splink's own table of the training records: each value's share of the records that have one.
        present = sum(1 for row in rows if row[column] is not None)
        table = linker.table_management.compute_tf_table(column).as_record_list()
        frequencies[column] = {row[column]: row[f"tf_{column}"] for row in sorted(table, key=lambda r: r[column])
                               if row[column] is not None and row[f"tf_{column}"] * present >= TF_MIN_COUNT - 0.5}
    notes = {
        "records": len(records),
        "seed": seed,
        "prior": "probability_two_random_records_match from pairs sharing an NHS number or UPN,"
        f" recall of those rules estimated from identifier presence as {recall:.4f}",
        "u": f"estimate_u_using_random_sampling(max_pairs={U_MAX_PAIRS:g}, seed={seed})",
        "m": "expectation maximisation, sessions blocked on birth_date, then on nhs_number",
        "filled": filled,
    }
    notes["term_frequencies"] = (f"Splink's compute_tf_table on the training records, values seen at least"
                                 f" {TF_MIN_COUNT} times ({', '.join(TF_COLUMNS)})")
    return model, notes, frequencies


def _fill_unobserved(model: dict) -> list[str]:
    """Give a level with no estimate a floor value, so its weight is finite; return what was filled.

    u: half an observation among the sampled pairs (1 / (2 x max_pairs));
    m: half an observation among the pairs the EM sessions saw for it is
    not known to Splink, so 1e-6 (the level then weighs against a match).
    """
    filled = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            if level.get("u_probability") in (None, 0):
                level["u_probability"] = 1 / (2 * U_MAX_PAIRS)
                filled.append(f"{comparison['output_column_name']}: {level['label_for_charts']}: u")
            if level.get("m_probability") in (None, 0):
                level["m_probability"] = 1e-6
                filled.append(f"{comparison['output_column_name']}: {level['label_for_charts']}: m")
    return filled


def gateway_model(splink_model: dict, notes: dict, thresholds: dict, frequencies: dict) -> dict:
    """Return the gateway's model file contents from Splink's trained model."""
    import splink

    by_field = {c["output_column_name"]: c for c in splink_model["comparisons"]}
    lam = splink_model["probability_two_random_records_match"]
    comparisons = []
    for comparison in COMPARISONS:
        levels = []
        for level, trained in zip(comparison.levels, by_field[comparison.field]["comparison_levels"], strict=True):
            if trained["label_for_charts"] != level.label:
                raise ValueError(f"Splink's level {trained['label_for_charts']!r} is not {level.label!r}")
            if trained.get("is_null_level"):
                levels.append({"label": level.label, "m": None, "u": None, "weight": 0.0})
                continue
            m, u = trained["m_probability"], trained["u_probability"]
            levels.append({"label": level.label, "m": m, "u": u, "weight": math.log2(m / u)})
        comparisons.append({"field": comparison.field, "description": comparison.description, "levels": levels})
    return {
        "description": "Person-matching weights (Fellegi-Sunter, log2 m/u) trained by gateway.linkage.train",
        "splink_version": splink.__version__,
        "prior": {"probability_two_random_records_match": lam, "weight": math.log2(lam / (1 - lam))},
        "thresholds": thresholds,
        "comparisons": comparisons,
        "term_frequencies": frequencies,
        "training": notes,
    }


def _better(accuracy, than) -> bool:
    """Higher recall, to :data:`RECALL_DECIMALS` places; then fewer possible matches (a person's time)."""
    ours, theirs = round(accuracy.recall, RECALL_DECIMALS), round(than.recall, RECALL_DECIMALS)
    return ours > theirs or (ours == theirs and accuracy.possible_per_1000 < than.possible_per_1000)


def choose_thresholds(model_data: dict, records: Sequence[SynthRecord]) -> dict:
    """Return the link and possible thresholds chosen on ``records`` (see the module docstring).

    They are the thresholds of an index of as many people as the records
    are about (``reference_people``); the live index raises them as it
    grows beyond (:meth:`~gateway.linkage.matching.MatchModel.at_size`).
    """
    people = len({r.person_id for r in records})
    best = None
    tried = 0
    for link in LINK_GRID:
        for gap in POSSIBLE_GAPS:
            data = dict(model_data, thresholds={"link": link, "possible": link - gap, "reference_people": people})
            accuracy, _ = run_index(MatchModel(data), records)
            tried += 1
            ok = (
                accuracy.precision >= TARGET_PRECISION
                and accuracy.twin_pairs_linked == 0
                and accuracy.possible_per_1000 <= TARGET_POSSIBLE_PER_1000
            )
            if ok and (best is None or _better(accuracy, best[0])):
                best = (accuracy, link, link - gap)
            if accuracy.possible_per_1000 > TARGET_POSSIBLE_PER_1000:
                break  # wider gaps only propose more
    if best is None:
        raise SystemExit(
            f"no thresholds in the grid reach precision {TARGET_PRECISION} with no twins linked and"
            f" at most {TARGET_POSSIBLE_PER_1000} possible per 1,000: revisit the comparison levels"
        )
    accuracy, link, possible = best
    return {
        "link": link,
        "possible": possible,
        "reference_people": people,
        "chosen_by": (
            f"gateway.linkage.train on its {len(records)} training records: of {tried} (link, possible) pairs"
            f" (link {LINK_GRID[0]:g}..{LINK_GRID[-1]:g} step 1, possible = link - {POSSIBLE_GAPS}), the highest"
            f" recall of automatic links (to {RECALL_DECIMALS} places, then the fewest possible) with precision >= {TARGET_PRECISION}, no twins linked and at most"
            f" {TARGET_POSSIBLE_PER_1000} possible per 1,000 records, replaying the records one at a time"
            " through the in-memory index"
        ),
        "training_accuracy": {
            "precision": round(accuracy.precision, 5),
            "recall": round(accuracy.recall, 5),
            "twin_pairs_linked": accuracy.twin_pairs_linked,
            "possible_per_1000": round(accuracy.possible_per_1000, 2),
        },
    }


def weights_table(data: dict) -> str:
    """Return the model's levels as a Markdown table: field, level, m, u, weight (docs/linkage.md quotes it)."""
    lines = ["| field | level | m | u | weight |", "|---|---|---:|---:|---:|"]
    for comparison in data["comparisons"]:
        for level in comparison["levels"]:
            m = "" if level["m"] is None else f"{level['m']:.4g}"
            u = "" if level["u"] is None else f"{level['u']:.4g}"
            lines.append(f"| {comparison['description']} | {level['label']} | {m} | {u} | {level['weight']:+.2f} |")
    prior = data["prior"]
    lines.append(
        f"| prior | two records picked at random | | {prior['probability_two_random_records_match']:.4g}"
        f" | {prior['weight']:+.2f} |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.linkage.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="training records to generate")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the generator and of u sampling")
    parser.add_argument("-o", "--output", type=Path, default=MODEL_PATH, help="the gateway's model file to write")
    parser.add_argument(
        "--splink-output", type=Path, default=None, help="Splink's model file (default: splink-model.json beside -o)"
    )
    parser.add_argument(
        "--table", action="store_true", help="print the weights of the model file -o as Markdown, and train nothing"
    )
    parser.add_argument(
        "--thresholds-only", action="store_true",
        help="choose the thresholds of the model file -o again (its training records), keeping its weights",
    )
    args = parser.parse_args(argv)
    if args.table:
        print(weights_table(json.loads(args.output.read_text(encoding="utf-8"))))
        return 0
    if args.thresholds_only:
        data = json.loads(args.output.read_text(encoding="utf-8"))
        training = data["training"]
        data["thresholds"] = choose_thresholds(data, generate(training["records"], seed=training["seed"]))
        args.output.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"{args.output}: link {data['thresholds']['link']}, possible {data['thresholds']['possible']}"
              f" among {data['thresholds']['reference_people']:,} people, on training data"
              f" {data['thresholds']['training_accuracy']}")
        return 0
    if args.records < 100:
        parser.error(f"--records must be at least 100 (got {args.records})")
    splink_output = args.splink_output or args.output.with_name(SPLINK_MODEL_PATH.name)
    started = time.process_time()
    records = generate(args.records, seed=args.seed)
    splink_model, notes, frequencies = train_splink(records, seed=args.seed)
    notes["cpu_seconds_splink"] = round(time.process_time() - started, 1)
    provisional = gateway_model(splink_model, notes, {"link": 0.0, "possible": 0.0}, frequencies)
    thresholds = choose_thresholds(provisional, records)
    data = gateway_model(splink_model, notes, thresholds, frequencies)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    splink_output.write_text(json.dumps(splink_model, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output} and {splink_output}: prior {data['prior']['weight']:.2f},"
        f" link {thresholds['link']}, possible {thresholds['possible']} among {thresholds['reference_people']:,}"
        f" people (rising with the index's size), on training data"
        f" {thresholds['training_accuracy']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training: Splink estimates the weights without the truth, and the gateway's model file follows from Splink's."""

from __future__ import annotations

import json
import math

import pytest

from gateway.linkage import train
from gateway.linkage.matching import COMPARISONS, MODEL_PATH, MatchModel


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "match-model.json"
    assert train.main(["--records", "3000", "--seed", "5", "-o", str(out)]) == 0
    return out


def test_training_writes_both_models_and_the_live_model_loads(trained):
    model = MatchModel.load(trained)
    data = json.loads(trained.read_text())
    splink_model = json.loads(trained.with_name("splink-model.json").read_text())
    assert data["splink_version"] and data["training"]["records"] == 3000
    assert model.possible_threshold < model.link_threshold
    accuracy = data["thresholds"]["training_accuracy"]
    assert accuracy["precision"] >= train.TARGET_PRECISION and accuracy["twin_pairs_linked"] == 0
    assert accuracy["possible_per_1000"] <= train.TARGET_POSSIBLE_PER_1000
    by_field = {c["output_column_name"]: c for c in splink_model["comparisons"]}
    for comparison in COMPARISONS:
        levels = by_field[comparison.field]["comparison_levels"]
        assert [level["label_for_charts"] for level in levels] == [level.label for level in comparison.levels]
        weights = model.level_weights(comparison.field)
        for level in levels[1:]:
            expected = math.log2(level["m_probability"] / level["u_probability"])
            assert weights[level["label_for_charts"]] == pytest.approx(expected)


def test_training_does_not_read_the_truth():
    """Splink sees features and blocking keys only: no person, family or twin ids."""
    from gateway.linkage.synth import generate

    rows = train.splink_rows(generate(50, seed=1))
    assert not {"person_id", "family_id", "twin_key"} & set(rows[0])


def test_unobserved_levels_get_a_finite_floor():
    model = {
        "comparisons": [
            {
                "output_column_name": "given",
                "comparison_levels": [
                    {"is_null_level": True, "label_for_charts": "missing"},
                    {"label_for_charts": "exact", "m_probability": 0.9, "u_probability": None},
                    {"label_for_charts": "different", "m_probability": None, "u_probability": 0.99},
                ],
            }
        ]
    }
    assert train._fill_unobserved(model) == ["given: exact: u", "given: different: m"]
    exact, different = model["comparisons"][0]["comparison_levels"][1:]
    assert exact["u_probability"] == 1 / (2 * train.U_MAX_PAIRS) and different["m_probability"] == 1e-6


def test_a_tiny_training_set_is_refused(capsys):
    with pytest.raises(SystemExit):
        train.main(["--records", "10"])
    assert "--records must be at least 100" in capsys.readouterr().err


def test_the_weights_table_in_the_docs_is_the_shipped_models():
    from pathlib import Path

    from gateway.linkage.matching import MODEL_PATH

    doc = (Path(__file__).parents[2] / "docs" / "linkage.md").read_text(encoding="utf-8")
    start = doc.index("<!-- weights: python -m gateway.linkage.train --table -->") + len(
        "<!-- weights: python -m gateway.linkage.train --table -->"
    )
    table = doc[start : doc.index("<!-- end weights -->")].strip()
    assert table == train.weights_table(json.loads(MODEL_PATH.read_text())), "paste `train --table` into docs/linkage.md"


def test_the_thresholds_are_chosen_for_the_training_people_and_follow_the_index(trained):
    """The thresholds are those of an index of the training's people; the live index raises them as it grows."""
    from gateway.linkage.synth import generate

    data = json.loads(trained.read_text())
    people = len({r.person_id for r in generate(3000, seed=5)})
    assert data["thresholds"]["reference_people"] == people
    model = MatchModel.load(trained)
    assert model.at_size(people * 4).link_threshold == pytest.approx(model.link_threshold + 2)


def test_term_frequencies_come_from_the_training_records(trained):
    from gateway.linkage.matching import features
    from gateway.linkage.synth import generate

    data = json.loads(trained.read_text())
    assert set(data["term_frequencies"]) == set(train.TF_COLUMNS) == {"given_first", "family"}
    values = [features(r.record).family for r in generate(3000, seed=5)]
    present = [v for v in values if v is not None]
    for name, tf in data["term_frequencies"]["family"].items():
        assert tf == pytest.approx(present.count(name) / len(present))
        assert present.count(name) >= train.TF_MIN_COUNT
    assert {v for v in present if present.count(v) >= train.TF_MIN_COUNT} == set(data["term_frequencies"]["family"])


def test_splink_adjusts_the_exact_name_levels_for_term_frequency():
    comparisons = {c.get_comparison("duckdb").output_column_name: c.get_comparison("duckdb")
                   for c in train.splink_comparisons()}
    adjusted = {(name, level.label_for_charts, level._tf_adjustment_column)
                for name, comparison in comparisons.items() for level in comparison.comparison_levels
                if level._tf_adjustment_column}
    assert adjusted == {("given", "exact", "given_first"), ("family", "exact", "family")}


def test_the_shipped_model_follows_the_index_size():
    data = json.loads(MODEL_PATH.read_text())
    assert data["thresholds"]["reference_people"] > 1000
    assert data["term_frequencies"]["family"] and data["term_frequencies"]["given_first"]

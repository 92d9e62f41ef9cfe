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


def test_thresholds_are_scaled_to_the_index_the_gateway_serves():
    chosen = {"link": 1.0, "possible": -1.0, "chosen_by": "grid"}
    scaled = train.scale_thresholds(chosen, training_people=8_000, index_size=1_000_000)
    shift = round(math.log2(1_000_000 / 8_000), 1)
    assert (scaled["link"], scaled["possible"]) == (1.0 + shift, -1.0 + shift - train.REVIEW_WIDENING)
    assert scaled["scaled_for"]["chosen_on_training"] == {"link": 1.0, "possible": -1.0}
    same = train.scale_thresholds(chosen, training_people=8_000, index_size=8_000)
    assert (same["link"], same["possible"]) == (1.0, -1.0)
    with pytest.raises(ValueError):
        train.scale_thresholds(chosen, training_people=0, index_size=10)


def test_the_shipped_model_is_scaled_for_a_national_index():
    data = json.loads(MODEL_PATH.read_text())
    scaled = data["thresholds"]["scaled_for"]
    assert scaled["index_size"] == train.DEPLOYMENT_INDEX_SIZE
    assert data["thresholds"]["link"] == scaled["chosen_on_training"]["link"] + scaled["shift"] > 0
    assert data["thresholds"]["possible"] == (scaled["chosen_on_training"]["possible"] + scaled["shift"]
                                              - scaled["review_widening"])

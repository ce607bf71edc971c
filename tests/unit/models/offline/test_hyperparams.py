"""Hyperparameters: one set of defaults, resolved over by name, and what XGBoost receives."""

from __future__ import annotations

import pytest

from models.offline.hyperparams import DEFAULT_PARAMS, booster_params, resolve
from models.offline.training import train_model
from tests.unit.models.offline.synthetic import synthetic_dataset


def test_hyperparameters_resolve_over_the_defaults() -> None:
    assert resolve(None) == dict(DEFAULT_PARAMS)
    assert resolve({"max_depth": 6})["max_depth"] == 6
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['depth'\]"):
        resolve({"depth": 6})


def test_class_weight_power_sets_scale_pos_weight() -> None:
    full = resolve({"class_weight_power": 1.0})
    balanced = booster_params(full, negatives=990, positives=10, seed=1, nthread=1)
    assert balanced["scale_pos_weight"] == pytest.approx(99.0)  # balanced classes
    assert "class_weight_power" not in balanced and "num_boost_round" not in balanced
    half = resolve({"class_weight_power": 0.5})
    assert booster_params(half, negatives=900, positives=9, seed=1, nthread=1)[
        "scale_pos_weight"
    ] == pytest.approx(10.0)
    none = resolve({"class_weight_power": 0.0})
    assert booster_params(none, negatives=900, positives=9, seed=1, nthread=1)[
        "scale_pos_weight"
    ] == pytest.approx(1.0)


def test_training_without_params_uses_the_defaults() -> None:
    dataset = synthetic_dataset(3, 3_000, 10, 100)
    artifact = train_model(dataset, nthread=1, num_boost_round=5, early_stopping_rounds=2)
    p = artifact.params
    for name in ("max_depth", "eta", "min_child_weight", "subsample", "colsample_bytree"):
        assert p[name] == DEFAULT_PARAMS[name], name
    assert p["class_weight_power"] == DEFAULT_PARAMS["class_weight_power"]
    assert p["num_boost_round"] == 5 and p["early_stopping_rounds"] == 2
    tuned = train_model(
        dataset, nthread=1, params={"max_depth": 2, "eta": 0.3, "num_boost_round": 5}
    )
    assert (tuned.params["max_depth"], tuned.params["eta"]) == (2, 0.3)
    assert tuned.params["num_boost_round"] == 5
    assert tuned.version != artifact.version

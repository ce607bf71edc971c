"""The XGBoost hyperparameters training uses, and how they become booster parameters.

One home for the defaults (``DEFAULT_PARAMS``: what ``train`` uses without ``--tune``, and the
first trial of every search) and for the translation to XGBoost's own parameters, so the
search and the final training fit exactly the same model for the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

#: The hyperparameters ``train`` uses without ``--tune``: what a 15-minute search chose on
#: the simulator's data (``train --tune --tune-minutes 15``, seed 7: 56 trials on 3 time
#: folds of 17 simulated days, 485,820 transactions). Its highest mean objective was 0.6910
#: (depth 5, eta 0.034, about 356 trees); this trial's 0.6857 is within one standard error
#: of it with a model a quarter of the size (about 45 trees of depth 6), and the previous
#: defaults (depth 4, eta 0.1, 300 rounds, min child weight 1, subsample and colsample 0.8,
#: class weight power 1) scored 0.6852. ``num_boost_round`` is a cap: training stops
#: ``early_stopping_rounds`` after the validation AUC-PR last improved.
#: ``class_weight_power`` p weights each fraud by ``(legit / fraud) ** p`` (1: balanced
#: classes, 0: unweighted), so the value carries over to data with another fraud rate.
DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType(
    {
        "max_depth": 6,
        "eta": 0.1887,
        "num_boost_round": 200,
        "early_stopping_rounds": 30,
        "min_child_weight": 3.359,
        "subsample": 0.603,
        "colsample_bytree": 0.971,
        "class_weight_power": 0.5,
    }
)

#: Hyperparameters that are not XGBoost parameters (training loop and class weight).
_LOOP_KEYS = frozenset({"num_boost_round", "early_stopping_rounds", "class_weight_power"})


def resolve(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``DEFAULT_PARAMS`` overridden by ``params``; refuse names it does not know."""
    unknown = sorted(set(params or {}) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    return {**DEFAULT_PARAMS, **(params or {})}


def booster_params(
    params: Mapping[str, Any], *, negatives: int, positives: int, seed: int, nthread: int
) -> dict[str, Any]:
    """Return the ``xgb.train`` parameters of resolved hyperparameters on a training set."""
    ratio = negatives / max(positives, 1)
    out: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "eval_metric": "aucpr",
        "max_bin": 256,
        **{k: v for k, v in params.items() if k not in _LOOP_KEYS},
        "scale_pos_weight": ratio ** float(params["class_weight_power"]),
        "nthread": nthread,
        "seed": seed,
        "verbosity": 1,
    }
    return out

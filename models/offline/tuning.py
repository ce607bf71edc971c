"""Seeded random search of the XGBoost hyperparameters with time-ordered validation.

Each trial trains on the past and is validated on later windows: ``n_folds`` successive
windows at the end of the training period, each preceded by a gap (by default the label
delay: when a model is retrained, the latest labels it can learn from are that old). Fold
``i`` trains on everything from the start of the period up to its gap, so no row is ever
validated on by a model that saw a later one. The final validation period of ``train`` is
not part of the search: its report stays an honest estimate of the chosen model.

The objective of a fold is ``ap_weight * AP + (1 - ap_weight) * card precision@k``: average
precision ranks every transaction (what the tiers are cut from), card precision@k counts
what a team of analysts with ``k`` cards a day would find. Both are in [0, 1]; the default
weighs them equally. A trial scores the mean over its folds. The choice follows the
one-standard-error rule: of the trials whose mean is within one standard error of the
best mean (the error of their fold-by-fold difference to the best), the smallest model
wins (fewest leaves: rounds times 2^depth, which is what scoring and the SHAP reasons
cost per transaction), then the higher mean, then the earlier trial. A difference the
folds cannot tell from noise is not worth a slower worker. Trial 0 is always
:data:`DEFAULT_PARAMS`.

The trial list is drawn up front from ``seed``; a time budget only cuts it short, so a
search by number of trials is deterministic for a seed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from models.artifact import ModelArtifact
from models.features import FEATURE_NAMES
from models.offline.evaluation import card_precision_at_k
from models.offline.hyperparams import DEFAULT_PARAMS, booster_params, resolve
from models.offline.replay import DAY_MS, DEFAULT_LABEL_DELAY_DAYS
from models.offline.training import Dataset, average_precision, period_split

DEFAULT_TUNE_MINUTES = 10.0
DEFAULT_FOLDS = 3
#: Trials drawn when only a time budget is given; the budget ends the search long before.
MAX_TRIALS = 1000

#: Values the search draws from (each trial draws each one independently).
DEPTHS = (3, 4, 5, 6, 8)
ETA_RANGE = (0.02, 0.3)  # log-uniform
ROUNDS = (100, 200, 400, 800)
#: A round cap is drawn only if ``cap x eta`` reaches this: fewer rounds than that cannot fit
#: at a small learning rate and would only waste a trial (the largest cap always qualifies).
MIN_ROUNDS_X_ETA = 8.0
MIN_CHILD_WEIGHT_RANGE = (0.5, 20.0)  # log-uniform
SUBSAMPLE_RANGE = (0.5, 1.0)
COLSAMPLE_RANGE = (0.4, 1.0)
CLASS_WEIGHT_POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class TuneConfig:
    """How long to search and how to validate: neither trials nor minutes means 10 minutes."""

    trials: int | None = None
    minutes: float | None = None
    folds: int = DEFAULT_FOLDS
    gap_days: float = DEFAULT_LABEL_DELAY_DAYS
    #: Length of each fold's validation window; default ``span - gap`` over ``folds + 2``.
    valid_days: float | None = None
    top_k: int = 100
    ap_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"--tune-trials {self.trials}: give at least 1 trial")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"--tune-minutes {self.minutes:g}: give a number of minutes > 0")
        if self.folds < 1:
            raise ValueError(f"--tune-folds {self.folds}: give at least 1 fold")
        if not (math.isfinite(self.gap_days) and self.gap_days >= 0):
            raise ValueError(f"--tune-gap-days {self.gap_days:g}: give days >= 0")
        if self.valid_days is not None and not self.valid_days > 0:
            raise ValueError(f"tuning validation days {self.valid_days:g}: give days > 0")
        if self.top_k < 1:
            raise ValueError(f"--top-k {self.top_k}: give k >= 1")
        if not 0.0 <= self.ap_weight <= 1.0:
            raise ValueError(f"AP weight {self.ap_weight:g}: give a weight in [0, 1]")

    @property
    def n_trials(self) -> int:
        """Return the length of the trial list (the time budget may stop it earlier)."""
        return self.trials if self.trials is not None else MAX_TRIALS

    @property
    def budget_s(self) -> float:
        """Return the time budget in seconds (infinite when only trials were given)."""
        if self.minutes is not None:
            return self.minutes * 60.0
        return math.inf if self.trials is not None else DEFAULT_TUNE_MINUTES * 60.0


@dataclass(frozen=True, slots=True)
class Fold:
    """One time-ordered fold: training rows strictly before the gap, then validation rows."""

    train: slice
    valid: slice


def time_folds(
    ts_ms: npt.NDArray[np.int64],
    rows: slice,
    n_folds: int,
    gap_days: float,
    valid_days: float | None = None,
) -> list[Fold]:
    """Return ``n_folds`` successive folds inside ``rows`` (the final training period).

    The last fold's validation ends where ``rows`` end; each earlier one ends where the next
    begins. Every fold trains from the start of ``rows`` to ``gap_days`` before its window
    (:func:`period_split`, as the final model's split), so training grows fold by fold.
    """
    start, stop = rows.start or 0, rows.stop if rows.stop is not None else ts_ms.size
    if stop <= start:
        raise ValueError("no training rows to tune on")
    lo_ms, hi_ms = int(ts_ms[start]), int(ts_ms[stop - 1]) + 1
    span_days = (hi_ms - lo_ms) / DAY_MS
    window_days = valid_days if valid_days is not None else (span_days - gap_days) / (n_folds + 2)
    too_short = ValueError(
        f"too little data for {n_folds} tuning folds: the training period has "
        f"{span_days:.2f} days, the folds need a {gap_days:g}-day gap plus {n_folds} "
        f"validation windows and some training before them; give a longer period, "
        f"fewer --tune-folds or a shorter --tune-gap-days"
    )
    if window_days <= 0 or span_days <= gap_days + n_folds * window_days:
        raise too_short
    window_ms = int(window_days * DAY_MS)
    folds = []
    for i in range(n_folds):
        until_ms = hi_ms - (n_folds - 1 - i) * window_ms
        try:
            train, valid = period_split(
                ts_ms, from_ms=lo_ms, until_ms=until_ms, valid_days=window_days, gap_days=gap_days
            )
        except ValueError:
            raise too_short from None
        folds.append(Fold(train, valid))
    return folds


def draw_trials(seed: int, n: int) -> list[dict[str, Any]]:
    """Return ``n`` hyperparameter sets: the defaults, then seeded random draws."""
    rng = random.Random(seed)

    def log_uniform(lo: float, hi: float) -> float:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    trials = [dict(DEFAULT_PARAMS)]
    while len(trials) < n:
        depth = rng.choice(DEPTHS)
        eta = round(log_uniform(*ETA_RANGE), 4)
        caps = [r for r in ROUNDS if r * eta >= MIN_ROUNDS_X_ETA] or [ROUNDS[-1]]
        trials.append(
            resolve(
                {
                    "max_depth": depth,
                    "eta": eta,
                    "num_boost_round": rng.choice(caps),
                    "min_child_weight": round(log_uniform(*MIN_CHILD_WEIGHT_RANGE), 3),
                    "subsample": round(rng.uniform(*SUBSAMPLE_RANGE), 3),
                    "colsample_bytree": round(rng.uniform(*COLSAMPLE_RANGE), 3),
                    "class_weight_power": rng.choice(CLASS_WEIGHT_POWERS),
                }
            )
        )
    return trials[:n]


@dataclass(frozen=True, slots=True)
class FoldScore:
    """What one trial achieved on one fold's validation window."""

    average_precision: float
    card_precision: float
    objective: float
    rounds: int


@dataclass(frozen=True, slots=True)
class Trial:
    """One hyperparameter set and its fold scores."""

    index: int
    params: Mapping[str, Any]
    folds: Sequence[FoldScore]
    seconds: float

    @property
    def objective(self) -> float:
        """Return the mean fold objective (what the search maximises)."""
        return float(np.mean([f.objective for f in self.folds]))

    def as_dict(self) -> dict[str, Any]:
        """Return the trial as plain data for the report and the artifact."""
        return {
            "index": self.index,
            "params": dict(self.params),
            "objective": self.objective,
            "average_precision": float(np.mean([f.average_precision for f in self.folds])),
            "card_precision": float(np.mean([f.card_precision for f in self.folds])),
            "folds": [
                {
                    "average_precision": f.average_precision,
                    "card_precision": f.card_precision,
                    "objective": f.objective,
                    "rounds": f.rounds,
                }
                for f in self.folds
            ],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class TuningResult:
    """The trials run, the chosen one, and how the search was set up."""

    trials: Sequence[Trial]
    best: int
    folds: Sequence[Fold]
    config: TuneConfig
    seed: int
    seconds: float
    stopped_by_budget: bool
    fold_periods_ms: Sequence[Mapping[str, list[int]]] = field(default_factory=list)

    @property
    def chosen(self) -> Mapping[str, Any]:
        """Return the hyperparameters of the best trial."""
        return self.trials[self.best].params

    def as_dict(self) -> dict[str, Any]:
        """Return the search as plain data: the report's and the artifact's ``tuning``."""
        c = self.config
        return {
            "chosen": dict(self.chosen),
            "chosen_trial": self.best,
            "objective": (
                f"mean over folds of {c.ap_weight:g} x average precision + "
                f"{1.0 - c.ap_weight:g} x card precision@{c.top_k}"
            ),
            "seed": self.seed,
            "folds": c.folds,
            "gap_days": c.gap_days,
            "fold_periods_ms": [dict(p) for p in self.fold_periods_ms],
            "trials_planned": c.trials,
            "budget_minutes": None if math.isinf(c.budget_s) else c.budget_s / 60.0,
            "stopped_by_budget": self.stopped_by_budget,
            "seconds": round(self.seconds, 3),
            "trials": [t.as_dict() for t in self.trials],
        }


def _fold_data(
    dataset: Dataset, folds: Sequence[Fold]
) -> list[tuple[xgb.DMatrix, xgb.DMatrix, int, int]]:
    """Build each fold's matrices once (every trial reuses them) with class counts."""
    names = list(FEATURE_NAMES)
    out = []
    for k, fold in enumerate(folds):
        y_tr, y_va = dataset.labels[fold.train], dataset.labels[fold.valid]
        pos_tr, pos_va = int(y_tr.sum()), int(y_va.sum())
        if pos_tr in (0, y_tr.size) or pos_va in (0, y_va.size):
            raise ValueError(
                f"tuning fold {k + 1} needs both classes in training ({pos_tr}/{y_tr.size} "
                f"fraud) and validation ({pos_va}/{y_va.size} fraud); give a longer period "
                f"or fewer --tune-folds"
            )
        dtrain = xgb.DMatrix(
            dataset.features[fold.train], label=y_tr, feature_names=names, missing=math.nan
        )
        dvalid = xgb.DMatrix(
            dataset.features[fold.valid], label=y_va, feature_names=names, missing=math.nan
        )
        out.append((dtrain, dvalid, int(y_tr.size - pos_tr), pos_tr))
    return out


def run_trial(
    dataset: Dataset,
    folds: Sequence[Fold],
    matrices: Sequence[tuple[xgb.DMatrix, xgb.DMatrix, int, int]],
    params: Mapping[str, Any],
    config: TuneConfig,
    *,
    seed: int,
    nthread: int,
) -> list[FoldScore]:
    """Train ``params`` on every fold (early stopping on its window) and score the window."""
    scores = []
    for fold, (dtrain, dvalid, negatives, positives) in zip(folds, matrices, strict=True):
        booster = xgb.train(
            booster_params(
                params, negatives=negatives, positives=positives, seed=seed, nthread=nthread
            ),
            dtrain,
            num_boost_round=int(params["num_boost_round"]),
            evals=[(dvalid, "valid")],
            early_stopping_rounds=int(params["early_stopping_rounds"]),
            verbose_eval=False,
        )
        rounds = int(booster.best_iteration) + 1
        margin = booster.predict(dvalid, output_margin=True, iteration_range=(0, rounds))
        y = dataset.labels[fold.valid]
        ap = average_precision(y, margin)
        cpk, _ = card_precision_at_k(
            dataset.ts_ms[fold.valid], dataset.accounts[fold.valid], margin, y, config.top_k
        )
        objective = config.ap_weight * ap + (1.0 - config.ap_weight) * cpk
        scores.append(FoldScore(ap, cpk, objective, rounds))
    return scores


def model_size(trial: Trial) -> float:
    """Return the trial's leaves per model at most: mean rounds over its folds x 2^depth."""
    rounds = float(np.mean([f.rounds for f in trial.folds]))
    return rounds * 2.0 ** int(trial.params["max_depth"])


def within_one_se(trial: Trial, top: Trial) -> bool:
    """Tell whether ``trial``'s mean is within one standard error of ``top``'s.

    The error is that of the paired fold-by-fold difference; with one fold there is none,
    and only an equal mean counts.
    """
    diffs = np.array(
        [b.objective - a.objective for a, b in zip(trial.folds, top.folds, strict=True)]
    )
    se = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else 0.0
    return float(diffs.mean()) <= se + 1e-12


def choose(trials: Sequence[Trial]) -> int:
    """Return the index of the chosen trial (the module doc: the one-standard-error rule)."""
    top = trials[max(range(len(trials)), key=lambda i: (trials[i].objective, -i))]
    tied = [i for i, t in enumerate(trials) if within_one_se(t, top)]
    return min(tied, key=lambda i: (model_size(trials[i]), -trials[i].objective, i))


def describe(params: Mapping[str, Any]) -> str:
    """Return a one-line summary of a hyperparameter set (progress lines)."""
    return (
        f"depth {params['max_depth']}, eta {params['eta']:g}, <={params['num_boost_round']} "
        f"rounds, min child weight {params['min_child_weight']:g}, subsample "
        f"{params['subsample']:g}, colsample {params['colsample_bytree']:g}, class weight "
        f"power {params['class_weight_power']:g}"
    )


def tune(
    dataset: Dataset,
    rows: slice,
    config: TuneConfig,
    *,
    seed: int = 7,
    nthread: int = 2,
    say: Say = _quiet,
    clock: Callable[[], float] = time.monotonic,
) -> TuningResult:
    """Search the hyperparameters on time folds of ``rows``; return every trial and the best.

    Before each trial after the first, the search stops if the trial would end after the
    budget (judging by the mean trial time so far); the first trial always runs.
    """
    if len(dataset.accounts) != len(dataset):
        raise ValueError("tuning needs the account of every row (card precision@k)")
    started = clock()
    folds = time_folds(dataset.ts_ms, rows, config.folds, config.gap_days, config.valid_days)
    matrices = _fold_data(dataset, folds)
    periods = [
        {
            "train": [int(dataset.ts_ms[f.train.start]), int(dataset.ts_ms[f.train.stop - 1])],
            "valid": [int(dataset.ts_ms[f.valid.start]), int(dataset.ts_ms[f.valid.stop - 1])],
        }
        for f in folds
    ]
    candidates = draw_trials(seed, config.n_trials)
    deadline = started + config.budget_s
    search_started = clock()
    trials: list[Trial] = []
    stopped = False
    for index, params in enumerate(candidates):
        now = clock()
        if trials:
            mean_s = (now - search_started) / len(trials)
            if now + mean_s > deadline:
                stopped = True
                break
        fold_scores = run_trial(
            dataset, folds, matrices, params, config, seed=seed, nthread=nthread
        )
        trial = Trial(index, params, tuple(fold_scores), clock() - now)
        trials.append(trial)
        say(
            f"trial {index + 1}: objective {trial.objective:.4f} (AP "
            f"{np.mean([f.average_precision for f in fold_scores]):.4f}, card precision@"
            f"{config.top_k} {np.mean([f.card_precision for f in fold_scores]):.4f}) with "
            f"{describe(params)} in {trial.seconds:.1f}s"
        )
    best = choose(trials)
    return TuningResult(
        trials=tuple(trials),
        best=best,
        folds=tuple(folds),
        config=config,
        seed=seed,
        seconds=clock() - started,
        stopped_by_budget=stopped,
        fold_periods_ms=periods,
    )


def record_tuning(artifact: ModelArtifact, result: TuningResult) -> None:
    """Write the search into the artifact: set-up and choice in params, trials in metrics."""
    doc = result.as_dict()
    trials = doc.pop("trials")
    artifact.params["tuning"] = doc
    artifact.metrics["tuning"] = {
        "chosen_trial": result.best,
        "objective": doc["objective"],
        "seconds": doc["seconds"],
        "trials": trials,
    }

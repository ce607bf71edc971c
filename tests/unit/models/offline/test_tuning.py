"""Hyperparameter search: time folds that never leak, a seeded search, the objective, reports.

A small synthetic dataset (plain arrays, 24 days, one thread) stands in for a replayed file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from models.artifact import load_artifact
from models.offline.evaluation import card_precision_at_k
from models.offline.hyperparams import DEFAULT_PARAMS, booster_params, resolve
from models.offline.replay import DAY_MS
from models.offline.report import render_html
from models.offline.training import DEFAULT_START_MS, Dataset, average_precision, train_model
from models.offline.tuning import (
    CLASS_WEIGHT_POWERS,
    DEPTHS,
    ETA_RANGE,
    MIN_ROUNDS_X_ETA,
    ROUNDS,
    FoldScore,
    Trial,
    TuneConfig,
    choose,
    draw_trials,
    record_tuning,
    time_folds,
    tune,
)
from tests.unit.models.offline.synthetic import synthetic_dataset

N_ROWS, N_DAYS, N_ACCOUNTS = 6_000, 24, 150
GAP_DAYS = 2.0


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return synthetic_dataset(3, N_ROWS, N_DAYS, N_ACCOUNTS)


def _rows_before(dataset: Dataset, days: float) -> slice:
    """The final training rows when the last ``days`` are the final validation."""
    cut = int(np.searchsorted(dataset.ts_ms, int(dataset.ts_ms[-1]) - int(days * DAY_MS)))
    return slice(0, cut)


QUICK = {"num_boost_round": 40, "early_stopping_rounds": 5}


def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cap the drawn rounds so a search on the synthetic data takes a second or two."""
    import models.offline.tuning as tuning

    real = tuning.draw_trials
    monkeypatch.setattr(
        tuning, "draw_trials", lambda seed, n: [{**p, **QUICK} for p in real(seed, n)]
    )


# -- folds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n_folds", [1, 3, 4])
@pytest.mark.parametrize("gap_days", [0.0, GAP_DAYS])
def test_time_folds_never_leak(dataset: Dataset, n_folds: int, gap_days: float) -> None:
    rows = _rows_before(dataset, 4.0)
    folds = time_folds(dataset.ts_ms, rows, n_folds, gap_days)
    assert len(folds) == n_folds
    gap_ms = int(gap_days * DAY_MS)
    for fold in folds:
        train_ts, valid_ts = dataset.ts_ms[fold.train], dataset.ts_ms[fold.valid]
        assert train_ts.size and valid_ts.size
        # Every validation row is later than every training row plus the gap.
        assert valid_ts.min() >= train_ts.max() + gap_ms
        assert fold.train.start == rows.start  # each trains on the whole past
        assert fold.valid.stop <= rows.stop  # never on the final validation
    for earlier, later in itertools.pairwise(folds):
        assert earlier.valid.stop == later.valid.start  # successive windows
        assert earlier.train.stop < later.train.stop  # training grows
    assert folds[-1].valid.stop == rows.stop


def test_time_folds_of_a_given_window(dataset: Dataset) -> None:
    rows = _rows_before(dataset, 4.0)
    folds = time_folds(dataset.ts_ms, rows, 3, GAP_DAYS, valid_days=1.0)
    for fold in folds:
        valid_ts = dataset.ts_ms[fold.valid]
        assert valid_ts.max() - valid_ts.min() < DAY_MS


@pytest.mark.parametrize(
    ("n_folds", "gap_days", "valid_days"),
    [(3, 21.0, None), (3, 2.0, 7.0), (30, 2.0, 1.0)],
    ids=["gap-too-long", "windows-too-long", "too-many-folds"],
)
def test_too_little_data_for_the_folds_says_what_to_do(
    dataset: Dataset, n_folds: int, gap_days: float, valid_days: float | None
) -> None:
    with pytest.raises(ValueError, match=r"too little data for \d+ tuning folds.*--tune-folds"):
        time_folds(dataset.ts_ms, _rows_before(dataset, 4.0), n_folds, gap_days, valid_days)


def test_a_fold_without_frauds_is_refused(dataset: Dataset) -> None:
    legit = Dataset(
        dataset.features,
        np.zeros_like(dataset.labels),
        dataset.ts_ms,
        dataset.patterns,
        dataset.data_hash,
        dataset.accounts,
        dataset.tx_ids,
    )
    config = TuneConfig(trials=1, gap_days=GAP_DAYS, top_k=10)
    with pytest.raises(ValueError, match="tuning fold 1 needs both classes"):
        tune(legit, _rows_before(dataset, 4.0), config, nthread=1)


# -- the search ----------------------------------------------------------------------------


def test_trials_start_with_the_defaults_and_are_seeded() -> None:
    trials = draw_trials(11, 40)
    assert trials[0] == dict(DEFAULT_PARAMS)
    assert trials == draw_trials(11, 40)
    assert draw_trials(11, 5) == trials[:5]  # a shorter list is a prefix
    assert trials != draw_trials(12, 40)
    for p in trials[1:]:
        assert set(p) == set(DEFAULT_PARAMS)
        assert p["max_depth"] in DEPTHS
        assert p["num_boost_round"] in ROUNDS
        # A cap too small for the learning rate is never drawn.
        assert p["num_boost_round"] * p["eta"] >= MIN_ROUNDS_X_ETA or (
            p["num_boost_round"] == max(ROUNDS)
        )
        assert p["class_weight_power"] in CLASS_WEIGHT_POWERS
        assert ETA_RANGE[0] <= p["eta"] <= ETA_RANGE[1]
        assert 0.0 < p["subsample"] <= 1.0 and 0.0 < p["colsample_bytree"] <= 1.0
    assert len({orjson.dumps(p, option=orjson.OPT_SORT_KEYS) for p in trials}) == 40


def test_same_seed_same_trials_and_choice(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _quick(monkeypatch)
    rows = _rows_before(dataset, 4.0)
    config = TuneConfig(trials=4, gap_days=GAP_DAYS, top_k=10)
    first = tune(dataset, rows, config, seed=5, nthread=1)
    again = tune(dataset, rows, config, seed=5, nthread=1)
    other = tune(dataset, rows, config, seed=6, nthread=1)

    def essence(result: object) -> list[object]:
        doc = result.as_dict()  # type: ignore[attr-defined]
        return [doc["chosen_trial"], [(t["params"], t["folds"]) for t in doc["trials"]]]

    assert len(first.trials) == 4 and not first.stopped_by_budget
    assert essence(first) == essence(again)
    assert [t.params for t in first.trials[1:]] != [t.params for t in other.trials[1:]]


def test_the_best_trial_maximises_the_documented_objective(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _quick(monkeypatch)
    rows = _rows_before(dataset, 4.0)
    config = TuneConfig(trials=3, folds=2, gap_days=GAP_DAYS, top_k=10, ap_weight=0.3)
    result = tune(dataset, rows, config, seed=1, nthread=1)
    for trial in result.trials:
        assert len(trial.folds) == 2
        for f in trial.folds:
            assert f.objective == pytest.approx(0.3 * f.average_precision + 0.7 * f.card_precision)
            assert 1 <= f.rounds <= QUICK["num_boost_round"]
        assert trial.objective == pytest.approx(np.mean([f.objective for f in trial.folds]))
    assert result.best == choose(result.trials)
    assert result.chosen == result.trials[result.best].params
    assert "0.3 x average precision + 0.7 x card precision@10" in result.as_dict()["objective"]


def test_fold_scores_are_the_evaluation_figures_of_the_window(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One fold re-trained by hand gives the AP and card precision the search reported."""
    import xgboost as xgb

    _quick(monkeypatch)
    rows = _rows_before(dataset, 4.0)
    config = TuneConfig(trials=1, folds=1, gap_days=GAP_DAYS, top_k=10)
    result = tune(dataset, rows, config, seed=2, nthread=1)
    (fold,) = result.folds
    (score,) = result.trials[0].folds
    params = resolve({**DEFAULT_PARAMS, **QUICK})
    y_tr = dataset.labels[fold.train]
    booster = xgb.train(
        booster_params(
            params,
            negatives=int((y_tr == 0).sum()),
            positives=int(y_tr.sum()),
            seed=2,
            nthread=1,
        ),
        xgb.DMatrix(dataset.features[fold.train], label=y_tr),
        num_boost_round=score.rounds,
    )
    s = booster.predict(xgb.DMatrix(dataset.features[fold.valid]))
    y = dataset.labels[fold.valid]
    assert score.average_precision == pytest.approx(average_precision(y, s), abs=1e-6)
    cpk, _ = card_precision_at_k(dataset.ts_ms[fold.valid], dataset.accounts[fold.valid], s, y, 10)
    assert score.card_precision == pytest.approx(cpk)


def _ticks(step_s: float) -> Iterator[float]:
    return (i * step_s for i in itertools.count())


def test_the_time_budget_cuts_the_seeded_list_short(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake clock (60 s per reading): the budget ends the list early, never reorders it."""
    _quick(monkeypatch)
    rows = _rows_before(dataset, 4.0)
    ticks = _ticks(60.0)
    config = TuneConfig(trials=6, minutes=5.0, gap_days=GAP_DAYS, top_k=10)
    cut = tune(dataset, rows, config, seed=4, nthread=1, clock=lambda: next(ticks))
    full = tune(dataset, rows, TuneConfig(trials=6, gap_days=GAP_DAYS, top_k=10), seed=4, nthread=1)
    assert cut.stopped_by_budget and not full.stopped_by_budget
    assert 1 <= len(cut.trials) < len(full.trials) == 6
    assert [t.params for t in cut.trials] == [t.params for t in full.trials[: len(cut.trials)]]
    # The first trial runs whatever the budget.
    ticks = _ticks(1e6)
    first_only = tune(dataset, rows, config, seed=4, nthread=1, clock=lambda: next(ticks))
    assert len(first_only.trials) == 1 and first_only.chosen == full.trials[0].params


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minutes": 0.0}, "--tune-minutes 0: give a number of minutes > 0"),
        ({"minutes": float("nan")}, "--tune-minutes nan"),
        ({"trials": 0}, "--tune-trials 0: give at least 1 trial"),
        ({"folds": 0}, "--tune-folds 0"),
        ({"gap_days": -1.0}, "--tune-gap-days -1"),
        ({"top_k": 0}, "--top-k 0"),
        ({"ap_weight": 1.5}, "AP weight 1.5"),
    ],
)
def test_config_errors_name_the_option(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TuneConfig(**kwargs)  # type: ignore[arg-type]


def test_budget_defaults() -> None:
    assert TuneConfig().budget_s == 600.0
    assert TuneConfig(trials=5).budget_s == float("inf")
    assert TuneConfig(trials=5, minutes=2.0).budget_s == 120.0
    assert TuneConfig(trials=5).n_trials == 5


# -- artifact and report ---------------------------------------------------


def test_the_search_goes_into_the_artifact_and_the_report(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _quick(monkeypatch)
    rows = _rows_before(dataset, 4.0)
    result = tune(dataset, rows, TuneConfig(trials=3, gap_days=GAP_DAYS, top_k=10), nthread=1)
    artifact = train_model(dataset, nthread=1, params=result.chosen)
    record_tuning(artifact, result)
    artifact.save(tmp_path / "m.json")
    loaded = load_artifact(tmp_path / "m.json")
    assert loaded.params["tuning"]["chosen"] == dict(result.chosen)
    assert loaded.params["max_depth"] == result.chosen["max_depth"]
    trials = loaded.metrics["tuning"]["trials"]
    assert [t["params"] for t in trials] == [dict(t.params) for t in result.trials]
    assert [len(t["folds"]) for t in trials] == [3, 3, 3]

    page = render_html("v", {"tuning": result.as_dict()}, [], {})
    assert "<h2>Tuning</h2>" in page
    assert page.count("<tr><td>") >= 3 + 3  # the set-up rows, then one row per trial
    assert f"* {result.best + 1}</td>" in page  # the chosen trial is marked
    assert "card precision@10" in page


# -- train --tune, on a file and on simulated data -----------------------------------------


def test_train_on_records_tunes_on_the_training_period_only(tmp_path: Path) -> None:
    from models.offline.backtest import train_on_records
    from models.simulator import simulate_history

    history = simulate_history(3, 300, 6.0, DEFAULT_START_MS)
    records = [(h.tx, h.label) for h in history]
    messages: list[str] = []
    config = TuneConfig(trials=2, folds=2, gap_days=0.5, top_k=20)
    artifact, validation = train_on_records(
        records,
        tmp_path / "model.json",
        valid_days=2.0,
        gap_days=0.5,
        label_delay_days=1.0,
        report_dir=tmp_path / "report",
        top_k=20,
        nthread=1,
        tune=config,
        say=messages.append,
    )
    tuning = artifact.params["tuning"]
    assert artifact.params["max_depth"] == tuning["chosen"]["max_depth"]
    valid_start = validation.figures["period_ms"][0]
    for period in tuning["fold_periods_ms"]:
        assert period["valid"][1] < valid_start - 0.5 * DAY_MS  # before the final gap
        assert period["valid"][0] >= period["train"][1] + 0.5 * DAY_MS
    doc = orjson.loads((tmp_path / "report" / "train-report.json").read_bytes())
    assert len(doc["figures"]["tuning"]["trials"]) == 2
    assert doc["figures"]["tuning"]["chosen"] == tuning["chosen"]
    assert "<h2>Tuning</h2>" in (tmp_path / "report" / "train-report.html").read_text()
    assert sum(m.startswith("trial ") for m in messages) == 2
    assert any(m.startswith("tuning chose trial ") for m in messages)


def test_train_default_tunes_and_reports(tmp_path: Path) -> None:
    from models.offline.training import train_default

    config = TuneConfig(trials=2, folds=2, gap_days=1.0, top_k=20)
    messages: list[str] = []
    artifact = train_default(
        tmp_path / "m.json",
        seed=11,
        n_accounts=120,
        days=4.0,
        nthread=1,
        tune=config,
        report_dir=tmp_path / "report",
        say=messages.append,
    )
    assert messages[0].startswith("simulated ") and "over 5 days" in messages[0]
    assert sum(m.startswith("trial ") for m in messages) == 2
    assert messages[-1].startswith("tuning chose trial ")
    assert artifact.params["simulation"]["days"] == 5.0  # longer by the folds' gap
    assert len(artifact.metrics["tuning"]["trials"]) == 2
    assert artifact.metrics["timings_s"]["tune"] >= 0.0
    chosen = artifact.params["tuning"]["chosen"]
    assert load_artifact(tmp_path / "m.json").params["eta"] == chosen["eta"]
    doc = orjson.loads((tmp_path / "report" / "train-report.json").read_bytes())
    assert doc["figures"]["tuning"]["chosen_trial"] == artifact.params["tuning"]["chosen_trial"]


def _trial(index: int, depth: int, rounds: int, objectives: list[float]) -> Trial:
    folds = tuple(FoldScore(o, o, o, rounds) for o in objectives)
    return Trial(index, {"max_depth": depth}, folds, 1.0)


def test_the_choice_is_the_smallest_model_within_one_standard_error_of_the_best() -> None:
    best = _trial(0, 8, 400, [0.70, 0.80, 0.75])
    # 0.01 below on every fold: the folds agree it is worse (no spread, so no error).
    worse = _trial(1, 3, 50, [0.69, 0.79, 0.74])
    # 0.01 below on average, but a fold where it is better: within one standard error.
    tied = _trial(2, 4, 100, [0.72, 0.77, 0.73])
    bigger_tied = _trial(3, 6, 100, [0.73, 0.76, 0.73])
    assert choose([best, worse]) == 0
    assert choose([best, worse, tied, bigger_tied]) == 2
    # A single fold has no error: only an equal mean ties, and then the smaller model wins.
    assert choose([_trial(0, 8, 10, [0.5]), _trial(1, 2, 10, [0.5]), _trial(2, 2, 5, [0.49])]) == 1

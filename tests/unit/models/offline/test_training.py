"""Offline training: dataset replay, metrics, calibration, tier thresholds, the artifact."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.artifact import ModelArtifact, data_hash, load_artifact
from models.features import FEATURE_NAMES, N_FEATURES, AccountState, update_account
from models.offline.training import (
    DEFAULT_START_MS,
    Dataset,
    average_precision,
    build_dataset,
    canonical_record,
    choose_tiers,
    fit_platt,
    pr_curve,
    roc_auc,
    serving_sample,
    time_split,
    train_default,
)
from models.scorer import Scorer
from models.simulator import SimulatedTx, simulate_history
from models.tiers import resolve_thresholds
from models.transaction import transaction_from_dict

SEED, N_ACCOUNTS, DAYS = 5, 1500, 8.0


@pytest.fixture(scope="module")
def history() -> list[SimulatedTx]:
    return simulate_history(SEED, N_ACCOUNTS, DAYS, DEFAULT_START_MS)


@pytest.fixture(scope="module")
def dataset(history: list[SimulatedTx]) -> Dataset:
    return build_dataset(history)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelArtifact, Path]:
    path = tmp_path_factory.mktemp("model") / "vigil-test.json"
    artifact = train_default(path, seed=SEED, n_accounts=N_ACCOUNTS, days=DAYS)
    return artifact, path


@pytest.fixture(scope="module")
def serving() -> Dataset:
    """The serving sample train_default picks its thresholds on (same seed and start)."""
    return serving_sample(SEED, DEFAULT_START_MS + int((DAYS + 1) * 86_400_000))


def validation(dataset: Dataset, artifact: ModelArtifact) -> tuple[np.ndarray, np.ndarray]:
    cut = time_split(dataset, artifact.params["valid_fraction"])
    return dataset.features[cut:], dataset.labels[cut:]


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


# -- dataset -------------------------------------------------------------------------------


def test_dataset_is_the_streaming_feature_function_replayed(
    history: list[SimulatedTx], dataset: Dataset
) -> None:
    assert dataset.features.shape == (len(history), N_FEATURES)
    assert dataset.features.dtype == np.float32
    states: dict[str, AccountState] = {}
    expected = []
    for rec in history[:3000]:
        tx = transaction_from_dict(rec.tx)
        feats, states[tx.account_id] = update_account(states.get(tx.account_id), tx)
        expected.append(feats)
    np.testing.assert_array_equal(dataset.features[:3000], np.asarray(expected, dtype=np.float32))
    assert dataset.labels.tolist() == [r.label for r in history]
    # Velocity features really accumulate over the history.
    assert dataset.features[:, FEATURE_NAMES.index("account_tx_count")].max() > 10


def test_dataset_replays_in_event_time_order(history: list[SimulatedTx], dataset: Dataset) -> None:
    # Records at the same millisecond keep their input order, so leave those out here.
    ts_count = Counter(r.tx["ts"] for r in history[:5000])
    unique = [r for r in history[:5000] if ts_count[r.tx["ts"]] == 1]
    shuffled = list(unique)
    random.Random(1).shuffle(shuffled)
    rebuilt = build_dataset(shuffled)
    ordered = build_dataset(unique)
    assert np.all(np.diff(rebuilt.ts_ms) >= 0)
    np.testing.assert_array_equal(rebuilt.features, ordered.features)
    assert rebuilt.data_hash == ordered.data_hash


def test_data_hash_covers_records_and_labels(history: list[SimulatedTx]) -> None:
    head = history[:2000]
    ds = build_dataset(head)
    assert ds.data_hash == data_hash(b"".join(canonical_record(r.tx, r.label) for r in head))
    pairs = [(r.tx, r.label) for r in head]
    assert build_dataset(pairs).data_hash == ds.data_hash
    pairs[10] = (pairs[10][0], 1 - pairs[10][1])
    assert build_dataset(pairs).data_hash != ds.data_hash


def test_invalid_record_is_refused_with_its_field(history: list[SimulatedTx]) -> None:
    bad = dict(history[0].tx, amount=-3)
    with pytest.raises(ValueError, match="amount"):
        build_dataset([(history[1].tx, 0), (bad, 0)])
    with pytest.raises(ValueError, match="label"):
        build_dataset([(history[1].tx, 2)])


# -- metrics and calibration ---------------------------------------------------------------


def test_auc_and_average_precision_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.1).astype(np.int8)
    s = np.round(rng.random(3000) + 0.5 * y, 2)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(brute_force_auc(y, s), abs=1e-12)
    # Average precision by its definition: mean precision at each positive's rank group.
    thr, precision, recall = pr_curve(y, s)
    ap = sum(precision[i] * (recall[i] - (recall[i - 1] if i else 0.0)) for i in range(thr.size))
    assert average_precision(y, s) == pytest.approx(ap)
    perfect = np.r_[np.ones(10), np.zeros(90)]
    assert average_precision(perfect, perfect) == 1.0 and roc_auc(perfect, perfect) == 1.0


def test_platt_recovers_known_calibration() -> None:
    rng = np.random.default_rng(4)
    margin = rng.normal(0.0, 2.0, 200_000)
    y = rng.random(margin.size) < 1.0 / (1.0 + np.exp(-(0.5 * margin - 2.0)))
    a, b = fit_platt(margin, y)
    assert a == pytest.approx(0.5, abs=0.03)
    assert b == pytest.approx(-2.0, abs=0.05)


def test_tiers_are_ordered_and_fall_back_when_unreachable() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(5000) < 0.05).astype(np.int8)
    # Positives sit in the upper 40 % of a range full of negatives: precision tops out
    # near 12 %, apart from a lucky top score or two that must not count.
    scores = np.where(y == 1, 0.6 + 0.4 * rng.random(5000), rng.random(5000))
    y[np.argsort(-scores)[:2]] = 1
    thresholds, report = choose_tiers(y, scores, {"HIGH": 0.9, "MEDIUM": 0.3, "LOW": 0.08})
    assert thresholds["HIGH"] >= thresholds["MEDIUM"] >= thresholds["LOW"]
    assert report["HIGH"]["target_reached"] is False
    assert report["MEDIUM"]["target_reached"] is False
    assert report["LOW"]["target_reached"] is True
    assert report["LOW"]["precision"] >= 0.08
    assert report["LOW"]["recall"] > 0.9


# -- the trained artifact ------------------------------------------------------------------


def test_artifact_loads_with_ordered_thresholds(trained: tuple[ModelArtifact, Path]) -> None:
    artifact, path = trained
    loaded = load_artifact(path)
    assert loaded.version == artifact.version and loaded.version.startswith("sim-")
    assert loaded.feature_names == FEATURE_NAMES
    t = loaded.thresholds
    assert 1.0 >= t["HIGH"] >= t["MEDIUM"] >= t["LOW"] >= 0.0
    assert resolve_thresholds(t, {}) == t
    assert set(loaded.calibration) == {"a", "b"}
    assert loaded.data_hash == artifact.data_hash and len(loaded.data_hash) == 64
    assert loaded.trained_at.endswith("+00:00")
    for key in (
        "auc_roc",
        "average_precision",
        "n_train",
        "n_valid",
        "positives",
        "best_iteration",
        "tiers",
    ):
        assert key in loaded.metrics


def test_reloaded_model_scores_like_the_trained_one(
    trained: tuple[ModelArtifact, Path], dataset: Dataset
) -> None:
    artifact, path = trained
    assert dataset.data_hash == artifact.data_hash  # same seed, same history
    rows, _ = validation(dataset, artifact)
    served = Scorer(load_artifact(path)).score(rows)
    np.testing.assert_array_equal(served, Scorer(artifact).score(rows))
    assert np.all((served >= 0) & (served <= 1))


def test_validation_is_the_latest_period(
    trained: tuple[ModelArtifact, Path], dataset: Dataset
) -> None:
    artifact, _ = trained
    cut = time_split(dataset, artifact.params["valid_fraction"])
    assert dataset.ts_ms[:cut].max() < dataset.ts_ms[cut:].min()
    assert artifact.metrics["n_train"] == cut
    assert artifact.metrics["n_train"] + artifact.metrics["n_valid"] == len(dataset)
    assert artifact.metrics["positives"]["valid"] == int(dataset.labels[cut:].sum())


def test_validation_auc_and_calibration(
    trained: tuple[ModelArtifact, Path], dataset: Dataset
) -> None:
    artifact, path = trained
    rows, y = validation(dataset, artifact)
    scores = Scorer(load_artifact(path)).score(rows)
    auc = brute_force_auc(y, scores)
    assert auc > 0.9
    assert artifact.metrics["auc_roc"] == pytest.approx(auc, abs=1e-9)
    rate = y.mean()
    # Calibrated: the mean probability is close to the fraud rate, not to 0.5 as the
    # class-weighted booster alone would put it.
    assert rate / 2 < scores.mean() < rate * 2
    assert 0.005 / 2 < scores.mean() < 0.01 * 2


def test_tier_metrics_describe_the_thresholds(
    trained: tuple[ModelArtifact, Path], serving: Dataset
) -> None:
    artifact, _ = trained
    assert artifact.metrics["thresholds_from"] == "serving sample"
    rows, y = serving.features, serving.labels
    scores = Scorer(artifact).score(rows)
    for tier, report in artifact.metrics["tiers"].items():
        flagged = scores >= artifact.thresholds[tier]
        precision = (flagged & (y == 1)).sum() / max(flagged.sum(), 1)
        assert report["precision"] == pytest.approx(precision)
        assert report["recall"] == pytest.approx((flagged & (y == 1)).sum() / y.sum())
        if report["target_reached"]:
            assert precision >= report["target_precision"]
    assert artifact.metrics["tiers"]["LOW"]["recall"] >= artifact.metrics["tiers"]["HIGH"]["recall"]


def test_score_distribution_is_a_histogram_of_serving_scores(
    trained: tuple[ModelArtifact, Path], serving: Dataset
) -> None:
    artifact, _ = trained
    dist = artifact.score_distribution
    assert len(dist["edges"]) == 21 and len(dist["counts"]) == 20
    assert dist["edges"][0] == 0.0 and dist["edges"][-1] == 1.0
    expected, _ = np.histogram(Scorer(artifact).score(serving.features), bins=20, range=(0, 1))
    assert dist["counts"] == expected.tolist()
    assert dist["counts"][0] > 0.9 * len(serving)  # most traffic is benign
    assert not math.isnan(artifact.metrics["average_precision"])

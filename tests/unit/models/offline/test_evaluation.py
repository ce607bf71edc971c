"""Backtest figures: ROC, AUC and AP against scikit-learn, card precision@k, tiers, alerts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    roc_auc_score,
)
from sklearn.metrics import roc_curve as sk_roc_curve

from models.offline.evaluation import (
    DAY_MS,
    alerts_per_day,
    card_precision_at_k,
    evaluate,
    pattern_figures,
    roc_curve,
    tier_figures,
)
from models.offline.training import average_precision, pr_curve, roc_auc

DAY0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
HOUR = 3_600_000


def scored(seed: int, n: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with some signal; ``decimals`` rounds them to force ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int8)
    y[0], y[1] = 1, 0  # both classes
    s = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0.0, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 2, 1, 0])
def test_auc_and_average_precision_match_sklearn(seed: int, decimals: int | None) -> None:
    y, s = scored(seed, 500, decimals)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_metrics_when_every_score_is_tied() -> None:
    y = np.array([1, 0, 0, 1, 0], dtype=np.int8)
    s = np.full(5, 0.5)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s)) == 0.5
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s)) == 0.4


def test_hand_worked_auc_and_ap_with_a_tie() -> None:
    # Descending: 0.9 (1), 0.8 (0), 0.8 (1), 0.3 (0). Positive/negative pairs: (0.9 > 0.8),
    # (0.9 > 0.3), (0.8 = 0.8: half), (0.8 > 0.3) -> 3.5 of 4.
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.8, 0.3])
    assert roc_auc(y, s) == 3.5 / 4
    # Thresholds 0.9: P=1, R=.5; 0.8: P=2/3, R=1 -> AP = .5 * 1 + .5 * 2/3.
    assert average_precision(y, s) == pytest.approx(0.5 + 1 / 3)
    thr, precision, recall = pr_curve(y, s)
    assert thr.tolist() == [0.9, 0.8, 0.3]
    assert precision.tolist() == pytest.approx([1.0, 2 / 3, 0.5])
    assert recall.tolist() == [0.5, 1.0, 1.0]


def test_auc_is_nan_with_one_class() -> None:
    assert math.isnan(roc_auc(np.zeros(4), np.arange(4.0)))
    assert math.isnan(roc_auc(np.ones(4), np.arange(4.0)))


@pytest.mark.parametrize("decimals", [None, 1])
def test_roc_curve_matches_sklearn(decimals: int | None) -> None:
    y, s = scored(7, 300, decimals)
    fpr, tpr = roc_curve(y, s)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    assert fpr.tolist() == pytest.approx(sk_fpr.tolist())
    assert tpr.tolist() == pytest.approx(sk_tpr.tolist())
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(roc_auc(y, s))


def test_roc_curve_groups_ties_into_one_point() -> None:
    fpr, tpr = roc_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.3]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


# ---------------------------------------------------------------------------------------
# Card precision@k, worked by hand with k = 2.
#
# day 0: A best 0.9 (fraud on its 0.2 transaction), B 0.8 legit, C 0.7 fraud, D 0.1 fraud.
#        top 2 = A, B -> A is a hit: 1/2. A is caught.
# day 1: A (0.95, fraud) is left out (caught); C 0.6 fraud, E 0.55, B 0.5.
#        top 2 = C, E -> 1/2. C is caught.
# day 2: only F 0.3 fraud -> 1 hit, divided by k = 2: 1/2.
# day 3: A and C (caught) are left out; G 0.1 legit -> 0.
# mean = (0.5 + 0.5 + 0.5 + 0) / 4 = 0.375.
CPK_ROWS = [
    (0, "A", 0.9, 0),
    (0, "A", 0.2, 1),
    (0, "B", 0.8, 0),
    (0, "C", 0.7, 1),
    (0, "D", 0.1, 1),
    (1, "A", 0.95, 1),
    (1, "C", 0.6, 1),
    (1, "E", 0.55, 0),
    (1, "B", 0.5, 0),
    (2, "F", 0.3, 1),
    (3, "A", 0.99, 1),
    (3, "C", 0.98, 1),
    (3, "G", 0.1, 0),
]


def cpk_inputs(
    rows: list[tuple[int, str, float, int]],
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    ts = np.array([DAY0 + d * DAY_MS + (i % 20) * HOUR for i, (d, *_) in enumerate(rows)])
    return (
        ts,
        [a for _, a, _, _ in rows],
        np.array([s for *_, s, _ in rows]),
        np.array([y for *_, y in rows], dtype=np.int8),
    )


def test_card_precision_at_k_hand_worked() -> None:
    mean, per_day = card_precision_at_k(*cpk_inputs(CPK_ROWS), k=2)
    assert mean == 0.375
    d0 = DAY0 // DAY_MS
    assert per_day == [
        {"day": d0, "accounts": 4, "fraud_accounts": 3, "precision": 0.5},
        {"day": d0 + 1, "accounts": 3, "fraud_accounts": 1, "precision": 0.5},
        {"day": d0 + 2, "accounts": 1, "fraud_accounts": 1, "precision": 0.5},
        {"day": d0 + 3, "accounts": 1, "fraud_accounts": 0, "precision": 0.0},
    ]


def test_card_precision_at_k_does_not_depend_on_row_order() -> None:
    ts, accounts, scores, labels = cpk_inputs(CPK_ROWS)
    order = np.random.default_rng(1).permutation(len(accounts))
    mean, per_day = card_precision_at_k(
        ts[order], [accounts[i] for i in order], scores[order], labels[order], k=2
    )
    assert mean == 0.375
    assert [d["precision"] for d in per_day] == [0.5, 0.5, 0.5, 0.0]


def test_card_precision_at_k_large_k_divides_by_k() -> None:
    mean, per_day = card_precision_at_k(*cpk_inputs(CPK_ROWS), k=100)
    # Every fraud account of a day is in the top 100: day 0: A, C, D (all caught); day 1:
    # nothing new (A and C left out); day 2: F; day 3: nothing new.
    assert [d["precision"] for d in per_day] == [0.03, 0.0, 0.01, 0.0]
    assert mean == pytest.approx(0.04 / 4)


def test_card_precision_ties_rank_by_account_name() -> None:
    rows = [(0, "b", 0.5, 1), (0, "a", 0.5, 0), (0, "c", 0.5, 1)]
    mean, _ = card_precision_at_k(*cpk_inputs(rows), k=1)
    assert mean == 0.0  # "a" wins the tie and is legit


def test_card_precision_uncaught_fraud_account_stays_a_candidate() -> None:
    # Day 0: X is a fraud but ranked out of the top 1; day 1 it is found.
    rows = [(0, "Y", 0.9, 0), (0, "X", 0.1, 1), (1, "X", 0.8, 1), (1, "Y", 0.7, 0)]
    _, per_day = card_precision_at_k(*cpk_inputs(rows), k=1)
    assert [d["precision"] for d in per_day] == [0.0, 1.0]


def test_card_precision_of_nothing_is_nan() -> None:
    mean, per_day = card_precision_at_k(
        np.array([], dtype=np.int64), [], np.array([]), np.array([])
    )
    assert math.isnan(mean) and per_day == []


def test_tier_figures_hand_worked() -> None:
    labels = np.array([1, 1, 0, 1, 0, 0, 0, 1])
    tiers = ["HIGH", "HIGH", "HIGH", "MEDIUM", "MEDIUM", "LOW", "MINIMAL", "MINIMAL"]
    out = tier_figures(labels, tiers)
    assert out["HIGH"] == {
        "transactions": 3,
        "frauds": 2,
        "precision": pytest.approx(2 / 3),
        "recall": 0.5,
        "precision_at_or_above": pytest.approx(2 / 3),
        "recall_at_or_above": 0.5,
    }
    assert out["MEDIUM"] == {
        "transactions": 2,
        "frauds": 1,
        "precision": 0.5,
        "recall": 0.25,
        "precision_at_or_above": 0.6,
        "recall_at_or_above": 0.75,
    }
    assert out["LOW"] == {
        "transactions": 1,
        "frauds": 0,
        "precision": 0.0,
        "recall": 0.0,
        "precision_at_or_above": 0.5,
        "recall_at_or_above": 0.75,
    }
    assert out["MINIMAL"] == {"transactions": 2, "frauds": 1, "precision": 0.5, "recall": 0.25}


def test_tier_figures_empty_tier_has_no_precision() -> None:
    out = tier_figures(np.array([0, 0]), ["MINIMAL", "LOW"])
    assert out["HIGH"]["precision"] is None
    assert out["HIGH"]["precision_at_or_above"] is None
    assert out["LOW"]["precision_at_or_above"] == 0.0
    assert out["LOW"]["recall"] == 0.0  # no positives: no division by zero


def test_alerts_per_day_rows_only_for_days_with_traffic() -> None:
    ts = np.array([DAY0 + 5 * DAY_MS + 1, DAY0, DAY0 + DAY_MS - 1, DAY0 + 5 * DAY_MS])
    tiers = ["HIGH", "LOW", "MINIMAL", "HIGH"]
    assert alerts_per_day(ts, tiers) == [
        {"day": "2024-03-01", "transactions": 2, "HIGH": 0, "MEDIUM": 0, "LOW": 1},
        {"day": "2024-03-06", "transactions": 2, "HIGH": 2, "MEDIUM": 0, "LOW": 0},
    ]


def test_evaluate_matches_independent_figures() -> None:
    y, s = scored(3, 400, 2)
    rng = np.random.default_rng(3)
    ts = np.sort(DAY0 + rng.integers(0, 5 * DAY_MS, size=y.size))
    accounts = [f"acc{int(a)}" for a in rng.integers(0, 40, size=y.size)]
    tiers = ["HIGH" if v >= 0.8 else "LOW" if v >= 0.5 else "MINIMAL" for v in s]
    thresholds = {"HIGH": 0.8, "MEDIUM": 0.8, "LOW": 0.5}
    figures = evaluate(y, s, tiers, ts, accounts, top_k=5, thresholds=thresholds)
    assert figures["transactions"] == 400
    assert figures["frauds"] == int(y.sum())
    assert figures["fraud_rate"] == pytest.approx(y.mean())
    assert figures["auc_roc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert figures["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert figures["thresholds"] == thresholds
    assert figures["period_ms"] == [int(ts[0]), int(ts[-1])]
    cpk = figures["card_precision_at_k"]
    assert cpk["k"] == 5
    assert cpk["mean"] == pytest.approx(np.mean([d["precision"] for d in cpk["per_day"]]))
    assert len(cpk["per_day"]) == len({int(t) // DAY_MS for t in ts})
    high = figures["tiers"]["HIGH"]
    assert high["transactions"] == int((s >= 0.8).sum())
    assert high["frauds"] == int(((s >= 0.8) & (y == 1)).sum())
    assert sum(r["transactions"] for r in figures["alerts_per_day"]) == 400
    assert sum(r["LOW"] for r in figures["alerts_per_day"]) == tiers.count("LOW")


def test_pattern_figures_count_frauds_caught_per_tier_and_recall() -> None:
    labels = np.array([1, 1, 1, 1, 0, 1, 1, 0], dtype=np.int8)
    tiers = ["HIGH", "LOW", "MINIMAL", "MEDIUM", "HIGH", "MINIMAL", "HIGH", "LOW"]
    patterns = [
        "account_takeover",
        "account_takeover",
        "account_takeover",
        "card_testing",
        "legit",
        "card_testing",
        "structuring",
        "legit",
    ]
    out = pattern_figures(labels, tiers, patterns)
    assert out == {
        "account_takeover": {"frauds": 3, "HIGH": 1, "MEDIUM": 0, "LOW": 1, "recall": 2 / 3},
        "card_testing": {"frauds": 2, "HIGH": 0, "MEDIUM": 1, "LOW": 0, "recall": 0.5},
        "structuring": {"frauds": 1, "HIGH": 1, "MEDIUM": 0, "LOW": 0, "recall": 1.0},
    }


def test_pattern_figures_are_left_out_when_the_data_names_no_pattern() -> None:
    labels = np.array([1, 0, 1], dtype=np.int8)
    tiers = ["HIGH", "LOW", "MINIMAL"]
    assert pattern_figures(labels, tiers, ["fraud", "legit", "fraud"]) == {}
    ts = np.array([DAY0, DAY0 + HOUR, DAY0 + 2 * HOUR])
    scores = np.array([0.9, 0.5, 0.1])
    unnamed = evaluate(
        labels, scores, tiers, ts, ["a", "b", "c"], patterns=["fraud", "legit", "fraud"]
    )
    assert "patterns" not in unnamed
    assert "patterns" not in evaluate(labels, scores, tiers, ts, ["a", "b", "c"])
    named = evaluate(labels, scores, tiers, ts, ["a", "b", "c"], patterns=["x", "legit", "x"])
    assert named["patterns"] == {
        "x": {"frauds": 2, "HIGH": 1, "MEDIUM": 0, "LOW": 0, "recall": 0.5}
    }

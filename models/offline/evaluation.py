"""What a model (and the rules) would have done on a labelled period: the backtest figures.

Pure numpy. ``train`` reports its validation period with these and ``backtest`` any period,
so the two reports read the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.tiers import ALERTED_TIERS, TIERS

DAY_MS = 86_400_000
#: Pattern names that name nothing: a file without a pattern column gets these.
UNNAMED_PATTERNS = frozenset({"legit", "fraud"})


def roc_curve(
    y: npt.NDArray[Any], s: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return ``(false positive rate, true positive rate)`` from (0,0) to (1,1)."""
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(-np.asarray(s, dtype=np.float64), kind="mergesort")
    s_sorted = np.asarray(s, dtype=np.float64)[order]
    tp = np.cumsum(y[order])
    fp = np.cumsum(1.0 - y[order])
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tpr = np.r_[0.0, tp[last] / max(float(y.sum()), 1.0)]
    fpr = np.r_[0.0, fp[last] / max(float(y.size - y.sum()), 1.0)]
    return fpr, tpr


def card_precision_at_k(
    ts_ms: npt.NDArray[Any],
    accounts: Sequence[str],
    scores: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    k: int = 100,
) -> tuple[float, list[dict[str, Any]]]:
    """Return the mean daily card precision@k and the per-day figures.

    Each UTC day, accounts are ranked by their highest score that day; of the top ``k``,
    the share that had a fraud that day is the day's precision. An account whose fraud was
    caught (in the top ``k`` with a fraud) on an earlier day is left out of later days: the
    bank has blocked that card, so finding it again is no achievement. The divisor is ``k``
    (a day with fewer candidates cannot reach 1.0), as in the usual definition.
    """
    days = np.asarray(ts_ms, dtype=np.int64) // DAY_MS
    caught: set[str] = set()
    per_day: list[dict[str, Any]] = []
    order = np.argsort(days, kind="mergesort")
    days_sorted = days[order]
    bounds = np.flatnonzero(np.r_[True, days_sorted[1:] != days_sorted[:-1], True])
    if days.size == 0:
        bounds = bounds[:0]  # no rows: no days (not one day from 0 to 1)
    for lo, hi in itertools.pairwise(bounds):
        best: dict[str, float] = {}
        fraud: dict[str, bool] = {}
        for i in order[lo:hi]:
            account = accounts[int(i)]
            if account in caught:
                continue
            score = float(scores[i])
            if score > best.get(account, -1.0):
                best[account] = score
            if labels[i]:
                fraud[account] = True
        ranked = sorted(best, key=lambda a: (-best[a], a))[:k]
        hits = [a for a in ranked if fraud.get(a)]
        caught.update(hits)
        per_day.append(
            {
                "day": int(days_sorted[lo]),
                "accounts": len(best),
                "fraud_accounts": len(fraud),
                "precision": len(hits) / k,
            }
        )
    mean = float(np.mean([d["precision"] for d in per_day])) if per_day else float("nan")
    return mean, per_day


def tier_figures(labels: npt.NDArray[Any], tiers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Return per tier: alerts, frauds, precision, recall of the tier, and at-or-above."""
    y = np.asarray(labels, dtype=bool)
    tier_arr = np.asarray(tiers)
    positives = max(int(y.sum()), 1)
    out: dict[str, dict[str, Any]] = {}
    above = np.zeros(y.size, dtype=bool)
    for tier in TIERS:
        mask = tier_arr == tier
        if tier in ALERTED_TIERS:
            above |= mask
        n = int(mask.sum())
        tp = int((mask & y).sum())
        tp_above = int((above & y).sum())
        n_above = int(above.sum())
        out[tier] = {
            "transactions": n,
            "frauds": tp,
            "precision": tp / n if n else None,
            "recall": tp / positives,
        }
        if tier in ALERTED_TIERS:
            out[tier]["precision_at_or_above"] = tp_above / n_above if n_above else None
            out[tier]["recall_at_or_above"] = tp_above / positives
    return out


def alerts_per_day(ts_ms: npt.NDArray[Any], tiers: Sequence[str]) -> list[dict[str, Any]]:
    """Return one ``{"day": "YYYY-MM-DD", "HIGH": n, ...}`` row per UTC day with traffic."""
    days = np.asarray(ts_ms, dtype=np.int64) // DAY_MS
    tier_arr = np.asarray(tiers)
    rows: list[dict[str, Any]] = []
    for day in np.unique(days):
        mask = days == day
        row: dict[str, Any] = {
            "day": str(np.datetime64(int(day), "D")),
            "transactions": int(mask.sum()),
        }
        for tier in ALERTED_TIERS:
            row[tier] = int((mask & (tier_arr == tier)).sum())
        rows.append(row)
    return rows


def pattern_figures(
    labels: npt.NDArray[Any], tiers: Sequence[str], patterns: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per fraud pattern: frauds, caught at each alerted tier, and recall at the alerting tier.

    ``tiers`` are the final tiers (``MINIMAL``: no alert), so a fraud counts as caught when
    it raised an alert at all, at the lowest alerting threshold or by a rule. Legit rows
    and a pattern with no fraud in the period are left out; empty when the data names no
    pattern (only ``legit``/``fraud``).
    """
    y = np.asarray(labels, dtype=bool)
    names = np.asarray(patterns)
    tier_arr = np.asarray(tiers)
    out: dict[str, dict[str, Any]] = {}
    named = sorted(set(names[y].tolist()) - UNNAMED_PATTERNS) if y.size else []
    for pattern in named:
        mask = y & (names == pattern)
        frauds = int(mask.sum())
        caught = {t: int((mask & (tier_arr == t)).sum()) for t in ALERTED_TIERS}
        out[pattern] = {"frauds": frauds, **caught, "recall": sum(caught.values()) / frauds}
    return out


def evaluate(
    labels: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    tiers: Sequence[str],
    ts_ms: npt.NDArray[Any],
    accounts: Sequence[str],
    top_k: int = 100,
    thresholds: Mapping[str, float] | None = None,
    patterns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return every backtest figure of one scored, labelled period.

    With ``patterns`` (one per row) that name fraud patterns, ``patterns`` holds the recall
    per pattern (:func:`pattern_figures`).
    """
    from models.offline.training import average_precision, roc_auc

    y = np.asarray(labels, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    cpk, per_day = card_precision_at_k(ts_ms, accounts, s, y, top_k)
    figures: dict[str, Any] = {
        "transactions": int(y.size),
        "frauds": int(y.sum()),
        "fraud_rate": float(y.mean()) if y.size else None,
        "auc_roc": roc_auc(y, s),
        "average_precision": average_precision(y, s),
        "card_precision_at_k": {"k": top_k, "mean": cpk, "per_day": per_day},
        "tiers": tier_figures(y, tiers),
        "alerts_per_day": alerts_per_day(ts_ms, tiers),
    }
    if patterns is not None:
        by_pattern = pattern_figures(y, tiers, patterns)
        if by_pattern:
            figures["patterns"] = by_pattern
    if thresholds is not None:
        figures["thresholds"] = dict(thresholds)
    if y.size:
        figures["period_ms"] = [int(np.min(ts_ms)), int(np.max(ts_ms))]
    return figures

"""Offline training of the default XGBoost artifact on simulated (or labelled) history.

The dataset is built by replaying transactions in event-time order through
:func:`models.features.update_account`, the very function the streaming agent calls, so the
model sees exactly the features it will be served. Validation is the *latest* part of the
history (no shuffling across time), as production will always score the future. The
booster's margin is Platt-calibrated on that period and the tier thresholds are read off its
precision/recall curve, so a tier means the same precision whatever the class imbalance.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson
import xgboost as xgb

from models.artifact import ModelArtifact, load_artifact
from models.features import FEATURE_NAMES, N_FEATURES
from models.offline.datafile import PATTERN_COLUMN
from models.offline.hyperparams import booster_params, resolve
from models.offline.replay import DAY_MS, DEFAULT_LABEL_DELAY_DAYS, Replayer, ReplayStep
from models.scorer import Scorer
from models.simulator import SimulatedTx, Simulator, simulate_history
from models.tiers import ALERTED_TIERS, DEFAULT_PRECISION_TARGETS
from models.transaction import Transaction, ValidationError, transaction_from_dict

if TYPE_CHECKING:
    from models.offline.tuning import TuneConfig

log = logging.getLogger(__name__)

#: Event time the default history starts at (2024-01-01T00:00:00Z), fixed for reproducibility.
DEFAULT_START_MS = 1_704_067_200_000
DEFAULT_N_ACCOUNTS = 5_000
DEFAULT_DAYS = 10.0
#: Share of the history (the latest) that validates the model when no period is given.
DEFAULT_VALID_FRACTION = 0.25
#: Transactions in the serving sample of the default model: a simulated live stream scored
#: from empty velocity state, as a freshly started worker sees it.
DEFAULT_SERVING_SAMPLE = 60_000
SERVING_RATE_PER_S = 200.0
N_SCORE_BINS = 20
PROGRESS_EVERY = 100_000

Record = SimulatedTx | tuple[Mapping[str, Any], int]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Feature matrix in event-time order, with labels and the hash of the source records."""

    features: npt.NDArray[np.float32]  # (n, N_FEATURES), NaN = missing
    labels: npt.NDArray[np.int8]
    ts_ms: npt.NDArray[np.int64]
    patterns: tuple[str, ...]
    data_hash: str
    accounts: tuple[str, ...] = ()
    tx_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def canonical_record(tx: Mapping[str, Any], label: int) -> bytes:
    """Return the canonical bytes of one training record (what ``data_hash`` covers)."""
    return orjson.dumps([tx, label], option=orjson.OPT_SORT_KEYS) + b"\n"


def build_dataset(
    records: Iterable[Record],
    *,
    label_delay_days: float | None = DEFAULT_LABEL_DELAY_DAYS,
    progress: Callable[[int], None] | None = None,
    until_ms: int | None = None,
    on_step: Callable[[int, Transaction, ReplayStep], None] | None = None,
) -> Dataset:
    """Validate, order by event time and replay records as the stream would.

    Accepts :class:`SimulatedTx` or ``(tx_dict, label)`` pairs (whose ``pattern`` field, if
    any, names the row's pattern, as in a simulated data file). An invalid transaction is an
    error here (training data must be clean), reported with its position and field. Each
    label reaches the counterparty-risk state ``label_delay_days`` after its transaction
    (``None``: never, as on a fresh worker). ``progress`` is called with the rows done.
    Rows at or after ``until_ms`` are left out. ``on_step(row, tx, step)`` sees every row
    as it is replayed (the backtest runs the AML rules there, on the same state).
    """
    parsed: list[tuple[Transaction, int, str, Mapping[str, Any]]] = []
    for i, rec in enumerate(records):
        doc: Mapping[str, Any]
        if isinstance(rec, SimulatedTx):
            doc, label, pattern = rec.tx, rec.label, rec.pattern
        else:
            doc, label = rec
            named = doc.get(PATTERN_COLUMN)  # a data file that names each row's pattern
            pattern = named if isinstance(named, str) else ("fraud" if label else "legit")
        if label not in (0, 1):
            raise ValueError(f"record {i}: label must be 0 or 1, got {label!r}")
        try:
            tx = transaction_from_dict(doc)
        except ValidationError as exc:
            raise ValueError(f"record {i}: invalid transaction ({exc})") from exc
        if until_ms is not None and tx.ts_ms >= until_ms:
            continue
        parsed.append((tx, int(label), pattern, doc))
    parsed.sort(key=lambda r: r[0].ts_ms)  # stable: ties keep their input order

    hasher = hashlib.sha256()
    delay = None if label_delay_days is None else int(label_delay_days * DAY_MS)
    replayer = Replayer(label_delay_ms=delay)
    flat = array("d")  # raw doubles: a list of float objects would cost 4x the memory
    labels: list[int] = []
    ts: list[int] = []
    patterns: list[str] = []
    accounts: list[str] = []
    tx_ids: list[str] = []
    for i, (tx, label, pattern, doc) in enumerate(parsed):
        hasher.update(canonical_record(doc, label))
        step = replayer.step(tx, label)
        flat.extend(step.features)
        if on_step is not None:
            on_step(i, tx, step)
        labels.append(label)
        ts.append(tx.ts_ms)
        patterns.append(pattern)
        accounts.append(tx.account_id)
        tx_ids.append(tx.tx_id)
        if progress is not None and (i + 1) % PROGRESS_EVERY == 0:
            progress(i + 1)
    n = len(labels)
    return Dataset(
        features=np.frombuffer(flat, dtype=np.float64).astype(np.float32).reshape(n, N_FEATURES),
        labels=np.asarray(labels, dtype=np.int8),
        ts_ms=np.asarray(ts, dtype=np.int64),
        patterns=tuple(patterns),
        data_hash=hasher.hexdigest(),
        accounts=tuple(accounts),
        tx_ids=tuple(tx_ids),
    )


# ---------------------------------------------------------------------------------------
# Metrics, calibration and thresholds (numpy only).


def roc_auc(y: npt.NDArray[Any], s: npt.NDArray[Any]) -> float:
    """Return the area under the ROC curve (Mann-Whitney, ties counted as half)."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_s = np.asarray(s)[order]
    ranks = np.empty(y.size, dtype=np.float64)
    # Average rank within runs of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], y.size]
    avg = (starts + ends + 1) / 2.0  # 1-based ranks
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_curve(
    y: npt.NDArray[Any], s: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return ``(thresholds, precision, recall)`` for "alert when score >= threshold".

    One point per distinct score, thresholds descending.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    fp = np.cumsum(1.0 - y[order])
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # last index of each run of ties
    tp, fp, thr = tp[last], fp[last], s_sorted[last]
    precision = tp / (tp + fp)
    recall = tp / max(float(y.sum()), 1.0)
    return thr, precision, recall


def average_precision(y: npt.NDArray[Any], s: npt.NDArray[Any]) -> float:
    """Return average precision: sum over thresholds of (recall step) x precision."""
    _, precision, recall = pr_curve(y, s)
    steps = np.diff(np.r_[0.0, recall])
    return float((steps * precision).sum())


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


def fit_platt(
    margin: npt.NDArray[Any], y: npt.NDArray[Any], iterations: int = 50
) -> tuple[float, float]:
    """Fit ``p = sigmoid(a * margin + b)`` by Newton steps on the log-loss.

    Uses Platt's smoothed targets so a nearly separable validation set cannot push ``a``
    to infinity; the steps are halved until the loss decreases.
    """
    m = np.asarray(margin, dtype=np.float64)
    yb = np.asarray(y, dtype=bool)
    n_pos = float(yb.sum())
    n_neg = float(yb.size - n_pos)
    t = np.where(yb, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(a: float, b: float) -> float:
        z = a * m + b
        # log(1 + e^z) - t z, computed stably.
        return float((np.logaddexp(0.0, z) - t * z).sum())

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = _sigmoid(a * m + b)
        g = p - t
        w = p * (1.0 - p) + 1e-12
        grad = np.array([(g * m).sum(), g.sum()])
        hess = np.array([[(w * m * m).sum(), (w * m).sum()], [(w * m).sum(), w.sum()]])
        hess += np.eye(2) * 1e-9 * max(float(np.trace(hess)), 1.0)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            a_new, b_new = a - scale * float(step[0]), b - scale * float(step[1])
            new = loss(a_new, b_new)
            if new <= current:
                break
            scale /= 2.0
        else:
            break
        converged = current - new < 1e-10 * max(abs(current), 1.0)
        a, b, current = a_new, b_new, new
        if converged:
            break
    return a, b


@dataclass(frozen=True, slots=True)
class TierChoice:
    """The threshold chosen for one tier and what it achieves on validation."""

    threshold: float
    precision: float
    recall: float
    target: float
    reached: bool


def choose_threshold(
    thr: npt.NDArray[np.float64],
    precision: npt.NDArray[np.float64],
    recall: npt.NDArray[np.float64],
    target: float,
    min_alerts: int = 5,
    tp_counts: npt.NDArray[np.float64] | None = None,
) -> TierChoice:
    """Return the lowest threshold whose precision reaches ``target``.

    A precision measured on fewer than ``min_alerts`` true positives (the top one or two
    scores) is noise, so such thresholds do not count as reaching the target. If none
    reaches it, fall back to the most precise well-supported one (``reached`` is False).
    """
    support = tp_counts if tp_counts is not None else np.full(thr.shape, float(min_alerts))
    ok = np.flatnonzero((precision >= target) & (support >= min_alerts))
    if ok.size:
        i = int(ok[-1])  # thresholds descend, so the last qualifying one is the lowest
        return TierChoice(float(thr[i]), float(precision[i]), float(recall[i]), target, True)
    eligible = np.flatnonzero(support >= min_alerts)
    if eligible.size == 0:
        eligible = np.arange(thr.size)
    i = int(eligible[np.argmax(precision[eligible])])
    return TierChoice(float(thr[i]), float(precision[i]), float(recall[i]), target, False)


def _at_threshold(
    y: npt.NDArray[Any], s: npt.NDArray[Any], threshold: float
) -> tuple[float, float]:
    flagged = s >= threshold
    tp = float((flagged & (y == 1)).sum())
    n_flagged = float(flagged.sum())
    precision = tp / n_flagged if n_flagged else 1.0
    recall = tp / max(float((y == 1).sum()), 1.0)
    return precision, recall


def choose_tiers(
    y: npt.NDArray[Any], scores: npt.NDArray[Any], targets: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Return tier thresholds (HIGH >= MEDIUM >= LOW) and a report of what each achieves."""
    thr, precision, recall = pr_curve(y, scores)
    tp_counts = recall * float((np.asarray(y) == 1).sum())
    chosen = {
        tier: choose_threshold(thr, precision, recall, targets[tier], tp_counts=tp_counts)
        for tier in ALERTED_TIERS
    }
    thresholds = {tier: min(1.0, max(0.0, c.threshold)) for tier, c in chosen.items()}
    # A lower precision target always admits at least the thresholds of a higher one, so the
    # order only breaks with fallbacks; enforce it by capping the lower tiers.
    thresholds["MEDIUM"] = min(thresholds["MEDIUM"], thresholds["HIGH"])
    thresholds["LOW"] = min(thresholds["LOW"], thresholds["MEDIUM"])
    report: dict[str, Any] = {}
    for tier, c in chosen.items():
        p, r = _at_threshold(np.asarray(y), np.asarray(scores), thresholds[tier])
        report[tier] = {
            "threshold": thresholds[tier],
            "target_precision": c.target,
            "target_reached": c.reached,
            "precision": p,
            "recall": r,
        }
        if not c.reached:
            log.warning(
                "tier %s: precision %.2f is unreachable on validation; using the most precise "
                "threshold %.4f (precision %.3f)",
                tier,
                c.target,
                thresholds[tier],
                p,
            )
    return thresholds, report


# ---------------------------------------------------------------------------------------
# Training.


def time_split(dataset: Dataset, valid_fraction: float) -> int:
    """Return the first validation row: the latest ``valid_fraction`` of event time order."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError("valid_fraction must be in (0, 1)")
    n = len(dataset)
    cut = round(n * (1.0 - valid_fraction))
    # Never split inside a millisecond: rows at the same event time stay on one side.
    ts = dataset.ts_ms
    while 0 < cut < n and ts[cut] == ts[cut - 1]:
        cut += 1
    return cut


def period_split(
    ts_ms: npt.NDArray[np.int64],
    *,
    from_ms: int | None = None,
    until_ms: int | None = None,
    valid_days: float | None = None,
    gap_days: float = 0.0,
    valid_fraction: float = 0.25,
) -> tuple[slice, slice]:
    """Return the train and validation rows of a time-ordered dataset.

    Training covers ``[from, valid_start - gap)`` and validation ``[valid_start, until)``,
    where ``valid_start = until - valid_days`` (by default the latest ``valid_fraction`` of
    the period). Rows before ``from`` only warm up the state; the gap keeps the validation
    period from sharing bursts (and delayed labels) with the end of training.
    """
    if ts_ms.size == 0:
        raise ValueError("no transactions to train on")
    lo_ms = int(ts_ms[0]) if from_ms is None else from_ms
    hi_ms = int(ts_ms[-1]) + 1 if until_ms is None else until_ms
    if hi_ms <= lo_ms:
        raise ValueError("--until must be after --from")
    span = hi_ms - lo_ms
    valid_ms = int(valid_days * DAY_MS) if valid_days is not None else int(span * valid_fraction)
    gap_ms = int(gap_days * DAY_MS)
    if valid_ms <= 0 or valid_ms + gap_ms >= span:
        raise ValueError(
            f"the period ({span / DAY_MS:.2f} days) is too short for {valid_ms / DAY_MS:.2f} "
            f"validation days plus a {gap_days:g}-day gap"
        )
    valid_start = hi_ms - valid_ms
    first, train_end, valid_first, end = np.searchsorted(
        ts_ms, [lo_ms, valid_start - gap_ms, valid_start, hi_ms]
    ).tolist()
    if train_end <= first or end <= valid_first:
        raise ValueError("the training or the validation period holds no transactions")
    return slice(first, train_end), slice(valid_first, end)


def train_model(
    dataset: Dataset,
    *,
    seed: int = 7,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    params: Mapping[str, Any] | None = None,
    num_boost_round: int | None = None,
    early_stopping_rounds: int | None = None,
    nthread: int = 2,
    high_precision: float = DEFAULT_PRECISION_TARGETS["HIGH"],
    medium_precision: float = DEFAULT_PRECISION_TARGETS["MEDIUM"],
    low_precision: float = DEFAULT_PRECISION_TARGETS["LOW"],
    extra_params: Mapping[str, Any] | None = None,
    version_prefix: str = "sim-",
    serving: Dataset | None = None,
    split: tuple[slice, slice] | None = None,
) -> ModelArtifact:
    """Train, calibrate and pick tier thresholds; return an unsaved artifact.

    ``serving`` is a sample that looks like the traffic the model will score. When given,
    calibration, tier thresholds and the reference score distribution come from it (the
    time-split validation still drives early stopping and is reported): a model that will
    first serve accounts with empty velocity state should pick its thresholds there.

    ``params`` override :data:`DEFAULT_PARAMS` (``models/offline/hyperparams.py``; what
    ``--tune`` chose); ``num_boost_round`` and ``early_stopping_rounds`` override those two
    again (quick tests).
    The version is ``version_prefix`` plus a hash of the data, the parameters and the
    feature names, so the same data trained the same way always gets the same name, and a
    model of other features never takes an older model's name.
    """
    started = time.perf_counter()
    if split is None:
        cut = time_split(dataset, valid_fraction)
        split = (slice(0, cut), slice(cut, len(dataset)))
    train_rows, valid_rows = split
    x, y = dataset.features, dataset.labels
    x_tr, y_tr, x_va, y_va = x[train_rows], y[train_rows], x[valid_rows], y[valid_rows]
    pos_tr, pos_va = int(y_tr.sum()), int(y_va.sum())
    if pos_tr == 0 or pos_va == 0 or pos_tr == y_tr.size or pos_va == y_va.size:
        raise ValueError(
            f"both periods need both classes (train {pos_tr}/{y_tr.size} positive, "
            f"validation {pos_va}/{y_va.size} positive)"
        )
    hyper = resolve(params)
    if num_boost_round is not None:
        hyper["num_boost_round"] = num_boost_round
    if early_stopping_rounds is not None:
        hyper["early_stopping_rounds"] = early_stopping_rounds
    num_boost_round = int(hyper["num_boost_round"])
    early_stopping_rounds = int(hyper["early_stopping_rounds"])
    xgb_params = booster_params(
        hyper, negatives=int(y_tr.size - pos_tr), positives=pos_tr, seed=seed, nthread=nthread
    )
    xgb_params.update(extra_params or {})
    names = list(FEATURE_NAMES)
    dtrain = xgb.DMatrix(x_tr, label=y_tr, feature_names=names, missing=math.nan)
    dvalid = xgb.DMatrix(x_va, label=y_va, feature_names=names, missing=math.nan)
    booster = xgb.train(
        xgb_params,
        dtrain,
        num_boost_round=num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    best_iteration = int(booster.best_iteration)
    best_aucpr = float(booster.best_score)
    # Keep only the trees up to the best round, so every consumer scores the same model.
    booster = booster[: best_iteration + 1]
    booster_json = bytes(booster.save_raw(raw_format="json"))

    # Margins exactly as the served Scorer computes them, then Platt on validation.
    raw = ModelArtifact(
        version="uncalibrated",
        booster_json=booster_json,
        feature_names=FEATURE_NAMES,
        thresholds={"HIGH": 1.0, "MEDIUM": 1.0, "LOW": 1.0},
    )
    x_cal, y_cal = (x_va, y_va) if serving is None else (serving.features, serving.labels)
    a, b = fit_platt(Scorer(raw, nthread=nthread).margins(x_cal), y_cal)
    raw.calibration = {"a": a, "b": b}
    scorer = Scorer(raw, nthread=nthread)
    scores = scorer.score(x_va)
    cal_scores = scores if serving is None else scorer.score(x_cal)

    targets = {"HIGH": high_precision, "MEDIUM": medium_precision, "LOW": low_precision}
    thresholds, tiers = choose_tiers(y_cal, cal_scores, targets)
    counts, edges = np.histogram(cal_scores, bins=N_SCORE_BINS, range=(0.0, 1.0))

    patterns_va = np.asarray(dataset.patterns[valid_rows])
    recall_by_pattern: dict[str, dict[str, float]] = {}
    for pattern in sorted(set(patterns_va[y_va == 1].tolist())):
        mask = patterns_va == pattern
        recall_by_pattern[pattern] = {
            tier: float((scores[mask] >= thresholds[tier]).mean()) for tier in thresholds
        }
    metrics: dict[str, Any] = {
        "auc_roc": roc_auc(y_va, scores),
        "average_precision": average_precision(y_va, scores),
        "log_loss": float(
            -np.mean(
                np.where(
                    y_va == 1,
                    np.log(np.clip(scores, 1e-15, 1.0)),
                    np.log(np.clip(1.0 - scores, 1e-15, 1.0)),
                )
            )
        ),
        "mean_score": float(scores.mean()),
        "valid_fraud_rate": pos_va / y_va.size,
        "tiers": tiers,
        "recall_by_pattern": recall_by_pattern,
        "n_train": int(y_tr.size),
        "n_valid": int(y_va.size),
        "positives": {"train": pos_tr, "valid": pos_va},
        "best_iteration": best_iteration,
        "best_valid_aucpr": best_aucpr,
        "train_period_ms": [int(dataset.ts_ms[train_rows][0]), int(dataset.ts_ms[train_rows][-1])],
        "valid_period_ms": [int(dataset.ts_ms[valid_rows][0]), int(dataset.ts_ms[valid_rows][-1])],
        "thresholds_from": "validation" if serving is None else "serving sample",
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    stored_params = {
        **xgb_params,
        "class_weight_power": hyper["class_weight_power"],
        "num_boost_round": num_boost_round,
        "early_stopping_rounds": early_stopping_rounds,
        "valid_fraction": valid_fraction,
        "target_precision": targets,
    }
    digest = hashlib.sha256(
        dataset.data_hash.encode()
        + orjson.dumps(stored_params, option=orjson.OPT_SORT_KEYS)
        + orjson.dumps(FEATURE_NAMES)
    ).hexdigest()
    if serving is not None:
        metrics["serving_sample"] = {
            "n": int(y_cal.size),
            "auc_roc": roc_auc(y_cal, cal_scores),
            "average_precision": average_precision(y_cal, cal_scores),
            "fraud_rate": float(y_cal.mean()),
            "alert_share": {
                tier: float((cal_scores >= thresholds[tier]).mean()) for tier in thresholds
            },
        }
    artifact = ModelArtifact(
        version=version_prefix + digest[:10],
        booster_json=booster_json,
        feature_names=FEATURE_NAMES,
        thresholds=thresholds,
        calibration={"a": a, "b": b},
        metrics=metrics,
        data_hash=dataset.data_hash,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        params=stored_params,
        score_distribution={"edges": edges.tolist(), "counts": [int(c) for c in counts]},
    )
    log.info(
        "trained %s: AUC %.4f AP %.4f, %d rounds, thresholds %s",
        artifact.version,
        metrics["auc_roc"],
        metrics["average_precision"],
        best_iteration + 1,
        thresholds,
    )
    return artifact


def serving_sample(
    seed: int, start_ms: int, fraud_rate: float = 0.01, n: int = DEFAULT_SERVING_SAMPLE
) -> Dataset:
    """Return a simulated live stream featurised from empty state, as a new worker sees it."""
    live = Simulator(seed=seed + 1, fraud_rate=fraud_rate).events(start_ms, SERVING_RATE_PER_S)
    return build_dataset((next(live) for _ in range(n)), label_delay_days=None)


def train_default(
    path: Path,
    *,
    seed: int = 7,
    n_accounts: int = DEFAULT_N_ACCOUNTS,
    days: float = DEFAULT_DAYS,
    fraud_rate: float = 0.01,
    start_ms: int = DEFAULT_START_MS,
    nthread: int = 2,
    tune: TuneConfig | None = None,
    report_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> ModelArtifact:
    """Simulate a history, train on it, save the artifact to ``path`` and verify the file.

    With ``tune``, the hyperparameters are searched first on time folds of the training
    rows; the history is longer by the folds' gap so that they fit before the validation.
    ``report_dir`` receives the validation report (JSON + HTML, with the trials).
    """
    # Imported here, not at the top: the search module builds on this one.
    from models.offline.tuning import describe, record_tuning
    from models.offline.tuning import tune as search

    say = say or _quiet
    t0 = time.perf_counter()
    if tune is not None:
        days += tune.gap_days
    history = simulate_history(seed, n_accounts, days, start_ms, fraud_rate=fraud_rate)
    t1 = time.perf_counter()
    say(f"simulated {len(history):,} transactions over {days:g} days; replaying the features")
    dataset = build_dataset(history)
    del history
    serving = serving_sample(seed, start_ms + int((days + 1) * 86_400_000), fraud_rate)
    t2 = time.perf_counter()
    tuning = None
    if tune is not None:
        say(f"tuning on {tune.folds} time folds of the training period")
        train_rows = slice(0, time_split(dataset, DEFAULT_VALID_FRACTION))
        tuning = search(dataset, train_rows, tune, seed=seed, nthread=nthread, say=say)
        say(f"tuning chose trial {tuning.best + 1}: {describe(tuning.chosen)}")
    t3 = time.perf_counter()
    artifact = train_model(
        dataset,
        seed=seed,
        nthread=nthread,
        serving=serving,
        params=tuning.chosen if tuning is not None else None,
    )
    t4 = time.perf_counter()
    if tuning is not None:
        record_tuning(artifact, tuning)
    artifact.params["simulation"] = {
        "seed": seed,
        "n_accounts": n_accounts,
        "days": days,
        "fraud_rate": fraud_rate,
        "start_ms": start_ms,
    }
    artifact.metrics["timings_s"] = {
        "simulate": round(t1 - t0, 3),
        "features": round(t2 - t1, 3),
        "tune": round(t3 - t2, 3),
        "train": round(t4 - t3, 3),
    }
    artifact.save(path)

    # The file must serve exactly the model just evaluated; never leave a wrong one behind.
    cut = time_split(dataset, float(artifact.params["valid_fraction"]))
    rows = dataset.features[cut:][:20_000]
    served = Scorer(load_artifact(path), nthread=nthread).score(rows)
    in_memory = Scorer(artifact, nthread=nthread).score(rows)
    if not np.array_equal(served, in_memory):
        path.unlink(missing_ok=True)
        worst = float(np.max(np.abs(served - in_memory)))
        raise RuntimeError(f"artifact {path} scores differ from the trained model by {worst}")
    if report_dir is not None:
        from models.offline.backtest import score_period, write_backtest_report

        result = score_period(dataset, slice(cut, len(dataset)), artifact)
        if tuning is not None:
            result.figures["tuning"] = tuning.as_dict()
        write_backtest_report(
            result, artifact, report_dir, "train-report", f"Validation of {artifact.version}"
        )
    log.info("saved %s to %s in %.1f s", artifact.version, path, time.perf_counter() - t0)
    return artifact


def _quiet(_: str) -> None:
    return None

"""Train on a labelled file and backtest an artifact on one, without a broker.

Both replay the file in event-time order through the stream's own state updates
(:mod:`models.offline.replay`), so the figures describe what the deployed worker would have done.
Rows before ``--from`` only warm up velocity, counterparty-risk and rule state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from models.aml import ListVerdict, RuleHit
from models.aml.fanin import final_decision
from models.aml.lists import Decision
from models.aml.runtime import AmlSnapshot
from models.aml.stage import offline_hits
from models.artifact import ModelArtifact, load_artifact
from models.offline.evaluation import evaluate
from models.offline.replay import DEFAULT_LABEL_DELAY_DAYS, ReplayStep
from models.offline.report import write_report
from models.offline.training import Dataset, build_dataset, period_split, train_model
from models.offline.tuning import TuneConfig, describe, record_tuning
from models.offline.tuning import tune as search
from models.scorer import Scorer
from models.tiers import (
    ALERTED_TIERS,
    DEFAULT_PRECISION_TARGETS,
    resolve_thresholds,
    tier_for_score,
)
from models.transaction import Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RowRules:
    """What the AML layer said about one transaction, before the model's tier is known."""

    #: Hits of the account rules, then of the fan-in rules (the counterparty-keyed stage).
    hits: Sequence[RuleHit] = ()
    verdict: ListVerdict = field(default_factory=ListVerdict)
    fanin_hits: Sequence[RuleHit] = ()

    def decision(self, model_tier: str) -> Decision:
        """Return the decision the two agents reach once the model's tier is known."""
        return final_decision(model_tier, self.hits, self.fanin_hits, self.verdict)


#: Runs the AML rules on one replayed transaction (same state the stream would have).
RulesHook = Callable[[Transaction, ReplayStep], RowRules]


def rules_hook(snapshot: AmlSnapshot) -> RulesHook:
    """Return a hook running ``snapshot``'s rules and lists as the worker would.

    Account rule state lives in the replayed account state; fan-in state per counterparty
    is kept here, as the fan-in agent keeps it in its table. Suppressions expire by event
    time (the worker uses its clock).
    """
    cp_states: dict[str, list[Any]] = {}

    def hook(tx: Transaction, step: ReplayStep) -> RowRules:
        hits, fanin_hits = offline_hits(
            snapshot, step.state, cp_states, tx, step.features, replay=step.replayed
        )
        verdict = snapshot.lists.verdict(tx.account_id, tx.counterparty_id, tx.ts_ms)
        return RowRules(tuple(hits), verdict, tuple(fanin_hits))

    return hook


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


@dataclass(slots=True)
class Backtest:
    """Scores, tiers and figures of one evaluated period."""

    figures: dict[str, Any]
    tx_ids: list[str]
    scores: npt.NDArray[np.float64]
    #: The tier each transaction was alerted at (``MINIMAL``: no alert).
    tiers: list[str]
    labels: npt.NDArray[np.int8]
    rules: list[RowRules] = field(default_factory=list)

    def write_scores(self, path: Path) -> Path:
        """Write one JSON line per evaluated transaction: tx_id, score, tier, label."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for tx_id, score, tier, label in zip(
                self.tx_ids, self.scores.tolist(), self.tiers, self.labels.tolist(), strict=True
            ):
                row = {"tx_id": tx_id, "score": round(score, 6), "tier": tier, "label": label}
                out.write(orjson.dumps(row) + b"\n")
        return path


def rule_figures(
    labels: npt.NDArray[Any],
    model_tiers: Sequence[str],
    rows: Sequence[RowRules],
    alerted: Sequence[bool],
) -> dict[str, dict[str, Any]]:
    """Per rule: hits, frauds among them, precision, and alerts the model alone would miss."""
    out: dict[str, dict[str, Any]] = {}
    for label, model_tier, row, alert in zip(
        labels.tolist(), model_tiers, rows, alerted, strict=True
    ):
        hit_ids = {h.rule_id for h in (*row.verdict.denied, *row.hits, *row.fanin_hits)}
        for rule_id in sorted(hit_ids):
            r = out.setdefault(rule_id, {"hits": 0, "frauds": 0, "added_alerts": 0})
            r["hits"] += 1
            r["frauds"] += int(label)
            if alert and model_tier not in ALERTED_TIERS:
                r["added_alerts"] += 1
    for r in out.values():
        r["precision"] = r["frauds"] / r["hits"] if r["hits"] else None
    return out


def score_period(
    dataset: Dataset,
    rows: slice,
    artifact: ModelArtifact,
    *,
    tier_overrides: Mapping[str, float] | None = None,
    rules: Sequence[RowRules] | None = None,
    top_k: int = 100,
) -> Backtest:
    """Score ``rows`` as the worker would (model, then rules and lists) and compute figures."""
    scores = Scorer(artifact).score(dataset.features[rows])
    thresholds = resolve_thresholds(artifact.thresholds, tier_overrides or {})
    model_tiers = [tier_for_score(s, thresholds) for s in scores.tolist()]
    row_rules = list(rules[rows]) if rules is not None else [RowRules() for _ in model_tiers]
    decisions = [r.decision(t) for t, r in zip(model_tiers, row_rules, strict=True)]
    tiers = [d.tier if d.alert else "MINIMAL" for d in decisions]
    labels = dataset.labels[rows]
    figures = evaluate(
        labels,
        scores,
        tiers,
        dataset.ts_ms[rows],
        dataset.accounts[rows],
        top_k=top_k,
        thresholds=thresholds,
        patterns=dataset.patterns[rows],
    )
    figures["model_version"] = artifact.version
    if rules is not None:
        alerted = [d.alert for d in decisions]
        figures["rules"] = rule_figures(labels, model_tiers, row_rules, alerted)
        figures["model_only_alerts"] = {
            t: sum(1 for m in model_tiers if m == t) for t in ALERTED_TIERS
        }
    return Backtest(figures, list(dataset.tx_ids[rows]), scores, tiers, labels, row_rules)


def _importance(artifact: ModelArtifact) -> dict[str, float]:
    gains = Scorer(artifact).booster.get_score(importance_type="total_gain")
    return {name: float(np.sum(value)) for name, value in gains.items()}


def replay_file(
    records: Iterable[tuple[Mapping[str, Any], int]],
    *,
    until_ms: int | None,
    label_delay_days: float | None,
    rules: RulesHook | None,
    say: Progress,
) -> tuple[Dataset, list[RowRules] | None]:
    """Featurise (and run the rules on) every row up to ``until``, in event-time order."""
    started = time.monotonic()
    hits: list[RowRules] | None = [] if rules is not None else None

    def on_step(row: int, tx: Transaction, step: ReplayStep) -> None:
        assert rules is not None and hits is not None
        hits.append(rules(tx, step))

    def progress(done: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        say(f"replayed {done:,} transactions ({rate:,.0f}/s)")

    dataset = build_dataset(
        records,
        label_delay_days=label_delay_days,
        progress=progress,
        until_ms=until_ms,
        on_step=on_step if rules is not None else None,
    )
    say(f"replayed {len(dataset):,} transactions in {time.monotonic() - started:.1f}s")
    return dataset, hits


def run_backtest(
    records: Iterable[tuple[Mapping[str, Any], int]],
    artifact: ModelArtifact,
    *,
    from_ms: int | None = None,
    until_ms: int | None = None,
    label_delay_days: float | None = DEFAULT_LABEL_DELAY_DAYS,
    top_k: int = 100,
    tier_overrides: Mapping[str, float] | None = None,
    rules: RulesHook | None = None,
    say: Progress = _noop,
) -> Backtest:
    """Replay a labelled file and report what ``artifact`` (and the rules) would have done."""
    dataset, hits = replay_file(
        records, until_ms=until_ms, label_delay_days=label_delay_days, rules=rules, say=say
    )
    lo = 0 if from_ms is None else int(np.searchsorted(dataset.ts_ms, from_ms))
    if lo >= len(dataset):
        raise ValueError("no transactions in the evaluated period")
    result = score_period(
        dataset,
        slice(lo, len(dataset)),
        artifact,
        tier_overrides=tier_overrides,
        rules=hits,
        top_k=top_k,
    )
    result.figures["warm_up_transactions"] = lo
    result.figures["label_delay_days"] = label_delay_days
    return result


def write_backtest_report(
    result: Backtest, artifact: ModelArtifact, out_dir: Path, name: str, title: str
) -> tuple[Path, Path]:
    """Write the JSON figures and the HTML report of a backtest (or a validation period)."""
    context = {
        "model version": artifact.version,
        "trained at": artifact.trained_at,
        "code version": artifact.code_version,
    }
    return write_report(
        out_dir,
        name,
        title,
        result.labels,
        result.scores,
        result.figures,
        _importance(artifact),
        context,
    )


def train_on_records(
    records: Iterable[tuple[Mapping[str, Any], int]],
    output: Path,
    *,
    from_ms: int | None = None,
    until_ms: int | None = None,
    valid_days: float | None = None,
    gap_days: float = 0.0,
    label_delay_days: float | None = DEFAULT_LABEL_DELAY_DAYS,
    targets: Mapping[str, float] | None = None,
    report_dir: Path | None = None,
    top_k: int = 100,
    seed: int = 7,
    nthread: int = 2,
    tune: TuneConfig | None = None,
    params: Mapping[str, Any] | None = None,
    say: Progress = _noop,
) -> tuple[ModelArtifact, Backtest]:
    """Train on a labelled file's period, save the artifact and report its validation.

    With ``tune``, the hyperparameters are searched on time folds of the training period
    first (the validation period stays unseen) and every trial goes into the report;
    otherwise ``params`` (over ``DEFAULT_PARAMS``) are used.
    """
    dataset, _ = replay_file(
        records, until_ms=until_ms, label_delay_days=label_delay_days, rules=None, say=say
    )
    train_rows, valid_rows = period_split(
        dataset.ts_ms, from_ms=from_ms, until_ms=until_ms, valid_days=valid_days, gap_days=gap_days
    )
    say(
        f"training on {train_rows.stop - train_rows.start:,} transactions, validating on "
        f"{valid_rows.stop - valid_rows.start:,}"
    )
    tuning = None
    if tune is not None:
        say(f"tuning on {tune.folds} time folds of the training period")
        tuning = search(dataset, train_rows, tune, seed=seed, nthread=nthread, say=say)
        say(f"tuning chose trial {tuning.best + 1}: {describe(tuning.chosen)}")
    t = {**DEFAULT_PRECISION_TARGETS, **(targets or {})}
    artifact = train_model(
        dataset,
        split=(train_rows, valid_rows),
        params=tuning.chosen if tuning is not None else params,
        seed=seed,
        nthread=nthread,
        high_precision=t["HIGH"],
        medium_precision=t["MEDIUM"],
        low_precision=t["LOW"],
        version_prefix="file-",
    )
    artifact.params["data"] = {
        "from_ms": from_ms,
        "until_ms": until_ms,
        "valid_days": valid_days,
        "gap_days": gap_days,
        "label_delay_days": label_delay_days,
    }
    if tuning is not None:
        record_tuning(artifact, tuning)
    artifact.save(output)
    served = load_artifact(output)
    result = score_period(dataset, valid_rows, served, top_k=top_k)
    if tuning is not None:
        result.figures["tuning"] = tuning.as_dict()
    if report_dir is not None:
        write_backtest_report(
            result, served, report_dir, "train-report", f"Validation of {served.version}"
        )
    return served, result

"""Train on a labelled file and backtest it: figures checked against scikit-learn and by hand.

One tiny model is trained per module (300 simulated accounts, 6 days, one thread).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    roc_auc_score,
)

from models.aml import RuleHit
from models.artifact import ModelArtifact, code_version, load_artifact
from models.counterparty_risk import RISK_FEATURE_NAMES
from models.features import FEATURE_NAMES, N_FEATURES
from models.offline.backtest import (
    Backtest,
    RowRules,
    rule_figures,
    run_backtest,
    score_period,
    train_on_records,
    write_backtest_report,
)
from models.offline.evaluation import evaluate
from models.offline.replay import DAY_MS, ReplayStep
from models.offline.report import bar_plot, hbar_plot, line_plot, plots, render_html
from models.offline.training import DEFAULT_START_MS, Dataset, build_dataset, period_split
from models.scorer import Scorer
from models.simulator import simulate_history
from models.tiers import tier_for_score
from models.transaction import Transaction

SEED, N_ACCOUNTS, DAYS = 3, 300, 6.0
#: Labels reach the counterparty risk one day after their transaction, so that the six-day
#: history does exercise the counterparty features (the default 7 days never would).
DELAY = 1.0
Records = list[tuple[dict[str, Any], int]]
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def records() -> Records:
    history = simulate_history(SEED, N_ACCOUNTS, DAYS, DEFAULT_START_MS)
    return [(h.tx, h.label) for h in history]


#: The defaults before tuning chose others: enough trees, at full class weight, for this
#: small file's counterparty-risk signal to be used.
FIXED_PARAMS = {
    "max_depth": 4,
    "eta": 0.1,
    "num_boost_round": 300,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "class_weight_power": 1.0,
}


@pytest.fixture(scope="module")
def trained(
    records: Records, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelArtifact, Backtest, Path, Path]:
    out = tmp_path_factory.mktemp("train")
    messages: list[str] = []
    artifact, validation = train_on_records(
        records,
        out / "model.json",
        valid_days=2.0,
        gap_days=0.5,
        label_delay_days=DELAY,
        report_dir=out / "report",
        top_k=20,
        nthread=1,
        # Fixed, so that what the tests below read of the model does not move with the
        # tuned defaults (which are chosen on the simulator's data, not on this file).
        params=FIXED_PARAMS,
        say=messages.append,
    )
    assert any(m.startswith("training on ") for m in messages)
    return artifact, validation, out / "model.json", out / "report"


@pytest.fixture(scope="module")
def artifact(trained: tuple[ModelArtifact, Backtest, Path, Path]) -> ModelArtifact:
    return trained[0]


@pytest.fixture(scope="module")
def dataset(records: Records) -> Dataset:
    """The whole file replayed with the default label delay (what the backtest computes)."""
    return build_dataset(records, label_delay_days=DELAY)


@pytest.fixture(scope="module")
def full(records: Records, artifact: ModelArtifact) -> Backtest:
    return run_backtest(records, artifact, label_delay_days=DELAY)


FROM_MS = DEFAULT_START_MS + 3 * DAY_MS


@pytest.fixture(scope="module")
def from_day3(records: Records, artifact: ModelArtifact) -> Backtest:
    return run_backtest(records, artifact, from_ms=FROM_MS, top_k=10, label_delay_days=DELAY)


def big_and_cash_rules(tx: Transaction, step: ReplayStep) -> RowRules:
    """A fake rules hook: amounts of 1000 or more are HIGH, cash-outs LOW."""
    assert len(step.features) == N_FEATURES
    hits = []
    if tx.amount >= 1000:
        hits.append(RuleHit("big", "HIGH", f"amount {tx.amount}"))
    if tx.type == "CASH_OUT":
        hits.append(RuleHit("cash", "LOW", "cash out"))
    return RowRules(tuple(hits))


def cpk_reference(
    ts: Sequence[int],
    accounts: Sequence[str],
    scores: Sequence[float],
    labels: Sequence[int],
    k: int,
) -> float:
    """Card precision@k written independently from the module (plain dicts, per day)."""
    by_day: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(ts):
        by_day[t // DAY_MS].append(i)
    caught: set[str] = set()
    daily = []
    for day in sorted(by_day):
        best: dict[str, float] = {}
        frauds: set[str] = set()
        for i in by_day[day]:
            if accounts[i] in caught:
                continue
            best[accounts[i]] = max(best.get(accounts[i], -1.0), scores[i])
            if labels[i]:
                frauds.add(accounts[i])
        top = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        hits = {a for a, _ in top if a in frauds}
        caught |= hits
        daily.append(len(hits) / k)
    return sum(daily) / len(daily)


# ---------------------------------------------------------------------------------------
# Training on records.


def test_train_writes_a_loadable_artifact(
    trained: tuple[ModelArtifact, Backtest, Path, Path],
) -> None:
    artifact, _, path, _ = trained
    loaded = load_artifact(path)
    assert loaded.version == artifact.version
    assert loaded.version.startswith("file-")
    assert loaded.feature_names == FEATURE_NAMES
    assert loaded.params["data"] == {
        "from_ms": None,
        "until_ms": None,
        "valid_days": 2.0,
        "gap_days": 0.5,
        "label_delay_days": DELAY,
    }
    assert loaded.code_version == artifact.code_version != "unknown"
    assert loaded.thresholds["HIGH"] >= loaded.thresholds["MEDIUM"] >= loaded.thresholds["LOW"]


def test_train_validation_figures_match_sklearn(
    dataset: Dataset, trained: tuple[ModelArtifact, Backtest, Path, Path]
) -> None:
    artifact, validation, _, _ = trained
    _, valid_rows = period_split(dataset.ts_ms, valid_days=2.0, gap_days=0.5)
    assert validation.tx_ids == list(dataset.tx_ids[valid_rows])
    expected = Scorer(artifact).score(dataset.features[valid_rows])
    assert "cp_fraud_rate_30d" in Scorer(artifact).booster.get_score()  # the model uses it
    assert np.array_equal(validation.scores, expected)
    y = dataset.labels[valid_rows]
    assert 0 < y.sum() < y.size
    figures = validation.figures
    assert figures["auc_roc"] == pytest.approx(roc_auc_score(y, expected), abs=1e-12)
    assert figures["average_precision"] == pytest.approx(
        average_precision_score(y, expected), abs=1e-12
    )
    assert artifact.metrics["auc_roc"] == pytest.approx(roc_auc_score(y, expected), abs=1e-9)


def test_train_writes_its_report(trained: tuple[ModelArtifact, Backtest, Path, Path]) -> None:
    artifact, validation, _, report_dir = trained
    doc = orjson.loads((report_dir / "train-report.json").read_bytes())
    assert doc["title"] == f"Validation of {artifact.version}"
    assert doc["context"]["model version"] == artifact.version
    assert doc["figures"]["auc_roc"] == pytest.approx(validation.figures["auc_roc"])
    assert doc["figures"]["card_precision_at_k"]["k"] == 20
    page = (report_dir / "train-report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") >= 5  # PR, ROC, histogram, importance, alert volume
    assert artifact.version in page


def test_train_refuses_a_period_without_both_classes(records: Records, tmp_path: Path) -> None:
    legit_only = [(tx, 0) for tx, _ in records[:3000]]
    with pytest.raises(ValueError, match="both periods need both classes"):
        train_on_records(legit_only, tmp_path / "m.json", valid_days=0.2, nthread=1)
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------------------------------
# Backtest.


def test_backtest_figures_match_independent_computation(
    dataset: Dataset, artifact: ModelArtifact, from_day3: Backtest
) -> None:
    from_ms = FROM_MS
    result = from_day3
    lo = int((dataset.ts_ms < from_ms).sum())
    assert result.figures["warm_up_transactions"] == lo > 0
    assert result.figures["label_delay_days"] == DELAY
    assert result.tx_ids == list(dataset.tx_ids[lo:])
    scores = Scorer(artifact).score(dataset.features[lo:])
    assert np.array_equal(result.scores, scores)
    y = dataset.labels[lo:]
    assert np.array_equal(result.labels, y)
    figures = result.figures
    assert figures["transactions"] == y.size
    assert figures["frauds"] == int(y.sum()) > 0
    assert figures["auc_roc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert figures["average_precision"] == pytest.approx(
        average_precision_score(y, scores), abs=1e-12
    )
    cpk = cpk_reference(
        dataset.ts_ms[lo:].tolist(), dataset.accounts[lo:], scores.tolist(), y.tolist(), 10
    )
    assert figures["card_precision_at_k"]["mean"] == pytest.approx(cpk)
    assert figures["model_version"] == artifact.version
    assert figures["period_ms"][0] >= from_ms
    # Tiers are the artifact's thresholds applied to each score (no rules here).
    assert result.tiers == [tier_for_score(s, artifact.thresholds) for s in scores.tolist()]
    for tier, fig in figures["tiers"].items():
        mask = np.array([t == tier for t in result.tiers])
        assert fig["transactions"] == int(mask.sum())
        assert fig["frauds"] == int((mask & (y == 1)).sum())
    assert "rules" not in figures


def test_backtest_with_rounded_scores_has_ties_and_still_matches_sklearn(
    dataset: Dataset, full: Backtest
) -> None:
    result = full
    y = result.labels
    s = np.round(result.scores, 2)
    assert np.unique(s).size < s.size / 10  # heavy ties
    figures = evaluate(y, s, result.tiers, dataset.ts_ms, dataset.accounts)
    assert figures["auc_roc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert figures["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_warm_up_rows_feed_the_state_of_the_evaluated_period(
    records: Records, artifact: ModelArtifact, full: Backtest, from_day3: Backtest
) -> None:
    from_ms = FROM_MS
    warmed = from_day3
    cold = run_backtest(
        [r for r in records if r[0]["ts"] >= from_ms], artifact, label_delay_days=DELAY
    )
    n = len(warmed.tx_ids)
    assert warmed.tx_ids == full.tx_ids[-n:] == cold.tx_ids
    assert np.array_equal(warmed.scores, full.scores[-n:])
    assert not np.array_equal(warmed.scores, cold.scores)  # history changes the features


def test_until_leaves_later_rows_out(records: Records, artifact: ModelArtifact) -> None:
    until = DEFAULT_START_MS + 2 * DAY_MS
    result = run_backtest(records, artifact, until_ms=until, label_delay_days=DELAY)
    expected = sum(1 for tx, _ in records if tx["ts"] < until)
    assert result.figures["transactions"] == len(result.tx_ids) == expected
    assert result.figures["period_ms"][1] < until


def test_an_empty_evaluated_period_is_refused(records: Records, artifact: ModelArtifact) -> None:
    with pytest.raises(ValueError, match="no transactions in the evaluated period"):
        run_backtest(records[:500], artifact, from_ms=DEFAULT_START_MS + 30 * DAY_MS)


def test_label_delay_changes_only_the_counterparty_features(
    records: Records, dataset: Dataset
) -> None:
    never = build_dataset(records, label_delay_days=None)
    soon = dataset
    cp = [FEATURE_NAMES.index(n) for n in RISK_FEATURE_NAMES]
    other = [i for i in range(N_FEATURES) if i not in cp]
    assert np.isnan(never.features[:, cp]).all()
    assert not np.isnan(soon.features[:, cp]).all()
    assert np.array_equal(never.features[:, other], soon.features[:, other], equal_nan=True)


def test_tier_overrides(dataset: Dataset, artifact: ModelArtifact) -> None:
    overrides = {"HIGH": 1.0, "MEDIUM": 1.0}
    result = score_period(dataset, slice(0, len(dataset)), artifact, tier_overrides=overrides)
    assert result.figures["thresholds"]["HIGH"] == 1.0
    assert "HIGH" not in result.tiers and "MEDIUM" not in result.tiers
    assert result.figures["thresholds"]["LOW"] == artifact.thresholds["LOW"]


def test_rules_hook_escalates_tiers_and_is_reported(
    records: Records, artifact: ModelArtifact, from_day3: Backtest
) -> None:
    calls: list[str] = []

    def rules(tx: Transaction, step: ReplayStep) -> RowRules:
        calls.append(tx.tx_id)
        return big_and_cash_rules(tx, step)

    result = run_backtest(records, artifact, from_ms=FROM_MS, rules=rules, label_delay_days=DELAY)
    plain = from_day3
    assert len(calls) == len(records)  # warm-up rows run the rules too (their state)
    by_id = {tx["tx_id"]: (tx, label) for tx, label in records}
    expected: dict[str, dict[str, int]] = {}
    for tx_id, model_tier, tier in zip(result.tx_ids, plain.tiers, result.tiers, strict=True):
        tx, label = by_id[tx_id]
        fired = []
        if float(tx["amount"]) >= 1000:
            fired.append("big")
            assert tier == "HIGH"
        if tx.get("type") == "CASH_OUT":
            fired.append("cash")
            assert tier in ("HIGH", "MEDIUM", "LOW")
        if not fired:
            assert tier == model_tier
        for rule in fired:
            e = expected.setdefault(rule, {"hits": 0, "frauds": 0, "added_alerts": 0})
            e["hits"] += 1
            e["frauds"] += label
            e["added_alerts"] += model_tier == "MINIMAL"
    rules_fig = result.figures["rules"]
    assert set(rules_fig) == {"big", "cash"}
    for rule, e in expected.items():
        assert e["hits"] > 0
        assert {k: rules_fig[rule][k] for k in e} == e
        assert rules_fig[rule]["precision"] == pytest.approx(e["frauds"] / e["hits"])
    assert result.figures["model_only_alerts"] == {
        t: plain.tiers.count(t) for t in ("HIGH", "MEDIUM", "LOW")
    }
    assert result.figures["tiers"]["HIGH"]["transactions"] >= plain.tiers.count("HIGH")


def test_rule_figures_hand_worked() -> None:
    labels = np.array([1, 0, 1, 0])
    model_tiers = ["HIGH", "MINIMAL", "MINIMAL", "LOW"]
    rows = [
        RowRules((RuleHit("r1", "LOW", "a"), RuleHit("r1", "HIGH", "b"))),  # once per row
        RowRules((RuleHit("r1", "LOW", "c"), RuleHit("r2", "MEDIUM", "d"))),
        RowRules((RuleHit("r2", "HIGH", "e"),)),
        RowRules(),
    ]
    alerted = [True, True, True, True]
    assert rule_figures(labels, model_tiers, rows, alerted) == {
        "r1": {"hits": 2, "frauds": 1, "added_alerts": 1, "precision": 0.5},
        "r2": {"hits": 2, "frauds": 1, "added_alerts": 2, "precision": 0.5},
    }
    # A hit that raised no alert (allow-listed, suppressed) adds none.
    assert (
        rule_figures(labels, model_tiers, rows, [True, False, True, True])["r1"]["added_alerts"]
        == 0
    )


def test_write_scores_one_line_per_evaluated_transaction(
    from_day3: Backtest, tmp_path: Path
) -> None:
    result = from_day3
    path = result.write_scores(tmp_path / "out" / "scores.jsonl")
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(result.tx_ids) == result.figures["transactions"]
    rows = [orjson.loads(line) for line in lines]
    assert all(set(r) == {"tx_id", "score", "tier", "label"} for r in rows)
    assert [r["tx_id"] for r in rows] == result.tx_ids
    assert [r["tier"] for r in rows] == result.tiers
    assert [r["label"] for r in rows] == result.labels.tolist()
    assert np.allclose([r["score"] for r in rows], result.scores, atol=5e-7)
    # Someone else's metric from the file equals the report's.
    y = np.array([r["label"] for r in rows])
    s = np.array([r["score"] for r in rows])
    assert roc_auc_score(y, s) == pytest.approx(result.figures["auc_roc"], abs=1e-3)


def test_backtest_report_json_and_html(
    dataset: Dataset, artifact: ModelArtifact, tmp_path: Path
) -> None:
    rows = slice(0, len(dataset))
    amount = FEATURE_NAMES.index("amount")
    row_rules = [
        RowRules((RuleHit("big", "HIGH", "big"),)) if f[amount] >= 1000 else RowRules()
        for f in dataset.features
    ]
    result = score_period(dataset, rows, artifact, rules=row_rules, top_k=15)
    json_path, html_path = write_backtest_report(
        result, artifact, tmp_path / "r", "backtest", "Backtest of the tiny model"
    )
    assert (json_path.name, html_path.name) == ("backtest.json", "backtest.html")
    doc = orjson.loads(json_path.read_bytes())
    assert doc["title"] == "Backtest of the tiny model"
    assert doc["context"] == {
        "model version": artifact.version,
        "trained at": artifact.trained_at,
        "code version": artifact.code_version,
    }
    assert doc["figures"]["auc_roc"] == pytest.approx(result.figures["auc_roc"])
    assert doc["figures"]["card_precision_at_k"]["k"] == 15
    assert set(doc["figures"]["rules"]) == {"big"}
    page = html_path.read_text(encoding="utf-8")
    assert page.count("<svg") == 5
    assert "<h2>AML rules</h2>" in page
    for row in result.figures["alerts_per_day"]:
        assert f"<td>{row['day']}</td>" in page


def test_report_escapes_hostile_strings(
    records: Records, artifact: ModelArtifact, tmp_path: Path
) -> None:
    def hostile_rules(tx: Transaction, step: ReplayStep) -> RowRules:
        return (
            RowRules((RuleHit('<img src=x onerror="alert(1)">', "LOW", "x"),))
            if tx.amount > 500
            else RowRules()
        )

    evil = replace(artifact, version=HOSTILE, trained_at="</td><b>bold</b>")
    result = run_backtest(records[:2000], evil, rules=hostile_rules)
    _, html_path = write_backtest_report(result, evil, tmp_path, "evil", f"Title {HOSTILE}")
    page = html_path.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


# ---------------------------------------------------------------------------------------
# Report pieces (pure).


def test_render_html_escapes_title_context_and_tiers() -> None:
    figures = {
        "transactions": 3,
        "auc_roc": float("nan"),
        "tiers": {"<x>": {"transactions": 1}},
        "card_precision_at_k": {"k": "<k>", "mean": 0.5, "per_day": []},
    }
    page = render_html(HOSTILE, figures, ["<svg></svg>"], {"<ctx>": "<value>"})
    assert "<script>" not in page and "<x>" not in page and "<ctx>" not in page
    assert "&lt;value&gt;" in page and "&lt;k&gt;" in page
    assert "<svg></svg>" in page  # the plots themselves are inserted as they are
    assert "<td>-</td>" in page  # NaN AUC shows as "-"


def test_plots_are_svg_with_one_class_or_both() -> None:
    y = np.array([0, 1, 0, 1, 0])
    s = np.array([0.1, 0.9, 0.3, 0.6, 0.2])
    figures = {"alerts_per_day": [{"day": "2024-03-01", "HIGH": 1, "MEDIUM": 0, "LOW": 2}]}
    both = plots(y, s, figures, {"amount": 2.0, "<f>": 1.0})
    assert len(both) == 5
    assert all(p.startswith("<figure><svg") and p.endswith("</figure>") for p in both)
    assert "<f>" not in "".join(both)
    one_class = plots(np.zeros(5), s, figures, {})
    assert len(one_class) == 2  # histogram and alert volume; no PR / ROC without both


def test_line_plot_skips_non_finite_points() -> None:
    svg = line_plot("t", "x", "y", [("s", [0.0, float("nan"), 1.0], [0.0, 0.5, 1.0], "#000")])
    points = svg.split('points="')[1].split('"')[0].split()
    assert len(points) == 2
    assert "nan" not in svg


def test_line_plot_thins_long_series() -> None:
    xs = np.linspace(0, 1, 5000)
    svg = line_plot("t", "x", "y", [("s", xs, xs, "#000")])
    points = svg.split('points="')[1].split('"')[0].split()
    assert 100 < len(points) <= 400


def test_bar_and_hbar_plots() -> None:
    assert "<svg" in bar_plot("t", "x", "y", [], [("a", [], "#000")])
    svg = bar_plot("t", "x", "y", ["d1", "d2"], [("a", [1, 0], "#000"), ("b", [2, 3], "#111")])
    assert svg.count("<rect") == 1 + 3  # frame + the three non-zero segments
    assert "max 3" in svg
    items = [(f"f{i}", float(i)) for i in range(30)]
    svg = hbar_plot("importance", items)
    assert ">f15<" in svg and ">f14<" not in svg  # the top 15 only
    assert svg.count("<rect") == 15


# ---------------------------------------------------------------------------------------
# Dataset building and time periods (models.offline.training).


def test_build_dataset_until_and_on_step(records: Records) -> None:
    until = DEFAULT_START_MS + DAY_MS
    seen: list[tuple[int, str, list[float]]] = []
    dataset = build_dataset(
        records,
        until_ms=until,
        on_step=lambda row, tx, step: seen.append((row, tx.tx_id, step.features)),
    )
    expected = sorted((tx for tx, _ in records if tx["ts"] < until), key=lambda tx: tx["ts"])
    assert len(dataset) == len(expected) == len(seen)
    assert [row for row, _, _ in seen] == list(range(len(seen)))
    assert [tx_id for _, tx_id, _ in seen] == list(dataset.tx_ids)
    assert list(dataset.tx_ids) == [tx["tx_id"] for tx in expected]
    assert int(dataset.ts_ms.max()) < until
    matrix = np.asarray([f for _, _, f in seen], dtype=np.float32)
    assert np.array_equal(matrix, dataset.features, equal_nan=True)


def test_build_dataset_orders_by_event_time_stably() -> None:
    base = {"account_id": "a", "amount": 1.0}
    recs: Records = [
        ({**base, "tx_id": "late", "ts": DEFAULT_START_MS + 10}, 0),
        ({**base, "tx_id": "tie-1", "ts": DEFAULT_START_MS}, 0),
        ({**base, "tx_id": "tie-2", "ts": DEFAULT_START_MS}, 1),
    ]
    dataset = build_dataset(recs)
    assert dataset.tx_ids == ("tie-1", "tie-2", "late")
    assert dataset.labels.tolist() == [0, 1, 0]
    assert dataset.accounts == ("a", "a", "a")


def test_build_dataset_errors_name_the_record() -> None:
    good = {"tx_id": "t", "ts": DEFAULT_START_MS, "account_id": "a", "amount": 1.0}
    with pytest.raises(ValueError, match=r"record 1: label must be 0 or 1"):
        build_dataset([(good, 0), (good, 2)])
    with pytest.raises(ValueError, match=r"record 0: invalid transaction \(amount"):
        build_dataset([({**good, "amount": "x"}, 0)])


HOURS = np.array([DEFAULT_START_MS + i * 3_600_000 for i in range(10 * 24)], dtype=np.int64)


def test_period_split_valid_days_and_gap() -> None:
    train, valid = period_split(HOURS, valid_days=2.0, gap_days=1.0)
    hi = int(HOURS[-1]) + 1
    assert train.start == 0
    assert HOURS[train.stop - 1] < hi - 3 * DAY_MS <= HOURS[train.stop]
    assert HOURS[valid.start - 1] < hi - 2 * DAY_MS <= HOURS[valid.start]
    assert valid.stop == HOURS.size
    assert valid.stop - valid.start == 48  # the last two days, hourly
    assert valid.start - train.stop == 24  # the one-day gap


def test_period_split_default_fraction() -> None:
    train, valid = period_split(HOURS)
    span = int(HOURS[-1]) + 1 - int(HOURS[0])
    start = int(HOURS[-1]) + 1 - int(span * 0.25)
    assert (train.start, train.stop) == (0, valid.start)
    assert valid.start == int(np.searchsorted(HOURS, start))


def test_period_split_from_and_until() -> None:
    from_ms = DEFAULT_START_MS + 2 * DAY_MS
    until_ms = DEFAULT_START_MS + 8 * DAY_MS
    train, valid = period_split(HOURS, from_ms=from_ms, until_ms=until_ms, valid_days=1.0)
    assert HOURS[train.start] == from_ms and HOURS[train.start - 1] < from_ms
    assert valid.stop == int(np.searchsorted(HOURS, until_ms))
    assert HOURS[valid.start] == until_ms - DAY_MS
    assert train.stop == valid.start


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_ms": DEFAULT_START_MS + DAY_MS, "until_ms": DEFAULT_START_MS}, "after --from"),
        ({"valid_days": 9.0, "gap_days": 1.0}, "too short"),
        ({"valid_days": 0.0}, "too short"),
        ({"valid_days": 2.0, "from_ms": DEFAULT_START_MS + int(7.99 * DAY_MS)}, "too short"),
        # Training would be [168.1 h, 168.6 h): between two hourly rows.
        (
            {
                "valid_days": 2.0,
                "gap_days": 22.4 / 24,
                "from_ms": DEFAULT_START_MS + int(168.1 * 3_600_000),
            },
            "holds no transactions",
        ),
        ({"valid_days": 1.0, "until_ms": DEFAULT_START_MS + 20 * DAY_MS}, "holds no transactions"),
    ],
)
def test_period_split_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        period_split(HOURS, **kwargs)


def test_period_split_of_nothing() -> None:
    with pytest.raises(ValueError, match="no transactions"):
        period_split(np.array([], dtype=np.int64))


def test_nan_free_figures_are_json(
    trained: tuple[ModelArtifact, Backtest, Path, Path],
) -> None:
    figures = trained[1].figures
    assert not any(
        isinstance(v, float) and math.isnan(v)
        for v in (figures["auc_roc"], figures["average_precision"])
    )


# ---------------------------------------------------------------------------------------
# The artifact's code version.


def test_code_version_is_stored_and_loaded(artifact: ModelArtifact, tmp_path: Path) -> None:
    digest = hashlib.sha256(",".join(FEATURE_NAMES).encode()).hexdigest()[:8]
    assert code_version().endswith(f"+features.{digest}")
    assert artifact.code_version == code_version()
    path = replace(artifact, code_version="1.2.3+features.cafe0000").save(tmp_path / "a.json")
    assert orjson.loads(path.read_bytes())["code_version"] == "1.2.3+features.cafe0000"
    assert load_artifact(path).code_version == "1.2.3+features.cafe0000"
    doc = orjson.loads(path.read_bytes())
    del doc["code_version"]
    path.write_bytes(orjson.dumps(doc))
    assert load_artifact(path).code_version == "unknown"  # older artifacts predate it


def test_a_pattern_column_reaches_the_dataset_and_the_backtest(artifact: ModelArtifact) -> None:
    history = simulate_history(SEED, N_ACCOUNTS, 2.0, DEFAULT_START_MS, fraud_rate=0.05)
    named = [({**h.tx, "pattern": h.pattern}, h.label) for h in history]
    dataset = build_dataset(named, label_delay_days=DELAY)
    by_tx = {h.tx["tx_id"]: h.pattern for h in history}
    assert list(dataset.patterns) == [by_tx[t] for t in dataset.tx_ids]
    # Without the column, rows are only "fraud" or "legit" (and no pattern is reported).
    plain = build_dataset([(h.tx, h.label) for h in history], label_delay_days=DELAY)
    assert set(plain.patterns) == {"fraud", "legit"}
    assert "patterns" not in score_period(plain, slice(0, len(plain)), artifact).figures
    result = score_period(dataset, slice(0, len(dataset)), artifact)
    figures = result.figures["patterns"]
    frauds = [
        p for p, label in zip(dataset.patterns, dataset.labels.tolist(), strict=True) if label
    ]
    assert {p: v["frauds"] for p, v in figures.items()} == dict(
        sorted({p: frauds.count(p) for p in set(frauds)}.items())
    )
    for pattern, v in figures.items():
        alerted = [
            t
            for p, t, label in zip(
                dataset.patterns, result.tiers, result.labels.tolist(), strict=True
            )
            if p == pattern and label and t != "MINIMAL"
        ]
        assert v["HIGH"] + v["MEDIUM"] + v["LOW"] == len(alerted)
        assert v["recall"] == len(alerted) / v["frauds"]
    page = render_html("t", result.figures, [], {})
    assert "<h2>Recall per fraud pattern</h2>" in page
    assert all(f"<td>{p}</td>" in page for p in figures)

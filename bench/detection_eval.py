"""Detection quality of a checkout on one labelled simulated data file: before and after.

The same file evaluates old and new code: the file is written once (cached by its
parameters) with *this* checkout's simulator, which names each row's fraud pattern; then
``faust -A app train --data`` and ``faust -A app backtest --data --scores-out`` of the
checkout under test (``--repo DIR``: run in DIR with DIR's ``.venv``) train and score it.
Recall per pattern is computed here from the scores and the file's ``pattern`` column, so
it works on code whose backtest does not report patterns.

Protocol (the issue's: label delay 7 days, a 7-day gap, one test week), on 5 weeks:
days 0-7 only warm up the account state; ``train`` fits days 7-17 and validates (early
stopping, calibration, tier thresholds) on days 17-21; days 21-28 are the gap; the
backtest scores days 28-35 (after replaying everything before as warm-up).

Usage: ``python bench/detection_eval.py [--repo DIR] [--accounts 3000] [--seed 7]
[--train-arg=--tune ...]``. Prints one table; all files go to ``--work-dir``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY_MS = 86_400_000
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ALERTED = ("HIGH", "MEDIUM", "LOW")
#: (warm-up end, validation days, train end, test start, test end) in days from the start.
TRAIN_FROM, VALID_DAYS, TRAIN_UNTIL, TEST_FROM, TEST_UNTIL = 7, 4, 21, 28, 35


def data_file(cache: Path, seed: int, accounts: int, fraud_rate: float, aml_rate: float) -> Path:
    """Return the labelled data file for these parameters, simulating it the first time."""
    from models.offline.datafile import write_labelled
    from models.simulator import simulate_history

    name = f"sim-s{seed}-a{accounts}-d{TEST_UNTIL}-f{fraud_rate:g}-aml{aml_rate:g}.jsonl.gz"
    path = cache / name
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    history = simulate_history(
        seed, accounts, TEST_UNTIL, START_MS, fraud_rate=fraud_rate, aml_rate=aml_rate
    )
    partial = path.with_name(f"partial-{path.name}")  # still .gz: write_labelled compresses
    rows = write_labelled(partial, ((r.tx, r.label, r.pattern) for r in history))
    partial.rename(path)
    print(f"simulated {rows:,} transactions in {time.monotonic() - started:.0f}s: {path}")
    return path


def patterns_of(path: Path, from_ms: int, until_ms: int) -> dict[str, str]:
    """Return tx_id -> pattern of the rows in ``[from_ms, until_ms)``."""
    out: dict[str, str] = {}
    with gzip.open(path, "rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            if from_ms <= row["ts"] < until_ms:
                out[row["tx_id"]] = row.get("pattern", "fraud" if row["label"] else "legit")
    return out


def run(repo: Path, args: list[str], env: dict[str, str]) -> float:
    """Run ``faust -A app ARGS`` of the checkout in ``repo``; return its wall time."""
    faust = repo / ".venv" / "bin" / "faust"
    started = time.monotonic()
    done = subprocess.run(
        [str(faust), "-A", "app", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    took = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"faust {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    return took


def per_pattern(scores: Path, patterns: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per fraud pattern: frauds, caught per alerted tier, recall (alerted at any tier)."""
    caught: dict[str, Counter[str]] = {}
    with open(scores, "rb") as handle:
        for line in handle:
            row = orjson.loads(line)
            if not row["label"]:
                continue
            pattern = patterns.get(row["tx_id"], "fraud")
            caught.setdefault(pattern, Counter())[row["tier"]] += 1
    out: dict[str, dict[str, Any]] = {}
    for pattern in sorted(caught):
        c = caught[pattern]
        frauds = sum(c.values())
        out[pattern] = {
            "frauds": frauds,
            **{t: c[t] for t in ALERTED},
            "recall": sum(c[t] for t in ALERTED) / frauds,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="Checkout to evaluate.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    parser.add_argument("--aml-rate", type=float, default=0.002)
    parser.add_argument("--cache", type=Path, default=REPO / ".vigil-data" / "detection-eval")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--train-arg", action="append", default=[], help="Extra train option.")
    a = parser.parse_args()
    repo = a.repo.resolve()
    data = data_file(a.cache, a.seed, a.accounts, a.fraud_rate, a.aml_rate).resolve()
    work = (a.work_dir or Path(tempfile.mkdtemp(prefix="vigil-detection-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIGIL_DATA_DIR": str(work / "vigil-data")}
    env.pop("VIGIL_MODEL_PATH", None)

    def day(n: int) -> str:
        return str(START_MS + n * DAY_MS)

    model = work / "model.json"
    train_s = run(
        repo,
        [
            "train",
            "--data",
            str(data),
            "--output",
            str(model),
            "--from",
            day(TRAIN_FROM),
            "--until",
            day(TRAIN_UNTIL),
            "--valid-days",
            str(VALID_DAYS),
            "--seed",
            str(a.seed),
            "--report-dir",
            str(work / "train-report"),
            *a.train_arg,
        ],
        env,
    )
    scores = work / "scores.jsonl"
    backtest_s = run(
        repo,
        [
            "backtest",
            "--data",
            str(data),
            "--model",
            str(model),
            "--from",
            day(TEST_FROM),
            "--until",
            day(TEST_UNTIL),
            "--out-dir",
            str(work / "backtest"),
            "--scores-out",
            str(scores),
        ],
        env,
    )
    figures = orjson.loads((work / "backtest" / "backtest.json").read_bytes())["figures"]
    recall = per_pattern(scores, patterns_of(data, START_MS + TEST_FROM * DAY_MS, 1 << 62))
    days = figures.get("alerts_per_day", [])
    per_day = {t: float(np.mean([d[t] for d in days])) if days else 0.0 for t in ALERTED}
    tx_per_day = float(np.mean([d["transactions"] for d in days])) if days else 0.0
    alerted = sum(per_day.values())

    print()
    print(f"checkout   {repo}")
    print(
        f"data       {data.name} (test week: {figures['transactions']:,} transactions, "
        f"{figures['frauds']:,} frauds)"
    )
    print(f"AUC        {figures['auc_roc']:.4f}")
    print(f"AP         {figures['average_precision']:.4f}")
    print(f"card P@100 {figures['card_precision_at_k']['mean']:.4f}")
    print(f"train      {train_s:.0f}s (backtest {backtest_s:.0f}s)")
    print(
        "alerts/day "
        + ", ".join(f"{t} {per_day[t]:.1f}" for t in ALERTED)
        + f" (of {tx_per_day:,.0f} tx/day: {alerted / max(tx_per_day, 1.0):.2%} alerted)"
    )
    print()
    print(f"{'pattern':<24}{'frauds':>8}{'HIGH':>7}{'MEDIUM':>8}{'LOW':>6}{'recall':>8}")
    for pattern, r in recall.items():
        print(
            f"{pattern:<24}{r['frauds']:>8}{r['HIGH']:>7}{r['MEDIUM']:>8}{r['LOW']:>6}"
            f"{r['recall']:>8.3f}"
        )
    print(f"\nfiles in {work}")


if __name__ == "__main__":
    main()

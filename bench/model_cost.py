"""CPU cost of serving a model artifact: XGBoost scores per row and SHAP reasons per alert.

Usage: ``python bench/model_cost.py ARTIFACT [ARTIFACT ...]``. Prints, per artifact, its
trees, the time to score a 500-row batch per row (best of 30) and the time to explain one
alerted row in a batch of 20 (best of 10): what a worker spends per transaction on the
model, and per alert on its reasons. The rows are random (tree walks cost the same).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.artifact import load_artifact  # noqa: E402
from models.scorer import Scorer  # noqa: E402


def best_of(runs: int, work: Callable[[], object]) -> float:
    """Return the shortest wall time of ``runs`` calls of ``work``."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def cost(name: str) -> str:
    """Return one artifact's line: trees, score time per row, reasons time per alert."""
    artifact = load_artifact(Path(name))
    scorer = Scorer(artifact)
    rows = np.random.default_rng(1).random((500, len(artifact.feature_names)))
    rows = (rows * 10).astype(np.float32)
    scorer.score(rows)
    score_s = best_of(30, lambda: scorer.score(rows))
    explain_s = best_of(10, lambda: scorer.explain(rows[:20], 3))
    model = orjson.loads(artifact.booster_json)["learner"]["gradient_booster"]["model"]
    return (
        f"{name}: {len(model['trees'])} trees, score {score_s / 500 * 1e6:.1f} us/row, "
        f"reasons {explain_s / 20 * 1e6:.0f} us/alert"
    )


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/model_cost.py ARTIFACT [ARTIFACT ...]")
    for name in sys.argv[1:]:
        print(cost(name))


if __name__ == "__main__":
    main()

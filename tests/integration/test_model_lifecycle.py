"""Model lifecycle on the real broker: delayed labels, feature parity, challenger, hot swap."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.artifact import ModelArtifact, load_artifact
from models.features import FEATURE_NAMES
from models.labels import Label
from models.offline.replay import LabelEvent, Replayer
from models.scorer import Scorer
from models.simulator import Simulator
from models.transaction import transaction_from_dict
from tests.integration.kafka_io import consume, produce

pytestmark = pytest.mark.integration

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def _variant(source: Path, target: Path, version: str, shift: float = 0.0) -> ModelArtifact:
    """Save a copy of ``source`` under another version (calibration shifted by ``shift``)."""
    artifact = load_artifact(source)
    artifact.version = version
    artifact.calibration = {**artifact.calibration, "b": artifact.calibration["b"] + shift}
    artifact.save(target)
    return artifact


def _sequence(n: int) -> list[dict[str, Any]]:
    """A generated stream with labelled patterns, in event-time order."""
    events = Simulator(seed=23, fraud_rate=0.05).events(START_MS, 5.0)
    return [next(events).tx for _ in range(n)]


def _labels(txs: list[dict[str, Any]]) -> list[Label]:
    """Verdicts on earlier transactions of some counterparties, arriving before the stream."""
    cps = sorted({tx["counterparty_id"] for tx in txs if tx.get("counterparty_id")})[:24]
    labels = []
    offsets = (2 * HOUR_MS, 30 * HOUR_MS, 3 * DAY_MS, 20 * DAY_MS, 40 * DAY_MS)
    for i, cp in enumerate(cps):
        for j in range(1 + i % 3):
            labels.append(
                Label(
                    tx_id=f"old-{i}-{j}",
                    label="fraud" if (i + j) % 3 == 0 else "legit",
                    ts_ms=START_MS - offsets[(i + j) % len(offsets)],
                    source="test",
                    counterparty_id=cp,
                )
            )
    return labels


def _at_least(n: int) -> Any:
    return lambda records: len(records) >= n


def _as_feature_dict(values: list[float]) -> dict[str, float | None]:
    return {n: (None if math.isnan(v) else v) for n, v in zip(FEATURE_NAMES, values, strict=True)}


def test_labels_parity_challenger_and_hot_swap(
    broker: Any, worker_env: dict[str, str], start_worker: Any, trained_model: Path, tmp_path: Path
) -> None:
    champion_path = tmp_path / "champion.json"
    shutil.copy(trained_model, champion_path)
    champion = load_artifact(champion_path)
    challenger = _variant(trained_model, tmp_path / "challenger.json", "challenger-1", -1.5)
    env = {
        **worker_env,
        "VIGIL_MODEL_PATH": str(champion_path),
        "VIGIL_CHALLENGER_MODEL_PATH": str(tmp_path / "challenger.json"),
        "VIGIL_MODEL_RELOAD_S": "0.5",
        # Every transaction becomes an alert, so every feature vector can be compared.
        "VIGIL_TIER_LOW": "0",
    }
    start_worker(env)
    bootstrap = broker.bootstrap

    # 1. Delayed labels reach the counterparty-risk table (one invalid one is dead-lettered).
    txs = _sequence(300)
    labels = _labels(txs)
    produce(
        bootstrap,
        env["VIGIL_TOPIC_LABELS"],
        [(lb.tx_id.encode(), lb.to_bytes()) for lb in labels]
        + [(b"bad", b'{"tx_id": "x", "label": "maybe", "ts": 1}')],
    )
    changelog = f"{env['VIGIL_APP_ID']}-counterparty_risk-changelog"
    consume(bootstrap, changelog, lambda recs: len(recs) >= len(labels))
    dead = consume(bootstrap, env["VIGIL_TOPIC_DEADLETTER"], lambda recs: len(recs) >= 1)
    assert dict(dead[0].headers)["vigil.error.field"] == b"label"

    # 2. The stream's features equal the offline replay's, value for value.
    produce(
        bootstrap,
        env["VIGIL_TOPIC_TRANSACTIONS"],
        [(tx["account_id"].encode(), orjson.dumps(tx)) for tx in txs],
    )
    alerts: dict[str, dict[str, Any]] = {}

    def all_alerts(_: list[Any]) -> bool:
        for tier in ("HIGH", "MEDIUM", "LOW"):
            for rec in consume(bootstrap, env[f"VIGIL_TOPIC_ALERTS_{tier}"], lambda _: False, 1):
                alert = orjson.loads(rec.value)
                alerts[alert["tx_id"]] = alert
        return len(alerts) >= len(txs)

    deadline = time.monotonic() + 90
    while not all_alerts([]) and time.monotonic() < deadline:
        pass
    assert len(alerts) == len(txs)

    replayer = Replayer(label_delay_ms=None)
    for lb in labels:
        assert lb.counterparty_id is not None
        replayer.add_label(LabelEvent(lb.ts_ms, lb.counterparty_id, lb.tx_id, lb.is_fraud))
    offline: dict[str, list[float]] = {}
    for tx in txs:
        offline[tx["tx_id"]] = replayer.step(transaction_from_dict(tx)).features
    with_risk = 0
    for tx_id, values in offline.items():
        assert alerts[tx_id]["features"] == _as_feature_dict(values), tx_id
        with_risk += not math.isnan(values[FEATURE_NAMES.index("cp_fraud_rate_30d")])
    assert with_risk > 0, "no transaction saw a counterparty with labels"

    # 3. The challenger is scored beside the champion and recorded, never alerted on.
    scored = consume(bootstrap, env["VIGIL_TOPIC_SCORED"], lambda recs: len(recs) >= len(txs))
    records = {r["tx_id"]: r for r in (orjson.loads(rec.value) for rec in scored)}
    rows = np.asarray([offline[tx["tx_id"]] for tx in txs], dtype=np.float32)
    champion_scores = Scorer(champion).score(rows)
    challenger_scores = Scorer(challenger).score(rows)
    for i, tx in enumerate(txs):
        record = records[tx["tx_id"]]
        assert record["model_version"] == champion.version
        assert record["challenger"]["model_version"] == "challenger-1"
        assert record["challenger"]["score"] == round(float(challenger_scores[i]), 6)
        assert record["score"] == round(float(champion_scores[i]), 6)
        assert alerts[tx["tx_id"]]["score"] == record["score"]
        assert "challenger" not in alerts[tx["tx_id"]]
    assert not np.allclose(champion_scores, challenger_scores)

    # 4. Hot swap: a new artifact file is served without a restart, and records name it.
    _variant(trained_model, champion_path, "swapped-2")
    probe = Simulator(seed=99).events(START_MS + 10 * DAY_MS, 5.0)
    versions: list[str] = []
    deadline = time.monotonic() + 60
    sent = 0
    while "swapped-2" not in versions and time.monotonic() < deadline:
        batch = [next(probe).tx for _ in range(5)]
        produce(
            bootstrap,
            env["VIGIL_TOPIC_TRANSACTIONS"],
            [(tx["account_id"].encode(), orjson.dumps(tx)) for tx in batch],
        )
        sent += len(batch)
        recs = consume(bootstrap, env["VIGIL_TOPIC_SCORED"], _at_least(len(txs) + sent))
        versions = [orjson.loads(r.value)["model_version"] for r in recs]
        time.sleep(0.3)
    assert "swapped-2" in versions
    assert set(versions) <= {champion.version, "swapped-2"}
    # Once swapped, everything is scored by the new model.
    after = [next(probe).tx for _ in range(20)]
    produce(
        bootstrap,
        env["VIGIL_TOPIC_TRANSACTIONS"],
        [(tx["account_id"].encode(), orjson.dumps(tx)) for tx in after],
    )
    wanted = {tx["tx_id"] for tx in after}
    recs = consume(
        bootstrap,
        env["VIGIL_TOPIC_SCORED"],
        lambda r: wanted <= {orjson.loads(x.value)["tx_id"] for x in r},
    )
    late = [orjson.loads(r.value) for r in recs]
    assert {r["model_version"] for r in late if r["tx_id"] in wanted} == {"swapped-2"}

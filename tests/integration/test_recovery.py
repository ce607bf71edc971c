"""Account state survives the loss of a worker's disk: it comes back from the changelog."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_io import consume, produce
from tests.integration.scenario import build_scenario
from tests.integration.tables import read_accounts

pytestmark = pytest.mark.integration


def _scored_ids(broker: Any, env: dict[str, str], n: int) -> list[str]:
    """Read scored tx ids until ``n`` distinct ones arrived (replays may repeat some)."""
    ids: list[str] = []

    def enough(records: list[Any]) -> bool:
        ids[len(ids) :] = [orjson.loads(r.value)["tx_id"] for r in records[len(ids) :]]
        return len(set(ids)) >= n

    consume(broker.bootstrap, env["VIGIL_TOPIC_SCORED"], enough)
    return ids


def test_new_worker_with_empty_disk_restores_accounts(
    broker: Any, worker_env: dict[str, str], start_worker: Any, tmp_path: Path
) -> None:
    sc = build_scenario()
    first = start_worker(worker_env, "first")
    produce(broker.bootstrap, worker_env["VIGIL_TOPIC_TRANSACTIONS"], sc.records)
    assert len(set(_scored_ids(broker, worker_env, len(sc.valid)))) == len(sc.valid)
    assert first.stop() == 0
    before = read_accounts(Path(worker_env["VIGIL_DATA_DIR"]))
    assert len(before) > 10

    fresh = dict(worker_env, VIGIL_DATA_DIR=str(tmp_path / "fresh-disk"))
    second = start_worker(fresh, "second")  # ready = recovery finished
    assert second.stop() == 0
    after = read_accounts(Path(fresh["VIGIL_DATA_DIR"]))
    assert after == before


def test_crash_mid_stream_loses_nothing_and_counts_nothing_twice(
    broker: Any, worker_env: dict[str, str], start_worker: Any, tmp_path: Path
) -> None:
    sc = build_scenario()
    first = start_worker(worker_env, "first")
    third = len(sc.records) // 3
    half = len(sc.records) // 2
    topic = worker_env["VIGIL_TOPIC_TRANSACTIONS"]
    produce(broker.bootstrap, topic, sc.records[:third])
    consume(broker.bootstrap, worker_env["VIGIL_TOPIC_SCORED"], lambda r: len(r) >= third)
    time.sleep(2.5)  # past VIGIL_COMMIT_INTERVAL_S: the first third is committed
    produce(broker.bootstrap, topic, sc.records[third:half])
    consume(broker.bootstrap, worker_env["VIGIL_TOPIC_SCORED"], lambda r: len(r) >= third + 5)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)  # no clean shutdown, no final commit
    first.proc.wait()
    first.proc = None

    produce(broker.bootstrap, worker_env["VIGIL_TOPIC_TRANSACTIONS"], sc.records[half:])
    fresh = dict(worker_env, VIGIL_DATA_DIR=str(tmp_path / "after-crash"))
    second = start_worker(fresh, "second")
    ids = _scored_ids(broker, worker_env, len(sc.valid))
    assert set(ids) == set(sc.valid)  # nothing lost (replays may appear twice downstream)
    assert second.stop() == 0

    states = read_accounts(Path(fresh["VIGIL_DATA_DIR"]))
    per_account: dict[str, int] = {}
    for tx in sc.valid.values():
        per_account[tx["account_id"]] = per_account.get(tx["account_id"], 0) + 1
    assert {a: s.n for a, s in states.items()} == per_account

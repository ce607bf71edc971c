"""A worker stopped under load (kill -9 or SIGTERM) comes back, and its state is one pass.

800 tx/s over 400 accounts (plus one busy account with 5 % of the traffic) on 4 partitions.
Before the fixes a restarted worker logged "Ready" and never fetched again (the drain loop
ended on a cancelled queue put when the flow resumed after recovery), and an account with
more than 32 redelivered transactions was counted twice.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.kafka_io import consume
from tests.integration.tables import read_accounts

pytestmark = pytest.mark.integration

RATE_PER_S = 800
ACCOUNTS = 400
LOAD_S = 20.0
BUSY = "acc-busy"
BASE_MS = 1_709_542_800_000  # 2024-03-04 09:00 UTC


class SteadyLoad(threading.Thread):
    """Send valid transactions at a steady rate for ``LOAD_S`` seconds, keyed by account."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.sent: list[dict[str, Any]] = []

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            started = time.monotonic()
            i = 0
            while (elapsed := time.monotonic() - started) < LOAD_S:
                while i < int(elapsed * RATE_PER_S):
                    account = BUSY if i % 20 == 0 else f"acc-{i % ACCOUNTS}"
                    tx = {
                        "tx_id": f"tx-{i}",
                        "ts": BASE_MS + i * 50,
                        "account_id": account,
                        "amount": float(10 + i % 97),
                        "counterparty_id": f"cp-{i % 50}",
                        "type": "TRANSFER",
                    }
                    await producer.send(self.topic, orjson.dumps(tx), key=account.encode())
                    self.sent.append(tx)
                    i += 1
                await asyncio.sleep(0.01)
            await producer.flush()
        finally:
            await producer.stop()


def _scored(broker: Any, env: dict[str, str], until: Any, timeout_s: float) -> list[dict[str, Any]]:
    records = consume(broker.bootstrap, env["VIGIL_TOPIC_SCORED"], until, timeout_s=timeout_s)
    return [orjson.loads(r.value) for r in records]


def _restart_under_load(
    broker: Any, env: dict[str, str], start_worker: Any, stop: signal.Signals
) -> tuple[SteadyLoad, list[dict[str, Any]]]:
    first = start_worker(env, "first")
    load = SteadyLoad(broker.bootstrap, env["VIGIL_TOPIC_TRANSACTIONS"])
    load.start()
    # Stop the worker while the load flows, once it has scored a good share of it.
    before = len(_scored(broker, env, lambda r: len(r) >= 4_000, timeout_s=60))
    assert first.proc is not None
    first.proc.send_signal(stop)
    first.proc.wait(timeout=60)
    first.proc = None
    second = start_worker(env, "second")
    load.join()
    expected = {tx["tx_id"] for tx in load.sent}
    assert 0 < before < len(expected), "the fault must hit while load is flowing"

    def all_scored(records: list[Any]) -> bool:
        return len(records) >= len(expected) and expected <= {
            orjson.loads(r.value)["tx_id"] for r in records
        }

    scored = _scored(broker, env, all_scored, timeout_s=180)
    assert second.stop() == 0
    return load, scored


def _assert_one_pass(load: SteadyLoad, scored: list[dict[str, Any]], data_dir: Path) -> None:
    assert {tx["tx_id"] for tx in load.sent} <= {s["tx_id"] for s in scored}  # nothing lost
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, float] = defaultdict(float)
    for tx in load.sent:
        counts[tx["account_id"]] += 1
        sums[tx["account_id"]] += tx["amount"]
    states = read_accounts(data_dir)
    assert {a: s.n for a, s in states.items()} == counts  # nothing counted twice
    for account, state in states.items():
        assert state.mean * state.n == pytest.approx(sums[account], rel=1e-9)


def test_kill_9_before_any_commit_under_load_recovers_and_counts_every_tx_once(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    # No commit before the kill: everything the first worker scored is redelivered, far
    # more than the 32 transaction ids an account remembers.
    env = dict(worker_env, VIGIL_COMMIT_INTERVAL_S="3600")
    load, scored = _restart_under_load(broker, env, start_worker, signal.SIGKILL)
    busy = [s["tx_id"] for s in scored if s["account_id"] == BUSY]
    redelivered = len(busy) - len(set(busy))
    assert redelivered > 32, "the busy account's redelivery must exceed the id memory"
    _assert_one_pass(load, scored, Path(env["VIGIL_DATA_DIR"]))


# A SIGTERM under load and the restart after it: test_faults.py's sigterm-then-kill plan, on
# both brokers.

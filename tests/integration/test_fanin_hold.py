"""Forwards to the fan-in stage are held back, but never past a commit of their input."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.integration.kafka_io import consume, produce
from tests.integration.scenario import BASE_MS
from tests.integration.test_pipeline import _committed

pytestmark = pytest.mark.integration


def test_a_commit_hands_over_held_forwards_first(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    env = dict(worker_env, VIGIL_FANIN_LINGER_MS="600000")  # only a commit releases them
    start_worker(env)
    transfers: list[dict[str, Any]] = [
        {
            "tx_id": f"hold-{i}",
            "ts": BASE_MS + i * 1000,
            "account_id": f"hold-acc-{i % 7}",
            "amount": 150.0 + i,
            "type": "TRANSFER",
            "counterparty_id": f"hold-cp-{i % 3}",
        }
        for i in range(40)
    ]
    topic = env["VIGIL_TOPIC_TRANSACTIONS"]
    produce(
        broker.bootstrap, topic, [(t["account_id"].encode(), orjson.dumps(t)) for t in transfers]
    )
    group, partitions = env["VIGIL_APP_ID"], int(env["VIGIL_PARTITIONS"])

    def committed() -> int:
        offsets = asyncio.run(_committed(broker.bootstrap, group, topic, partitions))
        return sum(max(0, o) for o in offsets)

    consume(broker.bootstrap, env["VIGIL_TOPIC_SCORED"], lambda recs: len(recs) >= 40)
    for _ in range(60):  # the worker commits every VIGIL_COMMIT_INTERVAL_S (1 s)
        if committed() == len(transfers):
            break
        asyncio.run(asyncio.sleep(0.5))
    assert committed() == len(transfers)
    # Committed input has its forwards delivered: they are there now, 10 min before the
    # linger would have sent them.
    forwards = consume(
        broker.bootstrap, env["VIGIL_TOPIC_BY_COUNTERPARTY"], lambda recs: len(recs) >= 40, 5
    )
    ids = sorted(orjson.loads(r.value)["tx"]["tx_id"] for r in forwards)
    assert ids == sorted(t["tx_id"] for t in transfers)

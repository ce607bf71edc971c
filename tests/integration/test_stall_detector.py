"""Faust's stall detector sees the batch path's progress: no false ERROR on a healthy worker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.commands import run_simulation
from tests.integration.worker import READY_LINE

pytestmark = pytest.mark.integration

#: Faust's stall detector checks every 2.5 commit intervals; with this threshold it has
#: judged every partition several times over the traffic below. It reports a partition
#: only while records wait there (high watermark past the position), so the traffic is
#: heavier than the worker takes at once.
STALL_TIMEOUT_S = 5.0
TRAFFIC_S = 25.0
RATE = 1500.0

FALSE_STALLS = ("Stream has not started processing", "Stream stopped processing")


def test_healthy_worker_past_the_stall_threshold_logs_no_stall(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    env = {**worker_env, "VIGIL_STREAM_PROCESSING_TIMEOUT_S": str(STALL_TIMEOUT_S)}
    worker = start_worker(env)
    sent = asyncio.run(
        run_simulation(
            broker.bootstrap,
            env["VIGIL_TOPIC_TRANSACTIONS"],
            rate=RATE,
            duration_s=TRAFFIC_S,
            seed=5,
            fraud_rate=0.01,
        )
    )
    assert sum(sent.values()) >= TRAFFIC_S * RATE / 2  # heavy traffic really flowed
    log = worker.log()
    assert READY_LINE in log  # the worker's own log was read
    for line in FALSE_STALLS:
        assert line not in log, f"false stall report on a healthy worker: {line!r}"

"""A running worker takes every tansu workaround on tansu and none on Apache Kafka.

The worker logs ``tansu workaround on: <name>`` the first time it takes one (see
app.kafka.tansu_compat.Workarounds). Each path that asks is made to run: table recovery (end
offsets, before "Ready"), fetching, the web feed's backfill (before it goes live) and the
consumer lag timer (before the lag gauge is set).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest

from app.kafka.tansu_compat import WORKAROUNDS
from tests.integration.kafka_io import consume, produce
from tests.integration.scenario import build_scenario
from tests.integration.web_support import http

pytestmark = pytest.mark.integration


def _wait_for(what: str, check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_tansu_workarounds_are_taken_on_tansu_only(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    worker = start_worker(worker_env)
    sc = build_scenario()
    produce(broker.bootstrap, worker_env["VIGIL_TOPIC_TRANSACTIONS"], sc.records)
    scored = consume(
        broker.bootstrap, worker_env["VIGIL_TOPIC_SCORED"], lambda r: len(r) >= len(sc.valid)
    )
    assert {orjson.loads(r.value)["tx_id"] for r in scored} == set(sc.valid)
    _wait_for(
        "the web feed to go live",
        lambda: http("GET", worker.web_url + "/api/stats").json().get("live") is True,
    )
    _wait_for(
        "the consumer lag gauge",
        lambda: b"\nvigil_consumer_lag{" in http("GET", worker.web_url + "/metrics").body,
    )

    taken = set(re.findall(r"tansu workaround on: (.+?) *$", worker.log(), re.MULTILINE))
    assert worker.stop() == 0
    if broker.flavor == "tansu":
        assert taken == set(WORKAROUNDS)
    else:
        assert broker.flavor == "kafka"
        assert taken == set()

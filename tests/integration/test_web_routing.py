"""``/api/accounts/{id}`` is answered by the worker that owns the account's table partition."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.kafka.embedded_broker import free_port
from tests.integration.kafka_io import consume, produce
from tests.integration.scenario import BASE_MS
from tests.integration.web_support import http
from tests.integration.worker import isolated_env

pytestmark = pytest.mark.integration

ACCOUNTS = [f"route-{i}" for i in range(12)]


def _answers(url: str) -> dict[str, Any] | None:
    """Return every account's answer from one worker, or None while any is not 200."""
    out = {}
    for account in ACCOUNTS:
        reply = http("GET", f"{url}/api/accounts/{account}")
        if reply.status != 200:
            return None
        out[account] = reply.json()
    return out


def test_account_api_is_routed_to_the_partition_owner(
    broker: Any, trained_model: Path, tmp_path: Path, start_worker: Any
) -> None:
    env_a = isolated_env(broker, trained_model, tmp_path / "a-data")
    worker_a = start_worker(env_a, "worker-a")
    records = []
    for n, account in enumerate(ACCOUNTS):
        for k in range(n % 3 + 1):
            tx = {
                "tx_id": f"{account}-{k}",
                "ts": BASE_MS + k * 60_000,
                "account_id": account,
                "amount": 10.0 + k,
            }
            records.append((account.encode(), orjson.dumps(tx)))
    produce(broker.bootstrap, env_a["VIGIL_TOPIC_TRANSACTIONS"], records)
    consume(broker.bootstrap, env_a["VIGIL_TOPIC_SCORED"], lambda r: len(r) >= len(records))

    # A second worker of the same app: the partitions (and the table) are split between them.
    env_b = {
        **env_a,
        "VIGIL_DATA_DIR": str(tmp_path / "b-data"),
        "VIGIL_WEB_PORT": str(free_port()),
    }
    worker_b = start_worker(env_b, "worker-b")
    urls = {worker_a.web_url, worker_b.web_url}

    deadline = time.monotonic() + 120
    last: Any = None
    while time.monotonic() < deadline:
        a, b = _answers(worker_a.web_url), _answers(worker_b.web_url)
        last = (a, b)
        if a is not None and b is not None:
            owners = {doc["served_by"].rstrip("/") for doc in a.values()}
            same = all(a[x]["served_by"] == b[x]["served_by"] for x in ACCOUNTS)
            if owners == urls and same:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"requests were not routed to both owners: {last}")

    for n, account in enumerate(ACCOUNTS):
        for doc in (a[account], b[account]):
            assert doc["state"]["tx_count"] == n % 3 + 1, doc
        assert a[account]["partition"] == b[account]["partition"]

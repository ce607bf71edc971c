"""Helpers of the web view tests: a worker with a token, hostile records, HTTP and Kafka reads."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.kafka.embedded_broker import EmbeddedBroker
from tests.integration.kafka_io import consume
from tests.integration.scenario import BASE_MS, HOUR_MS, Scenario, legit_history
from tests.integration.worker import WorkerProcess, isolated_env

TOKEN = "test-token-Zq8-42"
#: Markup and both quote kinds: must show up as text, never run or become elements.
HOSTILE = """<script>window.__pwned=1</script>"'><img src=x onerror="window.__pwned=2">"""
HOSTILE_ACCOUNT = "acc-" + HOSTILE
HOSTILE_MERCHANT = "m-" + HOSTILE


@dataclass
class WebWorker:
    """A running worker with its environment and the bootstrap address of the broker."""

    process: WorkerProcess
    env: dict[str, str]
    bootstrap: str

    @property
    def url(self) -> str:
        """Return the worker's base URL."""
        return self.process.web_url

    def topic(self, name: str) -> str:
        """Return this worker's name of a topic (``VIGIL_TOPIC_<NAME>``)."""
        return self.env[f"VIGIL_TOPIC_{name.upper()}"]


def start_web_worker(
    broker: EmbeddedBroker, model: Path, workdir: Path, token: str = TOKEN
) -> Iterator[WebWorker]:
    """Run one worker with ``VIGIL_WEB_TOKEN`` set for the duration of the generator."""
    env = isolated_env(broker, model, workdir / "worker-data")
    env["VIGIL_WEB_TOKEN"] = token
    process = WorkerProcess(env, workdir / "worker.log").start()
    try:
        # Alerts read as the feed's start-up backlog do not count in the last minute.
        deadline = time.monotonic() + 60
        while http("GET", process.web_url + "/api/stats").json().get("live") is not True:
            assert time.monotonic() < deadline, "the alert feed did not go live"
            time.sleep(0.2)
        yield WebWorker(process, env, broker.bootstrap)
    finally:
        process.stop()


def hostile_drain(tag: str) -> tuple[Scenario, str]:
    """Return an account-takeover sequence whose ids and merchant hold markup and quotes.

    The same shape as the pipeline scenario's ``acc-ato`` (ten ordinary payments, then a
    night-time transfer draining the balance to a new counterparty), which the model alerts.
    """
    sc = Scenario()
    account = f"{HOSTILE_ACCOUNT}-{tag}"
    last = legit_history(sc, account, 10, 50.0, BASE_MS)
    drain_id = f"tx-{HOSTILE}-{tag}"
    sc.add(
        {
            "tx_id": drain_id,
            "ts": last + 17 * HOUR_MS,
            "account_id": account,
            "amount": 9800.0,
            "counterparty_id": HOSTILE_MERCHANT,
            "type": "TRANSFER",
            "channel": "web",
            "country": "US",
            "device_id": "dev-new",
            "merchant_category": HOSTILE,
            "balance_before": 9800.0,
            "balance_after": 0.0,
        },
        pattern="account_takeover",
    )
    return sc, drain_id


def alert_record(alert_id: str, account_id: str, tier: str = "HIGH") -> dict[str, Any]:
    """Return a schema-shaped alert, for producing straight to an alert topic."""
    now = int(time.time() * 1000)
    return {
        "schema_version": 1,
        "alert_id": alert_id,
        "tx_id": alert_id,
        "account_id": account_id,
        "tier": tier,
        "score": 0.97,
        "model_version": "test",
        "reasons": [{"feature": "amount", "value": 5000.0, "contribution": 2.5}],
        "rules": [
            {"rule_id": "structuring", "tier": tier, "explanation": f"three deposits {HOSTILE}"}
        ],
        "transaction": {
            "tx_id": alert_id,
            "ts": now - 50,
            "account_id": account_id,
            "amount": 5000.0,
            "counterparty_id": HOSTILE_MERCHANT,
        },
        "features": {"amount": 5000.0, "count_1h": 3.0, "mean_amount": None},
        "event_ts": now - 50,
        "scored_ts": now,
    }


def find_alert(worker: WebWorker, alert_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Read the alert topics until the alert with this id shows up; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for tier in ("HIGH", "MEDIUM", "LOW"):
            for rec in consume(
                worker.bootstrap, worker.topic(f"alerts_{tier}"), lambda _: False, 2
            ):
                alert = orjson.loads(rec.value)
                if alert["alert_id"] == alert_id:
                    return dict(alert)
    raise AssertionError(f"no alert {alert_id!r} on the alert topics")


def find_label(
    worker: WebWorker, tx_id: str, timeout_s: float = 60.0
) -> tuple[bytes, dict[str, Any]]:
    """Read the labels topic until a record keyed ``tx_id`` shows up; return key and value."""
    key = tx_id.encode()
    records = consume(
        worker.bootstrap,
        worker.topic("labels"),
        lambda recs: any(r.key == key for r in recs),
        timeout_s,
    )
    found = [r for r in records if r.key == key]
    assert found, f"no label keyed {tx_id!r} on {worker.topic('labels')}"
    return found[0].key, orjson.loads(found[0].value)


@dataclass
class HttpReply:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON."""
        return orjson.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> HttpReply:
    """Send one request to the worker (loopback only) and return the reply, errors included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return HttpReply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, dict(err.headers), err.read())


async def in_thread(fn: Any, *args: Any) -> Any:
    """Run a blocking helper (they use asyncio.run) from an async test."""
    return await asyncio.to_thread(fn, *args)

"""AML integration helpers: simulated typologies, list files, alerts read from every tier."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.simulator import AML_PATTERNS, SimulatedTx, Simulator
from tests.integration.scenario import BASE_MS, DAY_MS

#: The rules each typology of the simulator must trigger (at least one of them).
EXPECTED_RULES: dict[str, set[str]] = {
    "structuring": {"structuring_24h", "structuring_7d", "structuring_daily_total"},
    "mule_fan_in": {"fan_in_mule"},
    "pass_through": {"rapid_pass_through"},
    "fan_out": {"fan_out_new_counterparties"},
    "dormant_reactivation": {"dormant_reactivation"},
    "round_amount": {"round_amount"},
    "high_risk_jurisdiction": {"high_risk_jurisdiction"},
}
assert set(EXPECTED_RULES) == set(AML_PATTERNS)


@dataclass
class Typologies:
    """Two instances of every typology; the second of two of them is used for the lists."""

    caught: dict[str, list[SimulatedTx]] = field(default_factory=dict)
    allowed: list[SimulatedTx] = field(default_factory=list)
    suppressed: list[SimulatedTx] = field(default_factory=list)

    def all(self) -> list[SimulatedTx]:
        out = [r for recs in self.caught.values() for r in recs]
        return out + self.allowed + self.suppressed


def build_typologies(seed: int = 41) -> Typologies:
    sim = Simulator(seed=seed, n_accounts=3000, id_prefix=f"aml{seed}")
    out = Typologies()
    t0 = BASE_MS
    for name in AML_PATTERNS:
        out.caught[name] = sim.typology(name, t0)
        t0 += 8 * DAY_MS
    out.allowed = sim.typology("round_amount", t0)
    out.suppressed = sim.typology("high_risk_jurisdiction", t0 + DAY_MS)
    return out


def records(txs: list[SimulatedTx]) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.tx["account_id"].encode(), orjson.dumps(r.tx)) for r in txs]


def read_alerts(
    bootstrap: str, env: dict[str, str], until: Any, timeout_s: float = 60.0
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Return alerts by ``alert_id`` as ``[(topic tier, alert), ...]`` once ``until`` holds.

    One consumer reads the three alert topics from the beginning, so nothing read is lost
    between polls.
    """
    by_topic = {env[f"VIGIL_TOPIC_ALERTS_{tier}"]: tier for tier in ("HIGH", "MEDIUM", "LOW")}

    async def run() -> dict[str, list[tuple[str, dict[str, Any]]]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        try:
            deadline = time.monotonic() + timeout_s
            tps: list[TopicPartition] = []
            for topic in by_topic:
                while not consumer.partitions_for_topic(topic):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"topic {topic} never appeared")
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(0.2)
                parts = consumer.partitions_for_topic(topic) or set()
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while time.monotonic() < deadline and not until(found):
                batch = await consumer.getmany(timeout_ms=200)
                for tp, msgs in batch.items():
                    for rec in msgs:
                        alert = orjson.loads(rec.value)
                        found.setdefault(alert["alert_id"], []).append((by_topic[tp.topic], alert))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())


def wait_for_log(worker: Any, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in worker.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the worker log:\n{worker.log()[-3000:]}")
        time.sleep(0.2)

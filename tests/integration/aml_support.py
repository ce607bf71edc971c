"""AML integration helpers: simulated typologies, list files, alerts read from every tier."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.simulator import AML_PATTERNS, SimulatedTx, Simulator
from tests.integration.kafka_io import consume
from tests.integration.scenario import BASE_MS, DAY_MS
from tests.unit.aml_support import TYPOLOGY_RULES

EXPECTED_RULES = TYPOLOGY_RULES
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
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def enough(recs: list[Any]) -> bool:
        for rec in recs[sum(len(v) for v in found.values()) :]:
            alert = orjson.loads(rec.value)
            found.setdefault(alert["alert_id"], []).append((by_topic[rec.topic], alert))
        return bool(until(found))

    consume(bootstrap, list(by_topic), enough, timeout_s)
    return found


def wait_for_log(worker: Any, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in worker.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the worker log:\n{worker.log()[-3000:]}")
        time.sleep(0.2)

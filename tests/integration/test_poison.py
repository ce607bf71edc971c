"""The poison corpus through a live worker: nothing it sends can stop the worker.

Issue 12's seeds (lone surrogates, 1e39 and 2e38 amounts, a 400-digit ts, 5,000-deep
nesting, payloads at the size limit, ...) go to the transactions topic before, among and
after valid transactions, on the real embedded broker with a real worker and model.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from models.counterparty_risk import DAY_MS, CounterpartyRisk
from tests.integration.kafka_io import consume, produce
from tests.poison import seeds, tx_json

pytestmark = pytest.mark.integration

#: The seeds that are valid transactions and must be scored.
VALID_SEEDS = {
    "alerted after 2e38": "p2e38-3",
    "tiny balance": "bal",
    "tiny mean 1": "mean-1",
    "tiny mean 2": "mean-2",
    "payload at the limit": "size-max",
}
T0_MS = 1_772_442_000_000  # 2026-03-02T09:00:00Z


def _valid(first: int, n: int) -> list[tuple[bytes, bytes]]:
    """Return ``n`` ordinary transactions over six accounts, keyed by account."""
    out = []
    for i in range(first, first + n):
        account = f"acc-{i % 6}"
        value = tx_json(f"ok-{i}", account, 10.0 + i, ts=T0_MS + i * 1000, counterparty_id="m-1")
        out.append((account.encode(), value))
    return out


def _headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


def test_poison_corpus_is_dead_lettered_and_the_worker_goes_on(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    env = worker_env
    worker = start_worker(env)
    poison = [
        ((account or "poison").encode("utf-8", "surrogatepass"), value)
        for _, account, value in seeds()
    ]
    names = [name for name, _, _ in seeds()]
    invalid = [
        value for name, (_, value) in zip(names, poison, strict=True) if name not in VALID_SEEDS
    ]
    # Poison first, then valid transactions with the poison among them, then valid ones.
    mixed: list[tuple[bytes, bytes]] = []
    for i, record in enumerate(_valid(0, 40)):
        mixed.append(record)
        if i < len(poison):
            mixed.append(poison[i])
    records = poison + mixed + _valid(40, 40)
    produce(broker.bootstrap, env["VIGIL_TOPIC_TRANSACTIONS"], records)

    expected_ok = {f"ok-{i}" for i in range(80)}
    expected_scored = expected_ok | set(VALID_SEEDS.values())
    scored = consume(
        broker.bootstrap,
        env["VIGIL_TOPIC_SCORED"],
        lambda recs: expected_scored <= {orjson.loads(r.value)["tx_id"] for r in recs},
        timeout_s=120,
    )
    n_dead = 2 * len(invalid)  # every invalid seed is sent twice
    dead = consume(
        broker.bootstrap,
        env["VIGIL_TOPIC_DEADLETTER"],
        lambda recs: len(recs) >= n_dead,
        timeout_s=60,
    )

    ids = Counter(orjson.loads(r.value)["tx_id"] for r in scored)
    assert expected_scored <= set(ids), sorted(expected_scored - set(ids))
    assert all(ids[t] == 1 for t in expected_ok)  # each valid one once, none lost
    assert set(ids) <= expected_scored  # nothing invalid was scored
    # Every invalid seed is in the dead-letter topic twice; a cut one keeps its start.
    assert len(dead) == n_dead
    found: Counter[bytes] = Counter()
    for record in dead:
        headers = _headers(record)
        assert headers["vigil.error"]
        truncated = headers.get("vigil.truncated")
        if truncated is None:
            found[record.value] += 1
        else:
            (original,) = [v for v in invalid if len(v) == int(truncated)]
            assert original.startswith(record.value) and len(record.value) < len(original)
            found[original] += 1
    assert found == Counter({v: 2 for v in invalid})
    assert worker.proc is not None and worker.proc.poll() is None, worker.log()[-3000:]
    assert "stopping the worker hard" not in worker.log()
    assert worker.stop() == 0


def test_bad_labels_neither_stop_the_label_agents_nor_wipe_a_counterparty(
    broker: Any, worker_env: dict[str, str], start_worker: Any
) -> None:
    env = worker_env
    worker = start_worker(env)
    now_ms = int(time.time() * 1000)

    def label(tx_id: str, ts: Any, **extra: Any) -> bytes:
        doc = {"tx_id": tx_id, "label": "fraud", "ts": ts, "counterparty_id": "cp-L", **extra}
        return json.dumps(doc).encode()

    good = [(f"g{i}".encode(), label(f"g{i}", now_ms - i * 1000)) for i in range(3)]
    bad = {
        label("b-1e300", 1e300): "ts",
        label("b-9999", 253_402_300_799_000): "ts",
        label("b-400", 10**400): "payload",  # orjson refuses it: not JSON to Vigil
        label("b-future", now_ms + 40 * DAY_MS): "ts",
        label("\ud800", now_ms): "payload",  # orjson refuses lone surrogates
        label("b-cp", now_ms, counterparty_id=5): "counterparty_id",
        b"[" * 5000 + b"]" * 5000: "payload",
        b"\xff": "payload",
    }
    last = (b"g-last", label("g-last", now_ms))
    produce(
        broker.bootstrap,
        env["VIGIL_TOPIC_LABELS"],
        [*good, *((b"bad", value) for value in bad), last],
    )
    changelog = f"{env['VIGIL_APP_ID']}-counterparty_risk-changelog"

    def counted_all(records: list[Any]) -> bool:
        return bool(records) and _risk_counts(records[-1].value, now_ms) == (4, 4)

    states = consume(broker.bootstrap, changelog, counted_all, timeout_s=90)
    assert _risk_counts(states[-1].value, now_ms) == (4, 4)  # history kept, last one counted
    dead = consume(
        broker.bootstrap, env["VIGIL_TOPIC_DEADLETTER"], lambda recs: len(recs) >= len(bad)
    )
    fields = {r.value: _headers(r)["vigil.error.field"].decode() for r in dead}
    assert fields == bad
    assert worker.proc is not None and worker.proc.poll() is None
    assert worker.stop() == 0


def _risk_counts(value: bytes, now_ms: int) -> tuple[int, int]:
    risk = CounterpartyRisk.from_bytes(value)
    return risk.counts(now_ms, 30)

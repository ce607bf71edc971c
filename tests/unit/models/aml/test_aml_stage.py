"""The AML hooks of both agents without a broker: the account micro-batch step (decisions,
forwarding) and the fan-in stage (alerts that supersede, lists, replays, table writes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from models.aml.forward import forward_record, parse_forward
from models.aml.lists import IdList, Lists, Suppression
from models.aml.runtime import AmlRuntime, AmlSnapshot
from models.aml.stage import AccountAmlBatch
from models.features import N_FEATURES, AccountState, update_account
from monitoring.metrics import VigilMetrics
from tests.unit.aml_support import DEFAULT_RULES, HOUR, T0, default_rulebook, tx
from tests.unit.pipeline_support import MemoryStore

TOPICS = {"HIGH": "alerts.high", "MEDIUM": "alerts.medium", "LOW": "alerts.low"}


class FakeStore(MemoryStore):
    """The in-memory account store, under the fan-in stage's changelog name."""

    changelog_topic = "cp-changelog"


class FakeSender:
    def __init__(self) -> None:
        self.out: list[tuple[str, int, bytes | None, bytes | None]] = []
        self.headers: list[dict[str, bytes]] = []

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.out.append((topic, partition, key, value))
        self.headers.append(dict(headers or []))

    def partition_for(self, topic: str, key: bytes) -> int:
        return len(key) % 4

    async def submit(self) -> asyncio.Future[dict[tuple[str, int], int]]:
        fut: asyncio.Future[dict[tuple[str, int], int]] = asyncio.get_running_loop().create_future()
        fut.set_result({("cp-changelog", 0): 41})
        return fut


def test_account_batch_decides_and_forwards_only_what_fan_in_needs() -> None:
    lists = Lists(allow=IdList(frozenset({"acc-allowed"})))
    batch = AccountAmlBatch(AmlSnapshot.of(default_rulebook(), lists), T0, "by-cp")
    txs = [
        tx("acc-1", T0, 25_000, type="TRANSFER", counterparty_id="cp-1"),  # round amount
        tx("acc-1", T0 + 1, 30, type="CARD", counterparty_id="m-1"),  # not a transfer
        tx("acc-allowed", T0 + 2, 25_000, type="TRANSFER", counterparty_id="cp-2"),
        tx("acc-2", T0 + 3, 40, type="TRANSFER"),  # no counterparty
    ]
    states: dict[str, AccountState] = {}
    features = []
    for t in txs:
        f, states[t.account_id] = update_account(states.get(t.account_id), t)
        batch.evaluate(states[t.account_id], t, f, replay=False)
        features.append(f)
    decisions = [batch.decide(i, t, "MINIMAL") for i, t in enumerate(txs)]
    assert [(d.tier, d.alert) for d in decisions] == [
        ("LOW", True),
        ("MINIMAL", False),
        ("MINIMAL", False),
        ("MINIMAL", False),
    ]
    assert batch.hit_counts() == {"round_amount": 1}
    assert states["acc-allowed"].aml  # still tracked, so a later removal starts informed
    out = list(batch.forward_records(txs, [0.1, 0.2, 0.3, 0.4], "v1", {}, features))
    assert [(topic, key) for topic, key, _ in out] == [("by-cp", b"cp-1"), ("by-cp", b"cp-2")]
    first, second = (parse_forward(value) for _, _, value in out)
    assert first.alerts and first.tier == "LOW" and first.rules[0]["rule_id"] == "round_amount"
    assert not second.alerts and second.rules == []


def _forwarded(account: str, i: int, **kw: Any) -> SimpleNamespace:
    t = tx(account, T0 + i * HOUR, 500, type="TRANSFER", counterparty_id="mule", tx_id=f"m{i}")
    value = forward_record(
        t,
        kw.get("score", 0.02),
        kw.get("tier", "MINIMAL"),
        "v1",
        kw.get("reasons", []),
        kw.get("rules", []),
        [0.0] * N_FEATURES,
        T0,
        kw.get("alerts", True),
    )
    return SimpleNamespace(topic="by-cp", partition=2, offset=i, key=b"mule", value=value)


def _fan_in(lists: Lists | None = None) -> tuple[Any, FakeStore, FakeSender]:
    from agents.counterparties import FanInPipeline

    runtime = AmlRuntime(DEFAULT_RULES)
    if lists is not None:
        runtime.snapshot = AmlSnapshot(runtime.snapshot.engine, runtime.snapshot.fanin, lists)
    store, sender = FakeStore(), FakeSender()
    stage = FanInPipeline(
        runtime,
        store,  # type: ignore[arg-type]
        sender,  # type: ignore[arg-type]
        VigilMetrics(),
        TOPICS,
        lambda fwd: [{"feature": "amount", "value": 500.0, "contribution": 0.1}],
    )
    return stage, store, sender


def _alerts(sender: FakeSender) -> list[tuple[str, dict[str, Any]]]:
    return [(t, orjson.loads(v)) for t, _, _, v in sender.out if t.startswith("alerts.") and v]


def test_fan_in_stage_alerts_supersede_and_state_is_written_once() -> None:
    stage, store, sender = _fan_in()
    earlier_rule = {"rule_id": "round_amount", "tier": "LOW", "explanation": "x"}
    msgs = [_forwarded(f"s{i}", i) for i in range(4)]
    msgs.append(_forwarded("s4", 4, tier="LOW", rules=[earlier_rule], reasons=[{"f": 1}]))
    asyncio.run(stage.process(msgs))
    alerts = _alerts(sender)
    assert len(alerts) == 1
    topic, alert = alerts[0]
    assert topic == "alerts.high" and alert["tier"] == "HIGH"
    assert alert["alert_id"] == alert["tx_id"] == "m4" and alert["account_id"] == "s4"
    assert [h["rule_id"] for h in alert["rules"]] == ["round_amount", "fan_in_mule"]
    assert alert["reasons"] == [{"f": 1}]  # the account pipeline's own reasons are kept
    assert store.offsets == {0: 41}
    changelog = [(k, v) for t, p, k, v in sender.out if t == "cp-changelog"]
    assert changelog == [(b"mule", store.data[(2, b"mule")])]

    # A redelivered batch adds no sender. It is judged with all five senders known, so the
    # earlier payments of the group are alerted too (same alert_ids as their transactions).
    before = store.data[(2, b"mule")]
    sender.out.clear()
    asyncio.run(stage.process(msgs))
    again = _alerts(sender)
    assert [a["alert_id"] for _, a in again] == ["m0", "m1", "m2", "m3", "m4"]
    assert all(a["rules"][-1]["explanation"].startswith("5 distinct senders") for _, a in again)
    assert store.data[(2, b"mule")] == before
    # The unchanged state is written back once: the changelog may be behind the database.
    rewritten = [(k, v) for t, p, k, v in sender.out if t == "cp-changelog"]
    assert rewritten == [(b"mule", before)]

    # A sender not yet explained gets reasons computed by the stage.
    sender.out.clear()
    asyncio.run(stage.process([_forwarded("s5", 5)]))
    (_, alert), *_ = _alerts(sender)
    assert alert["reasons"][0]["feature"] == "amount"


def test_fan_in_stage_respects_the_lists() -> None:
    msgs = [_forwarded(f"s{i}", i, alerts=i != 4) for i in range(5)]
    stage, store, sender = _fan_in()
    asyncio.run(stage.process(msgs))  # the fifth sender is allow-listed or suppressed
    assert _alerts(sender) == [] and (2, b"mule") in store.data

    allow = Lists(allow=IdList(frozenset(), frozenset({"mule"})))
    stage, store, sender = _fan_in(allow)
    asyncio.run(stage.process([_forwarded(f"s{i}", i) for i in range(6)]))
    assert _alerts(sender) == [] and store.data == {}

    suppressed = Lists(suppressions={"x": Suppression("x", T0)})
    stage, store, sender = _fan_in(suppressed)
    asyncio.run(stage.process([_forwarded(f"s{i}", i) for i in range(6)]))
    assert len(_alerts(sender)) == 2


@pytest.mark.parametrize(
    "value", [b"{}", b"not json", b"[" * 3000, None, b'{"format": 1, "tx": {"tx_id": 5}}']
)
def test_unreadable_forwarded_record_is_dead_lettered_and_the_rest_goes_on(
    value: bytes | None,
) -> None:
    stage, store, sender = _fan_in()
    bad = SimpleNamespace(topic="by-cp", partition=2, offset=7, key=b"k", value=value)
    asyncio.run(stage.process([bad, _forwarded("s1", 8)]))
    assert list(store.data) == [(2, b"mule")]  # the good record after it was counted
    assert _alerts(sender) == []
    dead = [(out, h) for out, h in zip(sender.out, sender.headers, strict=True) if h]
    assert len(dead) == 1
    (topic, partition, key, dead_value), headers = dead[0]
    assert (topic, partition, key, dead_value) == ("transactions.deadletter", 2, None, value)
    assert headers["vigil.error"].startswith(b"stage=fan-in error=")
    assert headers["vigil.source.offset"] == b"7"


def test_default_rules_path_is_the_settings_default() -> None:
    from app.settings import DEFAULT_RULES_PATH

    assert Path(DEFAULT_RULES_PATH) == DEFAULT_RULES


def test_offline_evaluation_for_backtests() -> None:
    from models.aml.stage import evaluate_offline

    snap = AmlSnapshot.of(default_rulebook())
    states: dict[str, AccountState] = {}
    cps: dict[str, list[Any]] = {}
    added: dict[str, int] = {}  # rule_id -> alerts the rules added beyond the model
    for i in range(6):
        t = tx(f"s{i}", T0 + i * HOUR, 500, type="TRANSFER", counterparty_id="mule")
        features, states[t.account_id] = update_account(states.get(t.account_id), t)
        decision, hits = evaluate_offline(snap, states[t.account_id], cps, t, features, "MINIMAL")
        if decision.alert:
            for h in hits:
                added[h.rule_id] = added.get(h.rule_id, 0) + 1
    assert added == {"fan_in_mule": 2}
    assert cps["mule"] and states["s5"].aml

"""No record can stop the account pipeline: arbitrary messages through the batch decision.

A small real model (trained once per session), the real AML rules and plain dicts for the
states. For any micro-batches of arbitrary bytes and hostile JSON, parsing and
:func:`models.decision.decide` return, and every input is either scored once or dead-lettered
once, with a dead letter that fits the broker's message limit. The issue's seeds also go
through the real ``TransactionPipeline`` (in-memory store, collecting sender), which emits what
the decision returns.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, example, given, settings

from agents.pipeline import dead_letter_headers, fit_dead_letter
from app.serving import ModelSet, ServedModel
from app.settings import Settings
from models.aml.runtime import AmlRuntime
from models.artifact import load_artifact
from models.decision import DeadLetter, Row, Slot, decide, parse_input
from models.features import AccountState
from models.redelivery import InputPosition
from tests.poison import seeds
from tests.unit.fuzz_strategies import BATCHES
from tests.unit.pipeline_support import CollectingSender, MemoryStore, Message, make_pipeline

F = TypeVar("F", bound=Callable[..., Any])
SETTINGS = Settings()
SEEDS = {name: value for name, _, value in seeds()}
#: Record framing a dead letter may need beyond its value and headers (Kafka v2 batch + record).
FRAMING_BYTES = 256


NOW_MS = 1_772_442_000_000  # 2026-03-02T09:00:00Z, the pipeline tests' clock
AML = AmlRuntime.from_settings(SETTINGS).snapshot


@functools.cache
def served(model_path: Path) -> ModelSet:
    """The model of ``model_path`` as the worker serves it (loaded once)."""
    return ModelSet(ServedModel(load_artifact(model_path), {}))


@dataclass(slots=True)
class Decided:
    """What the batches decided, by input position (offset) across all batches."""

    states: dict[Slot, bytes] = field(default_factory=dict)
    scored: list[int] = field(default_factory=list)
    dead: list[tuple[Message, DeadLetter]] = field(default_factory=list)
    #: Every scored record, alert and forward value.
    outputs: list[bytes] = field(default_factory=list)


def decide_batches(model_path: Path, batches: list[list[bytes]]) -> Decided:
    """Parse and decide ``batches`` in order, as the pipeline would, keeping the states."""
    s = SETTINGS
    done = Decided()
    offset = 0
    for batch in batches:
        messages: list[Message] = []
        rows: list[Row] = []
        for value in batch:
            # The re-keyed topic: the pipeline takes its records as keyed (no re-keying).
            msg = Message(s.topic_repartition, offset % 4, offset, None, value)
            tx = parse_input(len(messages), value, s.max_message_bytes, s.max_amount)
            if isinstance(tx, DeadLetter):
                done.dead.append((msg, tx))
            else:
                key = tx.account_id.encode()
                position = InputPosition(msg.topic, msg.offset, None)
                rows.append(Row(len(messages), tx, key, msg.partition, position))
            messages.append(msg)
            offset += 1
        states = {row.slot: done.states.get(row.slot) for row in rows}
        out = decide(
            rows,
            states,
            lambda cp: None,
            served(model_path),
            AML,
            NOW_MS,
            reasons_top_k=s.reasons_top_k,
            forward_topic=s.topic_by_counterparty,
        )
        done.dead += [(messages[d.index], d) for d in out.dead_letters]
        for rec in out.scored:
            done.scored.append(messages[rec.index].offset)
            done.outputs += [rec.value] if rec.alert is None else [rec.value, rec.alert]
        done.outputs += [f.value for f in out.forwards]
        done.states.update({slot: st.to_bytes() for slot, st in out.states.items()})
    return done


def check_decided(batches: list[list[bytes]], done: Decided) -> None:
    """Assert that each input went to exactly one place and every output is well formed."""
    n_inputs = sum(len(b) for b in batches)
    places = done.scored + [msg.offset for msg, _ in done.dead]
    assert sorted(places) == list(range(n_inputs))
    for msg, dead in done.dead:
        assert dead.error and dead.reason
        headers = dead_letter_headers(msg, dead.error, dead.field)
        value = fit_dead_letter(msg.value, headers, SETTINGS.max_message_bytes)
        size = len(value or b"") + sum(len(k) + len(v) for k, v in headers)
        assert size + FRAMING_BYTES <= SETTINGS.max_message_bytes
    for value in done.outputs:
        orjson.loads(value)  # every output is JSON that Vigil can read back
    for value in done.states.values():
        assert AccountState.from_bytes(value).n >= 1


def run_batches(model_path: Path, batches: list[list[bytes]]) -> tuple[MemoryStore, Any]:
    """Process ``batches`` in order through one pipeline; return its store and sender."""
    pipeline, store, sender = make_pipeline(model_path, SETTINGS)

    async def go() -> None:
        offset = 0
        for batch in batches:
            messages = []
            for value in batch:
                messages.append(
                    Message(SETTINGS.topic_repartition, offset % 4, offset, None, value)
                )
                offset += 1
            await pipeline.process(messages)

    asyncio.run(go())
    return store, sender


def _headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


def check_outcome(batches: list[list[bytes]], store: MemoryStore, sender: CollectingSender) -> None:
    """Assert that each input went to exactly one place and every output is well formed."""
    n_inputs = sum(len(b) for b in batches)
    dead = sender.to(SETTINGS.topic_deadletter)
    scored = sender.to(SETTINGS.topic_scored)
    assert len(dead) + len(scored) == n_inputs
    offsets = [int(_headers(r)["vigil.source.offset"]) for r in dead]
    assert len(set(offsets)) == len(offsets)
    for record in dead:
        headers = _headers(record)
        assert headers["vigil.error"]
        size = len(record.value or b"") + sum(len(k) + len(v) for k, v in record.headers)
        assert size + FRAMING_BYTES <= SETTINGS.max_message_bytes
        if "vigil.truncated" in headers:
            assert int(headers["vigil.truncated"]) > len(record.value or b"")
    for record in sender.sent:
        if record.topic != SETTINGS.topic_deadletter:
            assert record.value is not None
            orjson.loads(record.value)  # every output is JSON that Vigil can read back
    for value in store.data.values():
        state = AccountState.from_bytes(value)
        assert state.n >= 1


def _with_seed_examples(test: F) -> F:
    """Add the issue's seeds as explicit examples: alone, in order, and all in one batch."""
    values = list(SEEDS.values())
    test = example(batches=[values])(test)
    test = example(batches=[[v] for v in values[:10]])(test)
    test = example(batches=[[v] for v in values[10:]])(test)
    for name in (
        "surrogate tx_id",
        "amount 1e39",
        "400-digit ts",
        "nested 5000 deep",
        "payload at the limit",
        "invalid payload at the limit",
    ):
        test = example(batches=[[SEEDS[name]]])(test)
    two_then_alert = [SEEDS[f"2e38 payment {i}"] for i in (1, 2)] + [SEEDS["alerted after 2e38"]]
    test = example(batches=[two_then_alert])(test)
    test = example(batches=[[v] for v in two_then_alert])(test)
    return test


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batches=BATCHES)
@_with_seed_examples
def test_any_message_is_scored_or_dead_lettered_once(
    model_path: Path, batches: list[list[bytes]]
) -> None:
    check_decided(batches, decide_batches(model_path, batches))


def test_seeds_are_dead_lettered_with_the_field_or_scored(model_path: Path) -> None:
    """The seeds one batch at a time: each is refused for the right field, or scored."""
    expected = {
        "surrogate tx_id": "tx_id",
        "surrogate account_id": "account_id",
        "surrogate counterparty_id": "counterparty_id",
        "surrogate device_id": "device_id",
        "surrogate in unknown field": "note",
        "surrogate in field name": "payload",
        "CESU-8 surrogate bytes": "tx_id",
        "invalid UTF-8": "payload",
        "empty value": "payload",
        "amount 1e39": "amount",
        "2e38 payment 1": "amount",
        "2e38 payment 2": "amount",
        "400-digit ts": "ts",
        "400-digit amount": "amount",
        "ts 1e300": "ts",
        "ts year 9999": "ts",
        "NaN beside 2^70": "note",
        "2^70 amount beside NaN": "amount",
        "Infinity amount": "amount",
        "duplicate amount keys": "amount",
        "nested 300 deep": "payload",
        "nested 5000 deep": "payload",
        "negative balance": "balance_before",
        "payload over the limit": "payload",
        "invalid payload at the limit": "ts",
        "array": "payload",
        "string": "payload",
    }
    names = list(SEEDS)
    store, sender = run_batches(model_path, [[SEEDS[n]] for n in names])
    check_outcome([[v] for v in SEEDS.values()], store, sender)
    fields = {
        names[int(_headers(r)["vigil.source.offset"])]: _headers(r)["vigil.error.field"].decode()
        for r in sender.to(SETTINGS.topic_deadletter)
    }
    assert fields == expected
    scored = {orjson.loads(r.value or b"")["tx_id"] for r in sender.to(SETTINGS.topic_scored)}
    assert scored == {"p2e38-3", "bal", "mean-1", "mean-2", "size-max"}
    alerted = {
        orjson.loads(r.value or b"")["tx_id"]
        for r in sender.sent
        if r.topic in SETTINGS.alert_topics().values()
    }
    assert {"p2e38-3", "bal", "mean-2", "size-max"} <= alerted  # the round-amount rule fires
    over = [r for r in sender.to(SETTINGS.topic_deadletter) if r.value == SEEDS["empty value"]]
    assert over  # an empty message is dead-lettered as it came
    for name in ("payload over the limit", "invalid payload at the limit"):
        (record,) = [
            r
            for r in sender.to(SETTINGS.topic_deadletter)
            if names[int(_headers(r)["vigil.source.offset"])] == name
        ]
        assert int(_headers(record)["vigil.truncated"]) == len(SEEDS[name])
        assert record.value and SEEDS[name].startswith(record.value)

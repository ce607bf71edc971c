"""Fan-in to one beneficiary: transactions re-keyed by counterparty, AML state per counterparty.

The account pipeline forwards each valid transaction a fan-in rule may count (it has a
``counterparty_id`` of a type the rules name) to ``transactions.by-counterparty``, keyed by
``counterparty_id`` and co-partitioned with this agent's table (same partition count), with
what it decided: score, tier, model version, reasons, rules and features. Here the
counterparty's distinct senders are counted and, when a fan-in rule fires, the transaction's
Alert is sent again with the fan-in hit added: same ``alert_id`` (the ``tx_id``), a tier never
lower than before, ``rules`` a superset. Consumers keep the latest alert per ``alert_id``.

Replays are recognised by the counterparty state's memory of transaction ids, so a
redelivered transaction is evaluated again (same hits) but not counted twice. The rules and
lists files are re-read by :func:`reload_aml_files` on a timer for both agents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from faust.types import TP

from agents.pipeline import InMessage, dead_letter_headers, exit_now, fit_dead_letter
from app.internals.faust_transport import aiokafka_producer
from app.kafka.instance import app
from app.kafka.sender import BatchSender
from app.settings import Settings
from models.aml.fanin import count_fanin, counted, escalate_fanin
from models.aml.forward import Forwarded, fanin_alert, parse_forward
from models.aml.lists import Decision
from models.aml.runtime import AmlRuntime
from models.records import dumps
from models.redelivery import InputPosition
from monitoring.metrics import VigilMetrics
from tables.accounts import AccountStore
from tables.counterparties import counterparty_aml_table

log = logging.getLogger(__name__)
settings = app.settings

Explainer = Callable[[Forwarded], list[dict[str, Any]]]
EndOffsets = Callable[[str, int], int | None]


def input_end_offset(topic: str, partition: int) -> int | None:
    """Return an input partition's high watermark from the consumer's last fetch."""
    end = app.consumer.highwater(TP(topic, partition))
    return None if end is None else int(end)


def _unknown_end(topic: str, partition: int) -> int | None:
    return None


def aml_runtime() -> AmlRuntime:
    """Return the worker's rules and lists, loaded once (both agents share them)."""
    runtime: AmlRuntime | None = app.aml_runtime
    if runtime is None:
        runtime = app.aml_runtime = AmlRuntime.from_settings(settings, app.metrics.file_reloaded)
    return runtime


# Loaded before the worker connects: a broken rules or list file stops it with one line.
app.start_checks.append(aml_runtime)


def explain_with_served_model(fwd: Forwarded) -> list[dict[str, Any]]:
    """Compute reasons for a row the account pipeline did not explain (it was not alerted).

    Only with the model that scored it; after a model swap the alert goes without reasons.
    """
    model = app.scoring_model
    if model is None or model.version != fwd.model_version:
        return []
    rows = np.asarray([fwd.features], dtype=np.float32)
    reasons = model.scorer.explain(rows, settings.reasons_top_k, [fwd.features])[0]
    return [r.to_dict() for r in reasons]


class FanInPipeline:
    """Process micro-batches of forwarded transactions (one table write batch per batch)."""

    def __init__(
        self,
        runtime: AmlRuntime,
        store: AccountStore,
        sender: BatchSender,
        metrics: VigilMetrics,
        alert_topics: dict[str, str],
        explain: Explainer,
        clock: Callable[[], float] = time.time,
        settings: Settings | None = None,
        end_offset: EndOffsets = _unknown_end,
    ) -> None:
        #: Dead-letter topic, partitions, size limit and amount bound (the worker's settings).
        self.settings = settings if settings is not None else Settings()
        #: Tells a stale input-offset mark from a redelivery (models.redelivery).
        self.end_offset = end_offset
        self.runtime = runtime
        self.store = store
        self.sender = sender
        self.metrics = metrics
        self.alert_topics = alert_topics
        self.explain = explain
        self.clock = clock

    async def process(self, messages: Sequence[InMessage]) -> None:
        """Count senders per counterparty, alert on fan-in, write the state, wait for acks."""
        snap = self.runtime.snapshot
        fanin = snap.fanin
        allowed = snap.lists.allow.counterparties
        now_ms = int(self.clock() * 1000)
        states: dict[tuple[int, bytes], list[Any]] = {}
        dirty: set[tuple[int, bytes]] = set()
        for msg in messages:
            raw = None
            if msg.key is not None and (msg.partition, msg.key) not in states:
                # A failing read is the database's, not the record's: it stops the worker.
                raw = self.store.get(msg.partition, msg.key)
            try:
                self._count(msg, raw, fanin, allowed, states, dirty, now_ms)
            except Exception as exc:
                # Only the account pipeline writes this topic, so this is a bug: keep the
                # record in the dead-letter topic and go on with the others.
                self._dead_letter(msg, exc)

        changelog = self.store.changelog_topic
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for slot in dirty:
            partition, key = slot
            value = orjson.dumps(states[slot])
            by_partition.setdefault(partition, []).append((key, value))
            self.sender.add(changelog, partition, key, value)
        for partition, items in by_partition.items():
            self.store.put_many(partition, items)
        delivery = await self.sender.submit()
        for (topic, partition), offset in (await delivery).items():
            if topic == changelog:
                self.store.set_changelog_offset(partition, offset)

    def _count(
        self,
        msg: InMessage,
        raw: bytes | None,
        fanin: Any,
        allowed: frozenset[str],
        states: dict[tuple[int, bytes], list[Any]],
        dirty: set[tuple[int, bytes]],
        now_ms: int,
    ) -> None:
        """Count one forwarded transaction's sender; alert if a fan-in rule fires.

        ``raw`` is the stored state of the record's key when ``states`` does not hold it yet.
        """
        fwd = parse_forward(msg.value, self.settings.max_amount)
        tx = fwd.tx
        if msg.key is None or not counted(tx, allowed):
            return  # no counterparty, or an allow-listed one
        slot = (msg.partition, msg.key)
        state = states.get(slot)
        if state is None:
            state = load_state(raw)
        pos = InputPosition(msg.topic, msg.offset, self.end_offset(msg.topic, msg.partition))
        result = count_fanin(fanin, allowed, state, tx, pos)
        assert result is not None  # counted, as checked above
        hits, state = result
        alert = None
        raised = escalate_fanin(Decision(fwd.tier, fwd.rules, True, fwd.alerts), hits)
        if raised is not None:
            tier = raised.tier
            reasons = fwd.reasons or self.explain(fwd)
            alert = dumps(fanin_alert(fwd, tier, raised.rules, reasons, now_ms))
        # The alert is built before the state is kept: a record that fails adds nothing.
        states[slot] = state
        dirty.add(slot)  # replays too: the changelog may be behind the local database
        if alert is not None:
            topic = self.alert_topics[tier]
            key = tx.account_id.encode()
            self.sender.add(topic, self.sender.partition_for(topic, key), key, alert)
            self.metrics.alerts.labels(tier).inc()
            for hit in hits:
                self.metrics.rule_hits.labels(hit.rule_id).inc()

    def _dead_letter(self, msg: InMessage, exc: BaseException) -> None:
        log.error("unusable forwarded record at offset %s, dead-lettered: %r", msg.offset, exc)
        s = self.settings
        error = f"stage=fan-in error={type(exc).__name__}: {exc}"
        headers = dead_letter_headers(msg, error, None)
        value = fit_dead_letter(msg.value, headers, s.max_message_bytes)
        self.sender.add(s.topic_deadletter, msg.partition % s.partitions, None, value, headers)
        self.metrics.deadletters.labels("stage.fan-in").inc()


def load_state(raw: bytes | None) -> list[Any]:
    """Decode a stored counterparty value (a JSON list); empty when new."""
    state = orjson.loads(raw) if raw is not None else []
    return state if isinstance(state, list) else []


async def _start() -> FanInPipeline:
    runtime = aml_runtime()
    topics = [
        app.topic(t, partitions=settings.partitions) for t in settings.alert_topics().values()
    ]
    for topic in topics:
        await topic.maybe_declare()
    producer: Any = app.producer
    sender = BatchSender(aiokafka_producer(producer), on_error=exit_now)
    store = AccountStore(counterparty_aml_table)
    deadletter = settings.topic_deadletter
    await sender.prepare([*settings.alert_topics().values(), store.changelog_topic, deadletter])
    return FanInPipeline(
        runtime,
        store,
        sender,
        app.metrics,
        settings.alert_topics(),
        explain_with_served_model,
        settings=settings,
        end_offset=input_end_offset,
    )


@app.agent(app.counterparty_batches.channel, name="aml-fan-in", concurrency=1)
async def aml_fan_in(batches: Any) -> None:
    """Evaluate fan-in rules on transactions keyed by counterparty_id, a fetch at a time."""
    route = app.counterparty_batches
    route.subscribe()
    pipeline = await _start()
    await route.serve(batches, pipeline.process, settings.batch_linger_ms / 1000.0, exit_now)


@app.timer(interval=settings.lists_reload_s)  # type: ignore[untyped-decorator]
async def reload_aml_files() -> None:
    """Re-read changed rules and list files (a broken file keeps the previous version)."""
    runtime = app.aml_runtime
    if runtime is not None:
        await asyncio.to_thread(runtime.poll)


@app.timer(interval=15.0)  # type: ignore[untyped-decorator]
async def report_counterparty_table_size() -> None:
    """Export the local fan-in table's size (a RocksDB estimate) as a gauge."""
    store = AccountStore(counterparty_aml_table)
    app.metrics.table_keys.labels("counterparty_aml").set(store.estimate_keys())

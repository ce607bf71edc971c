"""One micro-batch of transactions: validate, update velocity state, score, tier, send.

The agent hands this class plain messages. It parses and re-keys them, reads the accounts'
states from the store, lets :func:`models.decision.decide` (pure code) decide the batch, then
emits the outcome through its three edges: the account store, the batch sender and the
metrics. One RocksDB write batch and one changelog record per touched account per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from app.kafka.sender import BatchSender
from app.serving import ModelSet, ServedModel
from app.settings import Settings
from models.aml.runtime import AmlRuntime
from models.counterparty_risk import CounterpartyRisk
from models.decision import DeadLetter, NonFiniteFeatureError, Row, Slot, decide, parse_input
from models.redelivery import InputPosition
from monitoring.metrics import VigilMetrics, observe_many
from tables.accounts import AccountStore

__all__ = [
    "InMessage",
    "ModelSource",
    "NonFiniteFeatureError",
    "RiskSource",
    "ServedModel",
    "TransactionPipeline",
]

log = logging.getLogger(__name__)


class InMessage(Protocol):
    """The parts of a consumed Kafka record the pipeline reads (Faust's Message has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class ModelSource(Protocol):
    """Where the pipeline takes the models of each batch from (swapped between batches)."""

    @property
    def current(self) -> ModelSet: ...


class RiskSource(Protocol):
    """Per-counterparty risk from delayed labels (the global counterparty-risk table)."""

    def get(self, counterparty_id: str, partition: int | None = None) -> CounterpartyRisk | None:
        """``partition`` is the key's murmur2 partition (where the table holds it)."""


#: The log end (high watermark) of an input partition as the consumer last saw it, if known.
EndOffsets = Callable[[str, int], int | None]


def _unknown_end(topic: str, partition: int) -> int | None:
    return None


class _NoRisk:
    def get(self, counterparty_id: str, partition: int | None = None) -> CounterpartyRisk | None:
        return None


#: Batches whose outputs may be awaiting the broker's acknowledgement at once. Deeper
#: pipelining (8) gained no throughput on the embedded broker and raised p99 latency.
MAX_UNACKED_BATCHES = 1
#: Accounts whose murmur2 partition is remembered (the pure-Python hash costs microseconds).
PARTITION_CACHE_SIZE = 200_000


#: Kafka framing a record needs beyond its value and headers (the record batch's 61-byte
#: header, record and header lengths), counted when a dead letter is fitted to the limit.
RECORD_FRAMING_BYTES = 256
#: Most bytes of error text and of the source key a dead letter's headers carry.
MAX_ERROR_BYTES = 1024
MAX_KEY_HEADER_BYTES = 1024


def _header_text(text: str, limit: int = MAX_ERROR_BYTES) -> bytes:
    """Encode ``text`` for a header: never fails, at most ``limit`` bytes of valid UTF-8."""
    data = text.encode(errors="backslashreplace")
    if len(data) > limit:
        data = data[:limit].decode(errors="ignore").encode()
    return data


def dead_letter_headers(msg: InMessage, error: str, field: str | None) -> list[tuple[str, bytes]]:
    """Return the headers of a dead letter: the error, its field and where it came from.

    ``field`` is None when no field is to blame (a processing stage failed for the record).
    """
    headers = [("vigil.error", _header_text(error))]
    if field is not None:
        headers.append(("vigil.error.field", _header_text(field)))
    headers += [
        ("vigil.source.topic", msg.topic.encode()),
        ("vigil.source.partition", str(msg.partition).encode()),
        ("vigil.source.offset", str(msg.offset).encode()),
    ]
    key = msg.key
    if key is not None:
        if len(key) > MAX_KEY_HEADER_BYTES:
            headers.append(("vigil.source.key.truncated", str(len(key)).encode()))
            key = key[:MAX_KEY_HEADER_BYTES]
        headers.append(("vigil.source.key", key))
    return headers


def fit_dead_letter(
    value: bytes | None, headers: list[tuple[str, bytes]], limit: int
) -> bytes | None:
    """Return ``value`` cut so the record fits ``limit`` bytes, headers included.

    A cut value gets the header ``vigil.truncated`` with its original length (appended to
    ``headers``): a payload at the broker's limit could not be dead-lettered whole.
    """
    if value is None:
        return None
    size = len(value) + sum(len(k) + len(v) for k, v in headers) + RECORD_FRAMING_BYTES
    if size <= limit:
        return value
    marker = ("vigil.truncated", str(len(value)).encode())
    headers.append(marker)
    keep = limit - (size - len(value)) - len(marker[0]) - len(marker[1])
    return value[: max(0, keep)]


def exit_now(exc: BaseException) -> None:
    """Stop the process at once, so no offset is committed past outputs that were lost."""
    log.critical("output delivery failed, stopping the worker hard: %r", exc)
    logging.shutdown()
    os._exit(70)


class TransactionPipeline:
    """Process micro-batches of raw transaction messages.

    Outputs of a batch are handed to the producer and acknowledged while the next batches
    are processed (at most :data:`MAX_UNACKED_BATCHES` in flight, for back-pressure). Faust
    flushes the producer before it commits offsets, so committed input always has delivered
    outputs; a batch that fails after the producer's retries stops the process (the
    sender's ``on_error``, normally :func:`exit_now`) before that flush can return.
    """

    def __init__(
        self,
        settings: Settings,
        models: ModelSource,
        store: AccountStore,
        sender: BatchSender,
        metrics: VigilMetrics,
        clock: Callable[[], float] = time.time,
        risk: RiskSource | None = None,
        aml: AmlRuntime | None = None,
        end_offset: EndOffsets = _unknown_end,
    ) -> None:
        self.settings = settings
        #: Tells a stale input-offset mark from a redelivery (models.redelivery).
        self.end_offset = end_offset
        #: AML rules and lists (issue 4), re-read on change by a timer in agents/counterparties.
        self.aml = aml if aml is not None else AmlRuntime.from_settings(settings)
        self.models = models
        self.risk: RiskSource = risk if risk is not None else _NoRisk()
        self.store = store
        self.sender = sender
        self.metrics = metrics
        self.clock = clock
        self._in_flight: deque[asyncio.Future[dict[tuple[str, int], int]]] = deque()
        self._alert_topics = settings.alert_topics()
        m = metrics
        self._c_scored = m.transactions.labels("scored")
        self._c_invalid = m.transactions.labels("invalid")
        self._c_replayed = m.transactions.labels("replayed")
        self._c_repartitioned = m.transactions.labels("repartitioned")
        self._partition_cache: dict[bytes, int] = {}

    def _home_partition(self, key: bytes) -> int:
        """Return the partition murmur2 gives ``key`` (cached: accounts repeat).

        The same on every topic: all have ``VIGIL_PARTITIONS`` partitions.
        """
        cache = self._partition_cache
        partition = cache.get(key)
        if partition is None:
            if len(cache) >= PARTITION_CACHE_SIZE:
                cache.clear()
            partition = cache[key] = self.sender.partition_for(self.settings.topic_repartition, key)
        return partition

    def _dead_letter(self, msg: InMessage, dead: DeadLetter) -> None:
        if dead.exc is not None:  # a stage failed for the record: a bug, or input not foreseen
            log.error(
                "record dead-lettered, %s failed: %r (%s/%d@%d)",
                dead.reason.removeprefix("stage."),
                dead.exc,
                msg.topic,
                msg.partition,
                msg.offset,
            )
        headers = dead_letter_headers(msg, dead.error, dead.field)
        s = self.settings
        value = fit_dead_letter(msg.value, headers, s.max_message_bytes)
        self.sender.add(s.topic_deadletter, msg.partition % s.partitions, None, value, headers)
        self.metrics.deadletters.labels(dead.reason).inc()
        self._c_invalid.inc()

    async def process(self, messages: Sequence[InMessage]) -> None:
        """Process one micro-batch and hand its outputs to the producer."""
        started = time.perf_counter()
        s = self.settings
        repartition = s.topic_repartition
        rows: list[Row] = []
        ends: dict[tuple[str, int], int | None] = {}
        for i, msg in enumerate(messages):
            tx = parse_input(i, msg.value, s.max_message_bytes, s.max_amount)
            if isinstance(tx, DeadLetter):
                self._dead_letter(msg, tx)
                continue
            key = tx.account_id.encode()
            if msg.topic != repartition and (
                msg.key != key or msg.partition != self._home_partition(key)
            ):
                # The producer keyed by something else, or hashed the key with another
                # partitioner (librdkafka's default is CRC32): re-key through the repartition
                # topic so each account's state lives in exactly one partition, the one the
                # web view's table_route and the fan-in stage compute (murmur2).
                partition = self._home_partition(key)
                self.sender.add(repartition, partition, key, msg.value)
                self._c_repartitioned.inc()
                continue
            source = (msg.topic, msg.partition)
            if source not in ends:
                ends[source] = self.end_offset(msg.topic, msg.partition)
            pos = InputPosition(msg.topic, msg.offset, ends[source])
            rows.append(Row(i, tx, key, msg.partition, pos))

        if rows:
            self._decide(messages, rows, started)
        delivery = await self.sender.submit()
        event_times_s = [row.tx.ts_ms / 1000.0 for row in rows]
        delivery.add_done_callback(lambda fut: self._delivered(fut, event_times_s, started))
        in_flight = self._in_flight
        in_flight.append(delivery)
        while in_flight and in_flight[0].done():
            in_flight.popleft()
        if len(in_flight) > MAX_UNACKED_BATCHES:
            await asyncio.wait([in_flight.popleft()])
        self.metrics.batch_size.observe(len(messages))

    def _risk(self, counterparty_id: str) -> CounterpartyRisk | None:
        return self.risk.get(counterparty_id, self._home_partition(counterparty_id.encode()))

    def _decide(self, messages: Sequence[InMessage], rows: list[Row], started: float) -> None:
        """Load the rows' states, decide the batch (models.decision) and emit its outcome.

        Outputs are emitted in the order the decision found them: dead letters, then each
        scored record with its alert, then the fan-in forwards, and the changelog last.
        """
        states: dict[Slot, bytes | None] = {}
        for row in rows:
            slot = row.slot
            if slot not in states:
                # A failing read is the database's, not the record's: it stops the worker.
                states[slot] = self.store.get(row.partition, row.key)
        s = self.settings
        out = decide(
            rows,
            states,
            self._risk,
            self.models.current,  # one consistent pair for the whole batch
            self.aml.snapshot,
            int(self.clock() * 1000),
            reasons_top_k=s.reasons_top_k,
            forward_topic=s.topic_by_counterparty,
        )
        m = self.metrics
        m.scoring_latency.observe(time.perf_counter() - started)
        m.recent_scores.add(out.scores)
        observe_many(m.score, out.scores)
        if out.challenger_scores is not None:
            observe_many(m.challenger_score, out.challenger_scores)

        for dead in out.dead_letters:
            self._dead_letter(messages[dead.index], dead)
        scored_topic = s.topic_scored
        for rec in out.scored:
            self.sender.add(scored_topic, rec.partition, rec.key, rec.value)
            if rec.alert is not None:
                self.sender.add(self._alert_topics[rec.tier], rec.partition, rec.key, rec.alert)
        for fwd in out.forwards:
            # Every topic has VIGIL_PARTITIONS partitions (checked at start), so the
            # murmur2 partition of a key is the same on all of them.
            self.sender.add(fwd.topic, self._home_partition(fwd.key), fwd.key, fwd.value)

        changelog = self.store.changelog_topic
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for (partition, key), state in out.states.items():
            value = state.to_bytes()
            by_partition.setdefault(partition, []).append((key, value))
            self.sender.add(changelog, partition, key, value)
        for partition, items in by_partition.items():
            self.store.put_many(partition, items)

        c = out.counts
        self._c_replayed.inc(c.replayed)
        self._c_scored.inc(c.scored)
        for tier, n in c.tiers.items():
            m.tiers.labels(tier).inc(n)
        for tier, n in c.alerts.items():
            m.alerts.labels(tier).inc(n)
        for rule_id, n in c.rule_hits.items():
            m.rule_hits.labels(rule_id).inc(n)

    def _delivered(
        self,
        delivery: asyncio.Future[dict[tuple[str, int], int]],
        event_times_s: list[float],
        started: float,
    ) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            return  # the sender's on_error has already stopped the worker
        changelog = self.store.changelog_topic
        for (topic, partition), offset in delivery.result().items():
            if topic == changelog:
                self.store.set_changelog_offset(partition, offset)
        sent_s = self.clock()
        if event_times_s:
            latencies = np.maximum(0.0, sent_s - np.asarray(event_times_s))
            observe_many(self.metrics.end_to_end_latency, latencies)
        self.metrics.batch_latency.observe(time.perf_counter() - started)

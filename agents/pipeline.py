"""One micro-batch of transactions: validate, update velocity state, score, tier, send.

The agent hands this class plain messages; everything it calls is pure code from
``models/`` except the three edges it is given: the account store, the batch sender and the
metrics. One RocksDB write batch and one changelog record per touched account per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from app.settings import Settings
from models.aml.lists import Decision
from models.aml.runtime import AmlRuntime
from models.aml.stage import AccountAmlBatch
from models.counterparty_risk import CounterpartyRisk
from models.features import FEATURE_NAMES, N_FEATURES, AccountState, update_account
from models.records import alert_record, challenger_record, dumps, scored_record
from models.redelivery import InputPosition
from models.scorer import Reason
from models.tiers import tier_for_score
from models.transaction import Transaction, ValidationError, parse_transaction
from monitoring.metrics import VigilMetrics, observe_many
from tables.accounts import AccountStore

from .output import BatchSender
from .served_model import ModelSet, ServedModel

__all__ = ["InMessage", "ModelSource", "RiskSource", "ServedModel", "TransactionPipeline"]

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
#: The decision recorded for a row that failed before its own: keeps row indices aligned.
_FAILED = Decision("MINIMAL", [], False, False)


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


class NonFiniteFeatureError(ArithmeticError):
    """A feature came out infinite (beyond float32): the model must never see it."""


def _score_both(models: ModelSet, rows: np.ndarray) -> None:
    models.champion.scorer.score(rows)
    if models.challenger is not None:
        models.challenger.scorer.score(rows)


def _failing_rows(
    work: Callable[[np.ndarray], object], rows: np.ndarray
) -> dict[int, BaseException]:
    """Return the rows ``work`` fails on one at a time, after it failed on all of them.

    A failure is the record's when the other rows pass without it; when every row of
    several fails alone, the cause is not in the records (a broken model): raise it.
    """
    failed: dict[int, BaseException] = {}
    for i in range(rows.shape[0]):
        try:
            work(rows[i : i + 1])
        except Exception as exc:
            failed[i] = exc
    if len(failed) == rows.shape[0] and len(failed) > 1:
        raise next(iter(failed.values()))
    return failed


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

    def _dead_letter(self, msg: InMessage, error: str, field: str | None, reason: str) -> None:
        headers = dead_letter_headers(msg, error, field)
        s = self.settings
        value = fit_dead_letter(msg.value, headers, s.max_message_bytes)
        self.sender.add(s.topic_deadletter, msg.partition % s.partitions, None, value, headers)
        self.metrics.deadletters.labels(reason).inc()
        self._c_invalid.inc()

    def _failed(self, msg: InMessage, stage: str, exc: BaseException) -> None:
        """Dead-letter a record that failed alone at ``stage``: a bug, or input not foreseen."""
        log.error(
            "record dead-lettered, %s failed: %r (%s/%d@%d)",
            stage,
            exc,
            msg.topic,
            msg.partition,
            msg.offset,
        )
        error = f"stage={stage} error={type(exc).__name__}: {exc}"
        self._dead_letter(msg, error, None, f"stage.{stage}")

    def _drop_rows(
        self,
        failed: dict[int, BaseException],
        stage: str,
        valid: list[tuple[InMessage, Transaction, bytes]],
        feature_rows: list[list[float]],
        replayed: list[bool],
        rows: np.ndarray,
        aml: AccountAmlBatch,
    ) -> tuple[
        list[tuple[InMessage, Transaction, bytes]], list[list[float]], list[bool], np.ndarray
    ]:
        """Dead-letter the ``failed`` rows and return the batch's lists without them."""
        for i in sorted(failed, reverse=True):
            self._failed(valid[i][0], stage, failed[i])
            del aml.hits[i]
        keep = [i for i in range(len(valid)) if i not in failed]
        return (
            [valid[i] for i in keep],
            [feature_rows[i] for i in keep],
            [replayed[i] for i in keep],
            rows[keep],
        )

    def _explain(
        self,
        model: ServedModel,
        rows: np.ndarray,
        feature_rows: list[list[float]],
        alerted: list[int],
        valid: list[tuple[InMessage, Transaction, bytes]],
        outputs: list[bytes | None],
        tiers: list[str],
    ) -> dict[int, list[Reason]]:
        """Return the reasons of the alerted rows; a row that cannot be explained alone is
        dead-lettered (its ``outputs`` and ``tiers`` entries are cleared)."""
        k = self.settings.reasons_top_k
        try:
            why = model.scorer.explain(rows[alerted], k, [feature_rows[i] for i in alerted])
        except Exception:
            failed = _failing_rows(lambda r: model.scorer.explain(r, k), rows[alerted])
            for j, err in failed.items():
                i = alerted[j]
                self._failed(valid[i][0], "explain", err)
                outputs[i], tiers[i] = None, ""
            alerted = [i for i in alerted if outputs[i] is not None]
            why = model.scorer.explain(rows[alerted], k, [feature_rows[i] for i in alerted])
        return dict(zip(alerted, why, strict=True))

    async def process(self, messages: Sequence[InMessage]) -> None:
        """Process one micro-batch and hand its outputs to the producer."""
        started = time.perf_counter()
        s = self.settings
        repartition = s.topic_repartition
        valid: list[tuple[InMessage, Transaction, bytes]] = []
        for msg in messages:
            try:
                tx = parse_transaction(msg.value, s.max_message_bytes, s.max_amount)
                key = tx.account_id.encode()
            except ValidationError as err:
                self._dead_letter(msg, str(err), err.field, err.reason)
                continue
            except Exception as exc:  # confined to this record; validation should have said
                self._failed(msg, "parse", exc)
                continue
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
            valid.append((msg, tx, key))

        if valid:
            self._score(valid, started)
        delivery = await self.sender.submit()
        event_times_s = [tx.ts_ms / 1000.0 for _, tx, _ in valid]
        delivery.add_done_callback(lambda fut: self._delivered(fut, event_times_s, started))
        in_flight = self._in_flight
        in_flight.append(delivery)
        while in_flight and in_flight[0].done():
            in_flight.popleft()
        if len(in_flight) > MAX_UNACKED_BATCHES:
            await asyncio.wait([in_flight.popleft()])
        self.metrics.batch_size.observe(len(messages))

    def _score(self, valid: list[tuple[InMessage, Transaction, bytes]], started: float) -> None:
        """Featurise, score, decide and emit a batch; a row that fails alone is dead-lettered.

        Every output of a row is built before any is handed to the sender, so a row ends up
        either scored (with its alert and forward) or dead-lettered, never both. A row that
        fails after its state was updated leaves that update in place.
        """
        states: dict[tuple[int, bytes], AccountState] = {}
        risks: dict[str, CounterpartyRisk | None] = {}
        dirty: set[tuple[int, bytes]] = set()
        feature_rows: list[list[float]] = []
        replayed: list[bool] = []
        kept: list[tuple[InMessage, Transaction, bytes]] = []
        aml = AccountAmlBatch(
            self.aml.snapshot, int(self.clock() * 1000), self.settings.topic_by_counterparty
        )
        ends: dict[tuple[str, int], int | None] = {}
        for item in valid:
            msg, tx, key = item
            slot = (msg.partition, key)
            source = (msg.topic, msg.partition)
            if source not in ends:
                ends[source] = self.end_offset(msg.topic, msg.partition)
            pos = InputPosition(msg.topic, msg.offset, ends[source])
            state = states.get(slot)
            # A failing read is the database's, not the record's: it stops the worker.
            raw = self.store.get(msg.partition, key) if state is None else None
            try:
                if state is None:
                    state = AccountState.from_bytes(raw) if raw is not None else AccountState()
                    states[slot] = state
                before = state.n
                cp = tx.counterparty_id
                cp_risk = None
                if cp is not None:
                    if cp in risks:
                        cp_risk = risks[cp]
                    else:
                        cp_part = self._home_partition(cp.encode())
                        cp_risk = risks[cp] = self.risk.get(cp, cp_part)
                features, state = update_account(state, tx, cp_risk, pos)
                aml.evaluate(state, tx, features, replay=state.n == before)
            except Exception as exc:  # confined to this record (and its account's state)
                self._failed(msg, "featurise", exc)
                continue
            # Replays are written back too: after a crash the local database may be ahead of
            # the changelog (written before the outputs were acknowledged), and only a new
            # changelog record brings standbys and a later owner up to date.
            dirty.add(slot)
            replayed.append(state.n == before)
            feature_rows.append(features)
            kept.append(item)
        valid = kept

        # One conversion for the batch (a list row into a numpy row costs ~2 us each). A value
        # beyond float32 becomes inf, which the check below dead-letters: no warning needed.
        with np.errstate(over="ignore"):
            rows = np.array(feature_rows, dtype=np.float32).reshape(len(valid), N_FEATURES)
        if np.isinf(rows).any():  # bounded inputs cannot get here; a bug must not either
            failed: dict[int, BaseException] = {}
            for i in np.flatnonzero(np.isinf(rows).any(axis=1)).tolist():
                names = [FEATURE_NAMES[j] for j in np.flatnonzero(np.isinf(rows[i])).tolist()]
                failed[i] = NonFiniteFeatureError(f"infinite as float32: {', '.join(names)}")
            valid, feature_rows, replayed, rows = self._drop_rows(
                failed, "featurise", valid, feature_rows, replayed, rows, aml
            )
        models = self.models.current  # one consistent pair for the whole batch
        model = models.champion
        challenger = models.challenger
        try:
            scores = model.scorer.score(rows)
            ch_scores = challenger.scorer.score(rows) if challenger is not None else None
        except Exception:
            failed = _failing_rows(lambda r: _score_both(models, r), rows)
            valid, feature_rows, replayed, rows = self._drop_rows(
                failed, "score", valid, feature_rows, replayed, rows, aml
            )
            scores = model.scorer.score(rows)
            ch_scores = challenger.scorer.score(rows) if challenger is not None else None
        self.metrics.scoring_latency.observe(time.perf_counter() - started)
        self.metrics.recent_scores.add(scores)

        now_ms = int(self.clock() * 1000)
        thresholds = model.thresholds
        alerted: list[int] = []
        tiers: list[str] = []
        #: Each row's transactions.scored value; None once the row is dead-lettered.
        outputs: list[bytes | None] = []
        observe_many(self.metrics.score, scores)
        if ch_scores is not None:
            observe_many(self.metrics.challenger_score, ch_scores)
        for i, (msg, tx, _) in enumerate(valid):
            stage = "rule"
            try:
                score = float(scores[i])
                decision = aml.decide(i, tx, tier_for_score(score, thresholds))
                tier = decision.tier  # the model's tier raised by AML rules and lists
                stage = "serialise"
                shadow = None
                if ch_scores is not None:
                    assert challenger is not None
                    ch_score = float(ch_scores[i])
                    shadow = challenger_record(
                        challenger.version,
                        ch_score,
                        tier_for_score(ch_score, challenger.thresholds),
                    )
                value = scored_record(
                    tx, score, tier, model.version, decision.rules, now_ms, replayed[i], shadow
                )
            except Exception as exc:
                if len(aml.decisions) == i:
                    aml.decisions.append(_FAILED)
                self._failed(msg, stage, exc)
                tiers.append("")
                outputs.append(None)
                continue
            tiers.append(tier)
            outputs.append(value)
            if decision.alert:
                alerted.append(i)
        explained: dict[int, Any] = {}
        alerts: dict[int, bytes] = {}
        if alerted:
            reasons = self._explain(model, rows, feature_rows, alerted, valid, outputs, tiers)
            for i, why in reasons.items():
                msg, tx, _ = valid[i]
                try:
                    rules = aml.decisions[i].rules
                    score = float(scores[i])
                    alert = alert_record(
                        tx, score, tiers[i], model.version, why, rules, feature_rows[i], now_ms
                    )
                    alerts[i] = dumps(alert)
                except Exception as exc:
                    self._failed(msg, "serialise", exc)
                    outputs[i], tiers[i] = None, ""
                    continue
                explained[i] = why
        forwards: list[tuple[str, bytes, bytes]] = []
        if aml.snapshot.fanin.rules:
            for i, (msg, tx, _) in enumerate(valid):
                if outputs[i] is None:
                    continue
                try:  # to the fan-in agent (agents/counterparties.py), keyed by counterparty
                    forward = aml.forward_record(
                        i, tx, scores, model.version, explained, feature_rows
                    )
                except Exception as exc:
                    self._failed(msg, "forward", exc)
                    outputs[i], tiers[i] = None, ""
                    continue
                if forward is not None:
                    forwards.append(forward)
        scored_topic = self.settings.topic_scored
        n_scored = n_replayed = 0
        for i, (msg, _, key) in enumerate(valid):
            out = outputs[i]
            if out is None:
                continue
            self.sender.add(scored_topic, msg.partition, key, out)
            alert_value = alerts.get(i)
            if alert_value is not None:
                self.sender.add(self._alert_topics[tiers[i]], msg.partition, key, alert_value)
                self.metrics.alerts.labels(tiers[i]).inc()
            n_scored += 1
            n_replayed += replayed[i]
        for topic, cp_key, value in forwards:
            # Every topic has VIGIL_PARTITIONS partitions (checked at start), so the
            # murmur2 partition of a key is the same on all of them.
            self.sender.add(topic, self._home_partition(cp_key), cp_key, value)

        changelog = self.store.changelog_topic
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for slot in dirty:
            partition, key = slot
            value = states[slot].to_bytes()
            by_partition.setdefault(partition, []).append((key, value))
            self.sender.add(changelog, partition, key, value)
        for partition, items in by_partition.items():
            self.store.put_many(partition, items)

        self._c_replayed.inc(n_replayed)
        self._c_scored.inc(n_scored - n_replayed)
        for tier in set(tiers):
            if tier:  # "": the row was dead-lettered
                self.metrics.tiers.labels(tier).inc(tiers.count(tier))
        for rule_id, n in aml.hit_counts().items():
            self.metrics.rule_hits.labels(rule_id).inc(n)

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

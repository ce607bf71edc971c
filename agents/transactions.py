"""The scoring agents: transactions (and re-keyed transactions) in, scores and alerts out."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from agents.counterparties import aml_runtime, input_end_offset
from agents.pipeline import TransactionPipeline, exit_now
from app.internals.faust_transport import aiokafka_producer
from app.kafka.instance import app
from app.kafka.sender import BatchSender
from app.serving import ModelWatcher
from tables.accounts import AccountStore, accounts_table
from tables.counterparty_risk import CounterpartyRiskStore, counterparty_risk_table

log = logging.getLogger(__name__)
settings = app.settings


async def _start_pipeline() -> TransactionPipeline:
    """Load the model and prepare the producer; runs when the agent starts, not at import."""
    watcher = _model_watcher()
    outputs = app.output_topics()
    for topic in outputs:
        await topic.maybe_declare()
    producer: Any = app.producer  # the aiokafka driver's Producer
    sender = BatchSender(aiokafka_producer(producer), on_error=exit_now)
    names = [t.get_topic_name() for t in outputs]
    changelog = str(accounts_table.changelog_topic.get_topic_name())
    await app.by_counterparty_topic.maybe_declare()  # fan-in stage (AML, issue 4)
    forward = settings.topic_by_counterparty
    inputs = [settings.topic_transactions, settings.topic_repartition]
    await sender.prepare([*inputs, *names, changelog, forward])
    check_partition_counts(sender, [*inputs, *names, changelog, forward])
    # Forwards for the fan-in rules wait up to VIGIL_FANIN_LINGER_MS: the fan-in stage then
    # gets a few large batches a second instead of one per fetch. The producer hands them
    # over before every commit, so committed input always has its forwards delivered.
    sender.hold(forward, settings.fanin_linger_ms / 1000.0)
    producer.before_flush(sender.release)
    pipeline = TransactionPipeline(
        settings,
        watcher,
        AccountStore(accounts_table),
        sender,
        app.metrics,
        risk=CounterpartyRiskStore(counterparty_risk_table),
        aml=aml_runtime(),
        end_offset=input_end_offset,
    )
    global _sender
    _sender = sender
    # What exists now (Faust, aiokafka, the models: ~140k objects) lives as long as the
    # worker. Keep it out of the cyclic collector: a full pass over it takes ~70 ms on the
    # development machine, a pause of the whole event loop in the latency tail.
    gc.collect()
    gc.freeze()
    return pipeline


def check_partition_counts(sender: BatchSender, topics: list[str]) -> None:
    """Refuse to run unless every topic has ``VIGIL_PARTITIONS`` partitions.

    Outputs, the table and its changelog use the input message's partition number, so an
    input topic with another count (auto-created with the broker's ``num.partitions``, or
    partitions added to scale out) would crash-loop or split an account's state.
    """
    wrong = {t: n for t in topics if (n := sender.partition_count(t)) != settings.partitions}
    if wrong:
        # A configuration error: stop the whole worker (an agent's exception would only
        # restart the agent) with the sysexits code for it.
        log.critical(
            "topics must all have VIGIL_PARTITIONS=%d partitions, these differ: %s; "
            "recreate them or set VIGIL_PARTITIONS to match",
            settings.partitions,
            wrong,
        )
        logging.shutdown()
        os._exit(78)


_watcher: ModelWatcher | None = None
#: The scoring agent's sender, for :func:`release_held_forwards` (set when the agent starts).
_sender: BatchSender | None = None


def _model_watcher() -> ModelWatcher:
    """Load the models once per worker (both agents share them) and remember the watcher."""
    global _watcher
    if _watcher is None:
        _watcher = ModelWatcher(
            settings.model_path,
            settings.challenger_model_path,
            settings.tier_overrides(),
            app.metrics,
        )
        app.scoring_model = _watcher.current.champion
        challenger = _watcher.current.challenger
        log.info(
            "model loaded",
            extra={
                "version": _watcher.current.champion.version,
                "path": str(settings.model_path),
                "challenger": None if challenger is None else challenger.version,
            },
        )
    return _watcher


# Loaded before the worker connects: no model (or a broken one), no worker (exit 78).
app.start_checks.append(_model_watcher)


@app.timer(interval=settings.model_reload_s)  # type: ignore[untyped-decorator]
async def reload_models() -> None:
    """Swap to changed artifact files between batches (hot swap, no restart)."""
    if _watcher is not None and await asyncio.to_thread(_watcher.check):
        app.scoring_model = _watcher.current.champion


@app.agent(app.transaction_batches.channel, name="score-transactions", concurrency=1)
async def score_transactions(batches: Any) -> None:
    """Score transactions, a fetch at a time (app.kafka.batch_delivery), from both input topics.

    One agent takes both the topic as producers keyed it and the re-keyed topic, so the
    batches of one account are processed one after the other, never interleaved.
    """
    route = app.transaction_batches
    route.subscribe()
    pipeline = await _start_pipeline()
    # Any exception stops the worker (exit_now): bad input never gets there (it goes to the
    # dead-letter topic), so it is a bug or a broken broker, and the batch stays unacked.
    await route.serve(batches, pipeline.process, settings.batch_linger_ms / 1000.0, exit_now)


@app.timer(interval=max(0.05, settings.fanin_linger_ms / 1000.0))  # type: ignore[untyped-decorator]
async def release_held_forwards() -> None:
    """Send held forwards once they are old enough, also when no new batch comes."""
    if _sender is not None:
        await _sender.release_due()


@app.timer(interval=15.0)  # type: ignore[untyped-decorator]  # faust leaves it untyped
async def report_table_sizes() -> None:
    """Export the local tables' sizes (RocksDB estimates) as gauges."""
    for name, table in (
        ("accounts", accounts_table),
        ("counterparty_risk", counterparty_risk_table),
    ):
        app.metrics.table_keys.labels(name).set(AccountStore(table).estimate_keys())

"""The web view's alert feed: every partition of the alert topics, read without a group.

Faust's agents split partitions across workers, so a worker's own agents see only some of
the alerts. This service reads all partitions of the three alert topics with a plain
aiokafka consumer that has no consumer group (it commits nothing and joins no rebalance),
starting at the last ``VIGIL_WEB_RECENT_ALERTS`` records of each partition, so any worker's
page shows alerts from all partitions. It also samples the end offsets of the scored topic
for the page's transactions-per-second figure, and the consumer group's lag on the
transactions topic, so the page can say when the workers fall behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from app import app
from app.internals import aiokafka_client
from app.kafka import tansu_compat
from app.kafka.tansu_compat import HighWatermarkProbe, corrected_end_offsets
from app.settings import bootstrap_servers
from app.web.feed import AlertFeed, parse_alert

log = logging.getLogger(__name__)
settings = app.settings

#: The feed's own fetch wait: a live view needs no 10 ms polling, and tansu answers a
#: zero wait with an empty fetch (so never below VIGIL_FETCH_MAX_WAIT_MS either).
FEED_FETCH_WAIT_MS = 100
RATE_SAMPLE_S = 5.0
BACKFILL_TIMEOUT_S = 15.0

#: The recent alerts of this worker's web view (filled by :class:`AlertFeedService`).
feed = AlertFeed(settings.web_recent_alerts)


async def _end_offsets(
    consumer: Any, tps: list[TopicPartition], probe: HighWatermarkProbe | None = None
) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    if app.tansu.use(tansu_compat.FEED_END_OFFSETS):
        # tansu's ListOffsets LATEST under-reports; the fetch high watermark is right.
        if probe is not None:
            ends = await probe.corrected(ends)
        else:
            ends = await corrected_end_offsets(consumer, ends)
    return ends


async def _partitions(consumer: Any, topics: Iterable[str]) -> list[TopicPartition]:
    """Wait until every topic exists (the agent declares them) and return its partitions."""
    while True:
        found: list[TopicPartition] = []
        missing = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                found.extend(TopicPartition(topic, p) for p in sorted(parts))
            else:
                missing.append(topic)
        if not missing:
            return found
        await aiokafka_client.refresh_metadata(consumer)
        await asyncio.sleep(1.0)


async def _group_lag(offsets: Any, tps: list[TopicPartition]) -> int | None:
    """Return the workers' lag on ``tps`` (log end minus committed); None if unreadable.

    The listed log end is used as is: on tansu it may under-report by a batch, which only
    makes the lag look a little smaller (never negative).
    """
    try:
        ends = await offsets.end_offsets(tps)
        lag = 0
        for tp in tps:
            committed = await offsets.committed(tp)
            lag += max(0, int(ends[tp]) - int(committed or 0))
        return lag
    except Exception as exc:  # a status figure must never end the feed
        log.debug("lag not read", extra={"error": repr(exc)})
        return None


@app.service
class AlertFeedService(Service):  # type: ignore[misc]
    """Fill :data:`feed` from the alert topics for as long as the worker runs."""

    async def on_stop(self) -> None:
        """End the server-sent event streams so the web server can stop at once."""
        feed.close()

    @Service.task  # type: ignore[untyped-decorator]
    async def _run(self) -> None:
        while not self.should_stop:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker hiccup must not end the feed for good
                log.warning("alert feed restarts", extra={"error": repr(exc)})
                await self.sleep(2.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(settings.broker_url),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=max(FEED_FETCH_WAIT_MS, settings.fetch_max_wait_ms),
            client_id=f"{settings.app_id}-web-feed",
            **app.kafka_security.client_kwargs(),
        )
        await consumer.start()
        probe = HighWatermarkProbe(aiokafka_client.bootstrap_servers_of(consumer))
        # Reads the workers' committed offsets; it never subscribes, so it never joins.
        offsets = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(settings.broker_url),
            group_id=settings.app_id,
            enable_auto_commit=False,
            client_id=f"{settings.app_id}-web-lag",
            **app.kafka_security.client_kwargs(),
        )
        await offsets.start()
        try:
            tps = await _partitions(consumer, settings.alert_topics().values())
            scored = await _partitions(consumer, [settings.topic_scored])
            inputs = await _partitions(offsets, [settings.topic_transactions])
            consumer.assign(tps)
            feed.live = False
            await self._backfill(consumer, tps)
            feed.live = True
            log.info("alert feed live", extra={"partitions": len(tps), "alerts": len(feed)})
            next_sample = 0.0
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                now = time.monotonic()
                for messages in batch.values():
                    for message in messages:
                        alert = parse_alert(message.value)
                        if alert is not None:
                            feed.add(alert, now)
                if now >= next_sample:
                    ends = await _end_offsets(consumer, scored, probe)
                    lag = await _group_lag(offsets, inputs)
                    feed.sample(time.monotonic(), sum(ends.values()), lag)
                    next_sample = now + RATE_SAMPLE_S
        finally:
            await probe.close()
            await offsets.stop()
            await consumer.stop()

    async def _backfill(self, consumer: Any, tps: list[TopicPartition]) -> None:
        """Read the last ``capacity`` alerts of each partition, oldest first into the feed.

        The newest ``capacity`` alerts overall are among these, whatever their spread.
        """
        begins = await consumer.beginning_offsets(tps)
        ends = await _end_offsets(consumer, tps)
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - feed.capacity))
        backlog: list[dict[str, Any]] = []
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        pending = {tp for tp in tps if ends[tp] > begins[tp]}
        while pending and time.monotonic() < deadline and not self.should_stop:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    alert = parse_alert(message.value)
                    if alert is not None:
                        backlog.append(alert)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        backlog.sort(key=lambda a: a.get("scored_ts") or 0)
        now = time.monotonic()
        for alert in backlog:
            feed.add(alert, now, live=False)

"""Faust's aiokafka transport with Vigil's consumer fixes.

* Faust hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer. A broker that waits
  that long on an idle fetch (tansu does) adds up to 1.5 s to end-to-end latency at low
  rates, so the wait is a setting (``VIGIL_FETCH_MAX_WAIT_MS``). On Apache Kafka a fetch
  returns as soon as data arrives, so a short wait only costs a few more empty fetches.
* Lost messages at start-up (any broker): Faust starts fetching, then suspends the flow
  (dropping what is queued) and "seeks stream partitions to committed offsets" so the
  dropped messages are read again. aiokafka's ``seek_to_committed`` skips partitions whose
  committed offset is missing or 0, so on a partition nobody has committed yet (a new
  deployment, or a crash before the first commit) the dropped messages were never read
  again. Such partitions are rewound to their beginning, where ``auto_offset_reset=earliest``
  started them anyway; re-read messages are recognised as replays by the account state.
* Batch routes: the scoring topics' records reach their agent a fetch at a time
  (:mod:`app.kafka.batch_delivery`).
* Embedded broker only: idle partitions are fetched less often
  (:func:`app.kafka.tansu_compat.fetch_quiet_partitions_less_often`).
* Topic configuration: every topic Vigil creates (its own, the changelogs, the re-keyed and
  Faust's internal ones) gets ``min.insync.replicas`` from the settings, beside Faust's
  replication factor; Faust has no app-wide topic configuration.
* Topics a worker creates are waited for until the broker's metadata lists them, so the
  group join that follows sees them (Apache Kafka answers CreateTopics before that).
* Held records: Faust flushes its producer before it commits offsets, and
  :class:`VigilProducer` first hands over what the batch senders hold back
  (:meth:`app.kafka.sender.BatchSender.hold`), so a commit never covers undelivered outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.internals import aiokafka_client, faust_transport
from app.kafka import tansu_compat
from app.kafka.failfast import EX_SOFTWARE, stop_process
from app.settings import Settings

#: How long a created topic may take to show in the broker's metadata.
TOPIC_METADATA_TIMEOUT_S = 30.0


def _settings(app: Any) -> Settings:
    """Return the settings of the :class:`app.kafka.faust_app.VigilApp` a consumer belongs to."""
    settings: Settings = app.settings
    return settings


def _tansu(app: Any) -> tansu_compat.Workarounds:
    """Return the tansu workaround switch of the app a consumer belongs to."""
    workarounds: tansu_compat.Workarounds = app.tansu
    return workarounds


class VigilConsumerThread(faust_transport.HookedConsumerThread):
    """Consumer thread whose worker consumer uses the configured fetch wait."""

    def worker_consumer_created(self, consumer: Any) -> None:
        """Give the worker's consumer the configured fetch wait (read when it starts)."""
        aiokafka_client.set_fetch_max_wait(consumer, _settings(self.app).fetch_max_wait_ms)

    async def on_start(self) -> None:
        await super().on_start()
        hot = [_settings(self.app).topic_transactions]
        if not self.app.client_only and _tansu(self.app).use(tansu_compat.QUIET_FETCHES):
            # Producers' transactions keep the fetch wait; everything else (labels, re-keyed
            # and fan-in topics, changelogs) waits up to QUIET_FETCH_EVERY_S once idle.
            tansu_compat.fetch_quiet_partitions_less_often(self.aiokafka_consumer(), hot)

    async def seek_to_committed(self) -> Any:
        committed = await super().seek_to_committed()
        unset = [tp for tp, offset in committed.items() if not offset or offset < 0]
        if unset:
            await self.call_thread(self._rewind_assigned, unset)
        return committed

    async def _rewind_assigned(self, tps: list[Any]) -> None:
        """Seek those of ``tps`` still assigned to their beginning (in the consumer's thread).

        A rebalance between the committed-offset lookup and this seek took some partitions
        away: seeking them raised IllegalStateError, which ended the drain loop and crashed
        the worker when a second worker joined.
        """
        consumer = self.aiokafka_consumer()
        assigned = consumer.assignment()
        held = [tp for tp in tps if tp in assigned]
        if held:  # no partitions at all would mean every assigned partition
            await consumer.seek_to_beginning(*held)

    async def adjust_highwaters(self, offsets: Mapping[Any, int]) -> Any:
        """Raise the end offsets to the fetch high watermark (embedded broker only)."""
        if _tansu(self.app).use(tansu_compat.END_OFFSETS):
            return await tansu_compat.corrected_end_offsets(self.aiokafka_consumer(), offsets)
        return offsets


class VigilConsumer(faust_transport.HookedConsumer):
    """Faust consumer that runs :class:`VigilConsumerThread` and delivers batch routes."""

    consumer_thread_class = VigilConsumerThread

    async def drain_messages(self, fetcher: Any) -> None:
        """Run Faust's fetch loop, or its batch-route copy when the app has routes."""
        routes = getattr(self.app, "batch_routes", None)
        if not routes:
            await super().drain_messages(fetcher)
            return
        from app.kafka.batch_delivery import drain

        try:
            await drain(self, fetcher, routes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.app.should_stop:
                return  # stopping anyway: the error is the shutdown's, not the stream's
            # Faust would crash the fetcher service and leave the process up: a worker that
            # holds its partitions and consumes nothing, unnoticed by its supervisor.
            stop_process(
                f"the consumer's fetch loop failed ({type(exc).__name__}: {exc}); "
                "stopping the worker so that its supervisor restarts it from the last commit",
                EX_SOFTWARE,
            )


class VigilProducer(faust_transport.HookedProducer):
    """Faust's aiokafka producer that runs registered hooks before every flush."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._before_flush: list[Callable[[], Awaitable[object]]] = []

    def before_flush(self, hook: Callable[[], Awaitable[object]]) -> None:
        """Run ``hook`` (e.g. a sender's ``release``) at the start of every flush."""
        self._before_flush.append(hook)

    async def flush(self) -> None:
        """Hand over held records, then wait for everything buffered (Faust's flush)."""
        for hook in list(self._before_flush):
            await hook()
        await super().flush()

    async def create_topic(
        self, topic: str, partitions: int, replication: int, **kwargs: Any
    ) -> None:
        """Create ``topic`` (if missing), then wait until the broker's metadata lists it.

        Apache Kafka answers CreateTopics once its controller has the topic; the broker's
        metadata catches up a moment later. A group join in between left the topic out of
        the assignment ("Ignoring missing topic"), and with a global table's changelog left
        out, a new app's first worker hung in its join and never got ready. tansu creates
        topics before it answers, so this returns at once there.
        """
        await super().create_topic(topic, partitions, replication, **kwargs)
        if self.app.conf.topic_allow_declare:
            client = self.aiokafka_producer().client
            await asyncio.wait_for(
                aiokafka_client.wait_on_metadata(client, topic), TOPIC_METADATA_TIMEOUT_S
            )


def topic_config(settings: Settings, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a new topic's configuration: ``min.insync.replicas`` unless ``config`` sets it."""
    return {"min.insync.replicas": str(settings.topic_min_insync_replicas), **(config or {})}


class VigilTransport(faust_transport.HookedTransport):
    """The aiokafka transport with :class:`VigilConsumer` and :class:`VigilProducer`."""

    Consumer = VigilConsumer
    Producer = VigilProducer

    def new_topic_config(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Add the settings' ``min.insync.replicas`` (every creation goes through here)."""
        return topic_config(_settings(self.app), config)

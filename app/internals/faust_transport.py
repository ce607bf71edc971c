"""Faust's aiokafka driver: its private hooks, overridden once and renamed to public ones.

:mod:`app.kafka.transport` changes the worker consumer's fetch wait, the end offsets, the
fetch loop and topic creation; Faust offers these only as private methods. The classes here
override each private method once and call a public hook that Vigil's subclasses override.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from app.internals.registry import Internal

DRIVER = "faust.transport.drivers.aiokafka"
FAUST = "faust-streaming"


def _entry(owner: str, name: str, why: str, params: tuple[str, ...]) -> Internal:
    return Internal(FAUST, f"{DRIVER}:{owner}", name, "method", why, __name__, params=params)


INTERNALS: tuple[Internal, ...] = (
    _entry(
        "AIOKafkaConsumerThread",
        "_create_worker_consumer",
        "builds the worker's aiokafka consumer (configured before it starts)",
        ("self", "transport"),
    ),
    _entry(
        "AIOKafkaConsumerThread",
        "_highwaters",
        "the end offsets table recovery waits for",
        ("self", "partitions"),
    ),
    _entry(
        "AIOKafkaConsumerThread",
        "_ensure_consumer",
        "the thread's aiokafka consumer",
        ("self",),
    ),
    _entry("Consumer", "_new_consumer_thread", "the consumer thread class", ("self",)),
    _entry("Producer", "_ensure_producer", "the driver's aiokafka producer", ("self",)),
    _entry(
        "Transport",
        "_create_topic",
        "every topic creation (producer's or consumer's) goes through it",
        ("self", "owner", "client", "topic", "partitions", "replication", "kwargs"),
    ),
)


def aiokafka_producer(producer: Any) -> Any:
    """Return the aiokafka producer of Faust's producer (started with the app)."""
    return producer._ensure_producer()


class HookedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    """Faust's consumer thread with public hooks for its worker consumer and end offsets."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        self.worker_consumer_created(consumer)
        return consumer

    def worker_consumer_created(self, consumer: Any) -> None:
        """Configure the worker's aiokafka consumer before it starts."""

    async def _highwaters(self, partitions: list[Any]) -> Any:
        return await self.adjust_highwaters(await super()._highwaters(partitions))

    async def adjust_highwaters(self, offsets: Mapping[Any, int]) -> Any:
        """Return the end offsets Faust asked the broker for, corrected if need be."""
        return offsets

    def aiokafka_consumer(self) -> Any:
        """Return the thread's aiokafka consumer (raises before it is created)."""
        return self._ensure_consumer()


class HookedConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """Faust's consumer with public hooks for its thread class and its fetch loop."""

    #: The consumer thread this consumer runs.
    consumer_thread_class: type[HookedConsumerThread] = HookedConsumerThread

    def _new_consumer_thread(self) -> HookedConsumerThread:
        return self.consumer_thread_class(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        await self.drain_messages(fetcher)

    async def drain_messages(self, fetcher: Any) -> None:
        """Run the fetch loop until the fetcher stops (Faust's by default)."""
        await super()._drain_messages(fetcher)


class HookedProducer(faust_aiokafka.Producer):  # type: ignore[misc]
    """Faust's producer with a public accessor to its aiokafka producer."""

    def aiokafka_producer(self) -> Any:
        """Return the aiokafka producer (started with the app)."""
        return aiokafka_producer(self)


class HookedTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    """Faust's aiokafka transport with a public hook for a new topic's configuration."""

    async def _create_topic(
        self, owner: Any, client: Any, topic: str, partitions: int, replication: int, **kw: Any
    ) -> None:
        kw["config"] = self.new_topic_config(kw.get("config"))
        await super()._create_topic(owner, client, topic, partitions, replication, **kw)

    def new_topic_config(self, config: Mapping[str, Any] | None) -> Any:
        """Return the configuration a topic is created with (``config`` as asked)."""
        return config

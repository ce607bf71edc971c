"""aiokafka client internals: metadata waits, bootstrap address, fetch wait and fetch planning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.internals.registry import Internal

CLIENT = "aiokafka.client:AIOKafkaClient"
CONSUMER = "aiokafka.consumer.consumer:AIOKafkaConsumer"
FETCHER = "aiokafka.consumer.fetcher:Fetcher"
AIOKAFKA = "aiokafka"

INTERNALS: tuple[Internal, ...] = (
    Internal(
        AIOKAFKA,
        CLIENT,
        "_wait_on_metadata",
        "method",
        "waits until the cluster metadata lists a topic (the producer's send path uses it)",
        __name__,
        params=("self", "topic"),
    ),
    Internal(
        AIOKAFKA,
        CONSUMER,
        "_client",
        "attribute",
        "the consumer's client: its bootstrap address and metadata refresh",
        __name__,
    ),
    Internal(
        AIOKAFKA,
        CLIENT,
        "_bootstrap_servers",
        "attribute",
        "the address a probe consumer connects to, as resolved by the client",
        __name__,
    ),
    Internal(
        AIOKAFKA,
        CONSUMER,
        "_fetch_max_wait_ms",
        "attribute",
        "read when start() builds the Fetcher; Faust hard-codes 1500 ms",
        __name__,
    ),
    Internal(
        AIOKAFKA,
        CONSUMER,
        "_fetcher",
        "attribute",
        "the started consumer's Fetcher, whose planning the embedded broker patch wraps",
        __name__,
    ),
    Internal(
        AIOKAFKA,
        FETCHER,
        "_get_actions_per_node",
        "routine",
        "run on a view of the assignment (only .tps narrowed): its body must read no more",
        __name__,
        params=("self", "assignment"),
        source_sha256="1dab2cf937d165d0eeacc8da8ed2b0ebd80b321bb6583757e01cdc1013d31635",
    ),
)


async def wait_on_metadata(client: Any, topic: str) -> Any:
    """Wait until ``client``'s cluster metadata lists ``topic``."""
    return await client._wait_on_metadata(topic)


def bootstrap_servers_of(consumer: Any) -> Any:
    """Return the bootstrap servers ``consumer``'s client connects to."""
    return consumer._client._bootstrap_servers


async def refresh_metadata(consumer: Any) -> None:
    """Refresh ``consumer``'s cluster metadata now (it lists topics created since)."""
    await consumer._client.force_metadata_update()


def set_fetch_max_wait(consumer: Any, wait_ms: int) -> None:
    """Set the fetch wait of a consumer not yet started."""
    consumer._fetch_max_wait_ms = wait_ms


Plan = Callable[[Any], Any]


def wrap_fetch_planning(consumer: Any, wrap: Callable[[Plan], Plan]) -> None:
    """Replace a started consumer's fetch planning by ``wrap(original planning)``.

    The planning takes the subscription's assignment and returns the fetch requests per node.
    """
    fetcher = consumer._fetcher
    fetcher._get_actions_per_node = wrap(fetcher._get_actions_per_node)

"""Admin look-ups on a local Apache Kafka cluster: who leads what, replicas, topic configs.

Used by the broker failover test (tests/integration/test_failover.py) to find the broker to
kill, to see that the leaders really moved, and to check what the worker's topics carry.
Each call opens a short-lived aiokafka admin client on the loopback cluster.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition as the cluster metadata describes it."""

    topic: str
    partition: int
    leader: int  # -1 while no replica leads
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


async def _with_admin(bootstrap: str, call: Any) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await call(admin)
    finally:
        await admin.close()


def create_topic(
    bootstrap: str, topic: str, partitions: int, replicas: int, config: dict[str, str]
) -> None:
    """Create ``topic`` as an operator would before the first worker starts."""

    async def call(admin: AIOKafkaAdminClient) -> None:
        await admin.create_topics([NewTopic(topic, partitions, replicas, topic_configs=config)])

    asyncio.run(_with_admin(bootstrap, call))


def describe_partitions(bootstrap: str, topics: list[str] | None = None) -> list[PartitionInfo]:
    """Return every partition of ``topics`` (all topics, internal ones too, when None)."""

    async def call(admin: AIOKafkaAdminClient) -> list[Any]:
        described: list[Any] = await admin.describe_topics(topics)
        return described

    out = []
    for topic in asyncio.run(_with_admin(bootstrap, call)):
        for p in topic["partitions"]:
            out.append(
                PartitionInfo(
                    topic["topic"],
                    int(p["partition"]),
                    int(p["leader"]),
                    tuple(int(r) for r in p["replicas"]),
                    tuple(int(r) for r in p["isr"]),
                )
            )
    return out


def leader_counts(partitions: Iterable[PartitionInfo]) -> Counter[int]:
    """Return how many of ``partitions`` each broker leads."""
    return Counter(p.leader for p in partitions if p.leader >= 0)


def topic_configs(bootstrap: str, topics: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """Return the configuration values ``names`` of each topic, as the brokers report them."""

    async def call(admin: AIOKafkaAdminClient) -> list[Any]:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, None) for t in topics]
        responses: list[Any] = await admin.describe_configs(resources)
        return responses

    out: dict[str, dict[str, str]] = {}
    for response in asyncio.run(_with_admin(bootstrap, call)):
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise RuntimeError(f"describe_configs {resource['resource_name']}: {resource}")
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            out[resource["resource_name"]] = {n: entries[n] for n in names if n in entries}
    return out

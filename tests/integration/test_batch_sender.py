"""The batch sender keeps the metadata of the topics it writes, on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.internals import aiokafka_client
from app.kafka.sender import BatchSender

pytestmark = pytest.mark.integration


async def _create(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 3, 1) for t in topics])
    finally:
        await admin.close()


def test_prepared_topics_survive_a_metadata_refresh_for_other_topics(broker: Any) -> None:
    """A worker once stopped with "0 partitions" for its input topic at start.

    tansu answers the client's bootstrap metadata request (an empty topic list) with every
    topic, so a topic that existed before the producer started was known without being
    tracked, and the next refresh (which asks only for tracked topics) dropped it.
    """
    tag = uuid.uuid4().hex[:6]
    early, late = f"sender-early-{tag}", f"sender-late-{tag}"

    async def run() -> tuple[int, int, bool]:
        await _create(broker.bootstrap, early)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            sender = BatchSender(producer)
            await sender.prepare([early])
            await _create(broker.bootstrap, late)
            # a refresh for another topic
            await aiokafka_client.wait_on_metadata(producer.client, late)
            await producer.client.force_metadata_update()
            listed = producer.client.cluster.partitions_for_topic(early)
            return sender.partition_count(early), len(listed or ()), listed is not None
        finally:
            await producer.stop()

    prepared, listed, known = asyncio.run(run())
    assert prepared == 3
    assert known and listed == 3

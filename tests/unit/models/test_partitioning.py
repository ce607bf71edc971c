"""The one key partitioner (sender, pipeline, web route) is Kafka's murmur2, to the partition."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner, murmur2

from models.partitioning import MURMUR2_SEED, murmur2_partition


def test_murmur2_partition_equals_the_producers_default_partitioner() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 64)) for _ in range(3000)]
    keys += [f"acc-{i}".encode() for i in range(2000)] + ["ünïcode-ключ".encode()]
    for partitions in (1, 3, 8, 12):
        ids = list(range(partitions))
        for key in keys:
            assert murmur2_partition(key, partitions) == DefaultPartitioner()(key, ids, ids)


def test_seed_is_the_one_of_the_pure_python_murmur2() -> None:
    from murmurhash2 import murmurhash2

    for key in (b"", b"a", b"account-1", b"\xff" * 17):
        assert murmurhash2(key, MURMUR2_SEED) == murmur2(key)


def test_the_batch_sender_and_the_web_route_use_this_partitioner() -> None:
    """No second copy of the hash: both modules call this very function."""
    import app.kafka.sender
    import app.web.views

    assert vars(app.kafka.sender)["murmur2_partition"] is murmur2_partition
    assert vars(app.web.views)["murmur2_partition"] is murmur2_partition

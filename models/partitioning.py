"""Kafka's default key partitioner (murmur2), as one pure function.

The batch sender places records with it, the pipeline finds an account's or counterparty's
table partition with it, and the web view routes an account lookup with it: all must agree
with the producers' partitioner (the Java client's, aiokafka's and Faust's), or a key's
records, table state and lookups would land on different partitions.
"""

from __future__ import annotations

from murmurhash2 import murmurhash2

#: Seed of Kafka's murmur2 partitioner (the Java client, aiokafka and Faust all use it).
MURMUR2_SEED = 0x9747B28C


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Return the partition Kafka's default partitioner gives ``key`` among ``partitions``.

    The C MurmurHash2 computes the same hash as aiokafka's pure-Python ``murmur2`` in about
    0.15 us instead of 3.6 us, and the scoring path needs one for every new account and
    counterparty.
    """
    return (murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % partitions

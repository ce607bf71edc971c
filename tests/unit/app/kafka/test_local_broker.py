"""``app.kafka.local_broker``: which local brokers the ``broker`` and ``demo`` commands accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.kafka.local_broker import LocalBroker


@pytest.mark.parametrize(
    ("flavor", "nodes", "problem"),
    [
        ("tansu", 3, "use --kafka"),
        ("kafka", 2, "run 1 node, or 3"),
        ("kafka", 0, "run 1 node, or 3"),
        ("redpanda", 1, "choose tansu or kafka"),
    ],
)
def test_a_broker_that_cannot_run_is_refused_with_what_to_do(
    flavor: str, nodes: int, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=problem):
        LocalBroker(flavor, tmp_path, nodes=nodes)


def test_kafka_creates_topics_on_first_use_with_the_configured_partitions(tmp_path: Path) -> None:
    broker = LocalBroker("kafka", tmp_path, nodes=3, partitions=6)
    assert broker.kafka is not None and broker.tansu is None
    props = broker.kafka.server_properties(1)
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "6"
    assert props["default.replication.factor"] == "3"
    assert broker.url == broker.kafka.url and broker.url.count(";") == 2
    assert broker.pids() == [] and not broker.running  # nothing started yet


def test_tansu_is_the_embedded_broker(tmp_path: Path) -> None:
    broker = LocalBroker("tansu", tmp_path)
    assert broker.tansu is not None and broker.kafka is None
    assert broker.bootstrap == broker.tansu.bootstrap
    assert broker.describe() == "tansu, in memory"

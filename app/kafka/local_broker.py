"""A broker this process runs on loopback for ``broker`` and ``demo``: tansu or Apache Kafka.

One interface over :class:`app.kafka.embedded_broker.EmbeddedBroker` (tansu, in memory, starts in
well under a second) and :class:`app.kafka.local_kafka.LocalKafka` (Apache Kafka in KRaft mode,
one JVM per node, ~10 s), so the commands do not care which one runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.kafka.embedded_broker import EmbeddedBroker
from app.kafka.local_kafka import KAFKA_VERSION, LocalKafka

FLAVORS = ("tansu", "kafka")


class LocalBroker:
    """Run the embedded tansu broker or a local Apache Kafka (``nodes`` KRaft nodes).

    Kafka creates topics on first use with ``partitions`` partitions, like tansu does, so
    a simulator may produce before the worker has declared its topics.
    """

    def __init__(
        self,
        flavor: str,
        workdir: Path,
        *,
        nodes: int = 1,
        partitions: int = 4,
        jars_dir: Path | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown broker {flavor!r}: choose tansu or kafka")
        if flavor == "tansu" and nodes != 1:
            raise ValueError("tansu runs one node: use --kafka for a cluster of several nodes")
        if nodes not in (1, 3):
            raise ValueError(f"{nodes} nodes: run 1 node, or 3 (a quorum that survives one loss)")
        self.flavor = flavor
        self.workdir = workdir
        self.kafka: LocalKafka | None = None
        self.tansu: EmbeddedBroker | None = None
        if flavor == "kafka":
            self.kafka = LocalKafka(
                workdir,
                nodes,
                properties={
                    "auto.create.topics.enable": "true",
                    "num.partitions": str(partitions),
                },
                jars_dir=jars_dir,
            )
        else:
            self.tansu = EmbeddedBroker(log_path=workdir / "broker.log")

    @property
    def bootstrap(self) -> str:
        """Return the aiokafka bootstrap servers (``host:port[,host:port...]``)."""
        return self.kafka.bootstrap if self.kafka else self._tansu.bootstrap

    @property
    def url(self) -> str:
        """Return the Faust broker URL (``VIGIL_BROKER_URL``)."""
        return self.kafka.url if self.kafka else self._tansu.url

    @property
    def _tansu(self) -> EmbeddedBroker:
        assert self.tansu is not None
        return self.tansu

    def describe(self) -> str:
        """Return what runs, for a console line."""
        if self.kafka:
            nodes = len(self.kafka.node_ids)
            return (
                f"Apache Kafka {KAFKA_VERSION}, {nodes} KRaft node{'s' if nodes > 1 else ''}, "
                f"logs in {self.workdir}/node-*/server.log"
            )
        return "tansu, in memory"

    def pids(self) -> list[int]:
        """Return the broker processes' ids (one per node)."""
        if self.kafka:
            return [p for n in self.kafka.node_ids if (p := self.kafka.pid(n)) is not None]
        return [self.tansu.pid] if self.tansu and self.tansu.pid else []

    @property
    def running(self) -> bool:
        """Tell whether every broker process is alive."""
        return self.kafka.running if self.kafka else self._tansu.running

    async def start(self, timeout_s: float = 90.0) -> None:
        """Start the broker and wait until it answers.

        Call from the main thread: a child dies with the thread that started it
        (``PR_SET_PDEATHSIG``), so only the slow waits (Maven, formatting, readiness) run
        in worker threads; the broker processes are started here.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kafka is None:
            self._tansu.start()
            return
        await asyncio.to_thread(self.kafka.prepare)
        for node in self.kafka.node_ids:
            self.kafka.start_node(node)
        await asyncio.to_thread(self.kafka.wait_ready, timeout_s)

    def stop(self) -> None:
        """Stop the broker (every node); nothing is kept."""
        if self.kafka:
            self.kafka.stop()
        elif self.tansu:
            self.tansu.stop()

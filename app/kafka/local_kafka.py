"""A real Apache Kafka on loopback, without Docker: KRaft nodes run from Maven Central's jars.

Used by the test fixtures, ``faust -A app broker --kafka`` and ``faust -A app demo --broker
kafka``. :func:`ensure_jars` fetches ``org.apache.kafka:kafka_2.13`` (:data:`KAFKA_VERSION`, the
version ``docker-compose.yml`` runs) and its runtime dependencies once, with Maven, into a
cache directory. :class:`LocalKafka` formats fresh storage for one or more combined
broker+controller nodes (one cluster id), starts one JVM per node on free loopback ports,
waits until every node answers and stops them again. Each JVM is killed with its parent
(``PR_SET_PDEATHSIG``), like the embedded tansu broker.

A cluster of three nodes gets the settings a production cluster would: replication factor 3
and ``min.insync.replicas=2`` for the internal topics and as topic defaults.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from app.kafka.embedded_broker import BrokerStartError, _answers, die_with_parent, free_port

log = logging.getLogger(__name__)

#: The Kafka release the tests, the demo on Kafka and docker-compose.yml run.
KAFKA_VERSION = "4.1.1"
#: Kafka's server logs through SLF4J 1.7; this binding sends them to log4j2 (else: nothing).
LOG4J_VERSION = "2.24.3"

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.vigil</groupId>
  <artifactId>vigil-local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

#: Server logs go to ``server.log`` beside each node's data at INFO (the state-change and
#: request loggers stay at WARN: they write a line per partition and per request).
LOG4J2_CONFIG = """Configuration:
  Appenders:
    File:
      name: file
      fileName: "${sys:kafka.logs.dir}/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: file
    Logger:
      - name: state.change.logger
        level: WARN
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
"""

#: Small heap, serial GC, C1 only: several nodes and a test run share two cores.
DEFAULT_JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


class KafkaSetupError(RuntimeError):
    """Java, Maven or the Kafka jars are not available."""


def jar_cache_dir() -> Path:
    """Return the default jar cache (``VIGIL_KAFKA_JARS_DIR``, read by the settings, overrides)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vigil" / f"kafka-{KAFKA_VERSION}"


def ensure_jars(cache: Path | None = None) -> Path:
    """Fetch the Kafka server jars once (Maven, from Maven Central) and return their folder.

    Concurrent callers (two test runs) wait on a lock file; the folder appears complete or
    not at all (it is filled beside and renamed).
    """
    target = cache or jar_cache_dir()
    if (target / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return target
    if shutil.which("java") is None:
        raise KafkaSetupError("java not found: install a JDK (17 or later) to run Apache Kafka")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError("mvn not found: install Maven to fetch the Apache Kafka jars")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            return target
        log.info("fetching Apache Kafka jars", extra={"version": KAFKA_VERSION})
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            (Path(work) / "pom.xml").write_text(POM)
            out = Path(work) / "jars"
            proc = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(Path(work) / "pom.xml"),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={out}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not (out / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
                raise KafkaSetupError(
                    f"mvn could not fetch org.apache.kafka:kafka_2.13:{KAFKA_VERSION} "
                    "(check access to Maven Central, or set VIGIL_KAFKA_JARS_DIR to a folder "
                    "holding the jars): " + _maven_problem(proc.stdout + proc.stderr)
                )
            shutil.rmtree(target, ignore_errors=True)
            out.rename(target)
    return target


class LocalKafka:
    """Run ``nodes`` combined KRaft nodes on free loopback ports (a context manager).

    ``properties`` are added to (and override) every node's ``server.properties``;
    ``listeners`` adds named client listeners (``{"SASL_SSL": port}``, protocol = name)
    beside the plain-text one, and ``format_args`` go to ``kafka-storage format`` (for
    example ``--add-scram``).
    """

    #: ``VIGIL_BROKER_FLAVOR`` of a worker on this broker.
    flavor = "kafka"

    def __init__(
        self,
        workdir: Path,
        nodes: int = 1,
        *,
        properties: Mapping[str, str] | None = None,
        listeners: Mapping[str, int] | None = None,
        format_args: Sequence[str] = (),
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        host: str = "127.0.0.1",
        jars_dir: Path | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = workdir
        self.host = host
        self.node_ids = list(range(1, nodes + 1))
        self.ports = {n: free_port(host) for n in self.node_ids}
        self.controller_ports = {n: free_port(host) for n in self.node_ids}
        self.extra_listeners = dict(listeners or {})
        self.properties = dict(properties or {})
        self.format_args = list(format_args)
        self.jvm_options = list(jvm_options)
        self.cluster_id = ""
        self.jars_dir = jars_dir
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._jars: Path | None = None

    @property
    def bootstrap(self) -> str:
        """Return every node's plain-text ``host:port``, comma-separated."""
        return ",".join(f"{self.host}:{self.ports[n]}" for n in self.node_ids)

    @property
    def url(self) -> str:
        """Return the Faust broker URL (``kafka://host:port;host:port``)."""
        return "kafka://" + ";".join(f"{self.host}:{self.ports[n]}" for n in self.node_ids)

    def node_dir(self, node: int) -> Path:
        """Return node ``node``'s folder (its ``server.properties``, data and ``server.log``)."""
        return self.workdir / f"node-{node}"

    def server_properties(self, node: int) -> dict[str, str]:
        """Return node ``node``'s broker configuration."""
        replicas = min(3, len(self.node_ids))
        in_sync = 2 if replicas >= 3 else 1
        voters = ",".join(f"{n}@{self.host}:{self.controller_ports[n]}" for n in self.node_ids)
        listeners = {"PLAINTEXT": self.ports[node], **self.extra_listeners}
        if node != self.node_ids[0] and self.extra_listeners:
            raise ValueError("extra listeners are supported on a single node only")
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(
                [f"{name}://{self.host}:{port}" for name, port in listeners.items()]
                + [f"CONTROLLER://{self.host}:{self.controller_ports[node]}"]
            ),
            "advertised.listeners": ",".join(
                f"{name}://{self.host}:{port}" for name, port in listeners.items()
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                [f"{name}:{name}" for name in listeners] + ["CONTROLLER:PLAINTEXT"]
            ),
            "log.dirs": str(self.node_dir(node) / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(in_sync),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(in_sync),
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(in_sync),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        props.update(self.properties)
        return props

    def _jvm(self, node: int, main: str, *args: str) -> list[str]:
        assert self._jars is not None
        logs = self.node_dir(node)
        return [
            "java",
            *self.jvm_options,
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={logs / 'log4j2.yaml'}",
            "-cp",
            f"{self._jars}/*",
            main,
            *args,
        ]

    def _format(self, node: int) -> None:
        folder = self.node_dir(node)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "log4j2.yaml").write_text(LOG4J2_CONFIG)
        props = self.server_properties(node)
        (folder / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        cmd = self._jvm(
            node,
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            self.cluster_id,
            "-c",
            str(folder / "server.properties"),
            *self.format_args,
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"formatting Kafka node {node} failed: {(proc.stdout + proc.stderr).strip()}"
            )

    def prepare(self) -> None:
        """Fetch the jars if needed and format every node's storage (starts no broker).

        Separate from :meth:`start` so that a caller with an event loop can run this slow,
        blocking part in a thread and still start the JVMs from its main thread.
        """
        self._jars = ensure_jars(self.jars_dir)
        self.cluster_id = _cluster_id()
        for node in self.node_ids:
            self._format(node)

    def start(self, timeout_s: float = 60.0) -> LocalKafka:
        """Fetch the jars if needed, format every node and start them; wait until all answer."""
        self.prepare()
        for node in self.node_ids:
            self.start_node(node)
        self.wait_ready(timeout_s)
        log.info("local Kafka up", extra={"bootstrap": self.bootstrap})
        return self

    def start_node(self, node: int) -> None:
        """Start (or restart) node ``node`` on its formatted storage; do not wait."""
        if self.node_running(node):
            return
        folder = self.node_dir(node)
        cmd = self._jvm(node, "kafka.Kafka", str(folder / "server.properties"))
        with open(folder / "stdout.log", "ab") as out:
            self._procs[node] = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
            )

    def wait_ready(self, timeout_s: float = 60.0, nodes: Sequence[int] | None = None) -> None:
        """Wait until every (running) node answers a Kafka request on its plain-text port."""
        waiting = set(nodes or self.node_ids)
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            for node in sorted(waiting):
                proc = self._procs.get(node)
                if proc is not None and proc.poll() is not None:
                    self.stop()
                    raise BrokerStartError(
                        f"Kafka node {node} exited with code {proc.returncode}; see "
                        f"{self.node_dir(node) / 'server.log'}"
                    )
                if _answers(self.host, self.ports[node]):
                    waiting.discard(node)
            time.sleep(0.1)
        if waiting:
            self.stop()
            raise BrokerStartError(f"Kafka nodes {sorted(waiting)} did not answer in {timeout_s}s")

    def kill_node(self, node: int) -> None:
        """SIGKILL node ``node`` (a crash: no controlled shutdown)."""
        proc = self._procs.pop(node, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop_node(self, node: int, timeout_s: float = 20.0) -> None:
        """Stop node ``node`` gracefully (SIGTERM; SIGKILL after ``timeout_s``)."""
        proc = self._procs.pop(node, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def node_running(self, node: int) -> bool:
        """Tell whether node ``node``'s JVM is alive."""
        proc = self._procs.get(node)
        return proc is not None and proc.poll() is None

    def pid(self, node: int) -> int | None:
        """Return node ``node``'s process id while it runs."""
        proc = self._procs.get(node)
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Tell whether every node is alive."""
        return all(self.node_running(n) for n in self.node_ids)

    def stop(self) -> None:
        """Stop every node (a cluster's nodes together, so none waits for a lost quorum)."""
        procs = [p for p in self._procs.values() if p.poll() is None]
        self._procs.clear()
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + 15.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _maven_problem(output: str) -> str:
    """Return Maven's first error line (its last lines are boilerplate), or its last lines."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in output.splitlines()]
    errors = [ln[len("[ERROR]") :].strip() for ln in lines if ln.startswith("[ERROR]")]
    errors = [ln for ln in errors if ln]
    return errors[0] if errors else " | ".join(ln for ln in lines[-5:] if ln)


def _cluster_id() -> str:
    """Return a fresh KRaft cluster id (what ``kafka-storage random-uuid`` prints).

    Like Kafka's ``Uuid.randomUuid``, never one that starts with ``-``: the storage tool
    would read it as an option ("argument --cluster-id/-t: expected one argument"), which
    failed one broker start in 64.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id

"""Broker failover on a three-node Apache Kafka cluster (KRaft, three JVMs on loopback).

The worker runs with replication factor 3 (``min.insync.replicas`` 2 by default, acks=all)
under a steady load. The broker that leads most partitions is killed with SIGKILL; the
others elect new leaders and the worker goes on scoring. The broker is then restarted, rejoins
the in-sync replicas and takes its preferred partitions back (a second leader change under
load). Afterwards not one valid transaction is missing from ``transactions.scored``, every
malformed one is dead-lettered, and every account's state equals one offline pass over what
was produced. The figures (election, pause in scoring, time until every partition scores
again) are printed, never asserted on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from app.kafka.embedded_broker import _answers
from app.kafka.local_kafka import LocalKafka
from app.settings import load_settings
from models.features import AccountState
from tests.integration.cluster import (
    PartitionInfo,
    create_topic,
    describe_partitions,
    leader_counts,
    topic_configs,
)
from tests.integration.kafka_io import consume
from tests.integration.load import LoadGenerator, Scored, ScoredWatcher, replay_states
from tests.integration.tables import read_accounts
from tests.integration.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

RATE = 400.0
ACCOUNTS = 300
#: Distinct transactions scored before the kill, and again before the broker comes back.
PROGRESS = 1000
LOAD_MAX_S = 150.0
#: Seconds of load after the restarted broker leads partitions again.
TAIL_S = 4.0
CATCH_UP_S = 120.0
STALLED_S = 45.0

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """Start three combined KRaft nodes (replication 3, min.insync.replicas 2 by default).

    The preferred-leader check runs every 5 s instead of 300 s, so a restarted broker
    takes its partitions back while the test still offers load.
    """
    props = {"leader.imbalance.check.interval.seconds": "5"}
    jars = load_settings().kafka_jars_dir
    workdir = tmp_path_factory.mktemp("kafka-cluster")
    with LocalKafka(workdir, nodes=3, properties=props, jars_dir=jars) as kafka:
        yield kafka


def _vigil_topics(partitions: list[PartitionInfo], env: dict[str, str]) -> set[str]:
    tag = env["VIGIL_TOPIC_TRANSACTIONS"].split(".", 1)[0]
    prefixes = (f"{tag}.", f"{env['VIGIL_APP_ID']}-")
    return {p.topic for p in partitions if p.topic.startswith(prefixes)}


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 90.0) -> float:
    """Poll ``check`` until it holds; return when it did (monotonic); fail after timeout.

    An admin call that fails (its client picked the dead broker, still in the metadata)
    counts as "not yet".
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except KafkaError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


def _longest_pauses(records: list[Scored], after_ms: float) -> dict[int, tuple[float, float]]:
    """Return, per scored partition, its longest pause after ``after_ms``: (start, end) in ms.

    A pause starts at ``after_ms`` or at a record and ends at the next record; the watcher
    sees scored records of every input partition (same key, same partition count).
    """
    by_partition: dict[int, list[int]] = {}
    for r in records:
        if r.scored_ts_ms > after_ms:
            by_partition.setdefault(r.partition, []).append(r.scored_ts_ms)
    out: dict[int, tuple[float, float]] = {}
    for partition, stamps in by_partition.items():
        points = [after_ms, *sorted(stamps)]
        gaps = [(points[i], points[i + 1]) for i in range(len(points) - 1)]
        out[partition] = max(gaps, key=lambda g: g[1] - g[0])
    return out


def _effect(state: AccountState) -> dict[str, Any]:
    """Return what the transactions did to an account (all but the input offsets)."""
    return {f.name: getattr(state, f.name) for f in fields(state) if f.name != "offsets"}


def test_killing_the_leading_broker_loses_nothing_and_counts_nothing_twice(
    cluster: LocalKafka,
    trained_model: Path,
    start_worker: StartWorker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """kill -9 the broker leading most partitions under load; restart it; state is one pass."""
    env = isolated_env(cluster, trained_model, tmp_path / "worker-data")
    env["VIGIL_REPLICATION_FACTOR"] = "3"  # min.insync.replicas: 2 (the default for 3)
    # The producers' topic exists before the worker, as an operator creates it (the cluster
    # does not create topics on first use); the worker creates every other topic.
    source = env["VIGIL_TOPIC_TRANSACTIONS"]
    create_topic(cluster.bootstrap, source, 4, 3, {"min.insync.replicas": "2"})
    worker = start_worker(env, "worker")

    # Every topic the worker created carries 3 replicas and min.insync.replicas=2.
    parts = describe_partitions(cluster.bootstrap)
    topics = _vigil_topics(parts, env)
    created = topics - {source}
    for name in ("SCORED", "DEADLETTER", "REPARTITION", "BY_COUNTERPARTY", "ALERTS_HIGH"):
        assert env[f"VIGIL_TOPIC_{name}"] in created, name
    for table in ("accounts", "counterparty_aml", "counterparty_risk"):
        assert f"{env['VIGIL_APP_ID']}-{table}-changelog" in created, table
    assert {len(p.replicas) for p in parts if p.topic in created} == {3}
    configs = topic_configs(cluster.bootstrap, sorted(created), ["min.insync.replicas"])
    assert {t: c["min.insync.replicas"] for t, c in configs.items()} == dict.fromkeys(created, "2")

    load = LoadGenerator(
        cluster.bootstrap,
        source,
        RATE,
        LOAD_MAX_S,
        ACCOUNTS,
        durable=True,
    )
    watcher = ScoredWatcher(cluster.bootstrap, env["VIGIL_TOPIC_SCORED"])
    figures: list[str] = []
    try:
        watcher.start()
        load.start()
        assert watcher.wait_for(PROGRESS, timeout_s=120.0), "the worker did not score"
        assert load.running, "the load ended before the kill; raise LOAD_MAX_S"

        # The victim: the broker that leads most partitions of the whole cluster.
        before = describe_partitions(cluster.bootstrap)
        counts = leader_counts(before)
        victim, led = counts.most_common(1)[0]
        led_vigil = [p for p in before if p.leader == victim and p.topic in topics]
        pid = cluster.pid(victim)
        assert pid is not None
        scored_at_kill = watcher.distinct
        killed_ms = time.time() * 1000
        killed = time.monotonic()
        cluster.kill_node(victim)
        with pytest.raises(ProcessLookupError):  # the JVM is gone, not just disconnected
            os.kill(pid, 0)
        assert not _answers(cluster.host, cluster.ports[victim])
        survivor = ",".join(
            f"{cluster.host}:{cluster.ports[n]}" for n in cluster.node_ids if n != victim
        )

        def victim_leads_nothing() -> bool:
            now = describe_partitions(survivor, sorted(topics))
            return all(p.leader not in (victim, -1) and victim not in p.isr for p in now)

        elected = _wait("new leaders for the killed broker's partitions", victim_leads_nothing)
        assert watcher.wait_for(scored_at_kill + PROGRESS, timeout_s=120.0), (
            f"the worker scored {watcher.distinct - scored_at_kill} after the kill"
        )
        _wait(
            "every partition scoring after the kill",
            lambda: len(_longest_pauses(watcher.records, killed_ms)) == 4,
        )
        pauses = _longest_pauses(watcher.records, killed_ms)

        # The broker comes back, catches up and leads its preferred partitions again.
        restarted = time.monotonic()
        cluster.start_node(victim)
        cluster.wait_ready(120.0, nodes=[victim])

        def victim_back() -> bool:
            now = describe_partitions(cluster.bootstrap, sorted(topics))
            in_sync = all(victim in p.isr for p in now)
            return in_sync and any(p.leader == victim for p in now)

        back = _wait("the restarted broker in sync and leading", victim_back, 120.0)
        scored_at_back = watcher.distinct
        assert watcher.wait_for(scored_at_back + PROGRESS // 2, timeout_s=120.0), (
            "the worker stopped scoring after the broker came back"
        )
        assert load.running, "the load ended before the broker was back; raise LOAD_MAX_S"
        load.finish(TAIL_S)
        produced = load.join()
        wanted = {r.tx_id for r in produced.valid}
        watcher.wait_for(len(wanted), timeout_s=CATCH_UP_S, stalled_s=STALLED_S)
    finally:
        load.stop()
        watcher.stop()

    resumed_s = max(end for _, end in pauses.values()) / 1000 - killed_ms / 1000
    longest_s = max(end - start for start, end in pauses.values()) / 1000
    missing = wanted - watcher.ids
    figures.append(
        f"broker failover: killed node {victim} (led {led} of {sum(counts.values())} "
        f"partitions, {len(led_vigil)} of Vigil's) at {scored_at_kill} scored; new leaders "
        f"after {elected - killed:.1f} s; longest pause in scoring {longest_s:.1f} s; every "
        f"partition scoring again {resumed_s:.1f} s after the kill; restarted node in sync "
        f"and leading after {back - restarted:.1f} s"
    )
    figures.append(
        f"  {len(wanted)} transactions + {len(produced.malformed)} malformed at "
        f"{load.offered_rate:.0f} msg/s; lost {len(missing)}; re-emitted as replayed "
        f"{sum(1 for r in watcher.records if r.replayed)}"
    )
    with capsys.disabled():
        print("\n" + "\n".join(figures))

    assert not missing, f"{len(missing)} valid transactions never scored"
    bad = set(produced.malformed)
    dead = consume(
        cluster.bootstrap,
        env["VIGIL_TOPIC_DEADLETTER"],
        lambda recs: bad <= {r.value for r in recs},
        timeout_s=30.0,
    )
    assert bad <= {r.value for r in dead}, "malformed messages not dead-lettered"
    assert worker.stop() == 0
    live = {a: _effect(s) for a, s in read_accounts(Path(env["VIGIL_DATA_DIR"])).items()}
    expected = {a: _effect(s) for a, s in replay_states(produced.records, env).items()}
    assert len(expected) > ACCOUNTS
    assert set(live) == set(expected)
    double = sum(max(0, live[a]["n"] - expected[a]["n"]) for a in expected)
    wrong = sorted(a for a in expected if live[a] != expected[a])
    assert not wrong, (
        f"{len(wrong)} accounts differ from the offline replay ({double} counted twice), "
        f"e.g. {wrong[0]}: live {live[wrong[0]]} != replay {expected[wrong[0]]}"
    )

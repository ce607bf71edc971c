"""Throughput and latency of the Vigil pipeline on the embedded tansu or on Apache Kafka.

Prints, from one run on one broker (``--broker tansu``, the default, or ``--broker kafka``:
a local single-node KRaft Kafka from ``app.kafka.local_kafka``):

* throughput: raw aiokafka consume rate, a counting-only Faust agent, and the full Vigil
  worker (validate, velocity table, XGBoost, tiers, outputs), on the same pre-loaded topic;
* latency at a fixed offered rate: event time to the scored record read by a consumer, for
  Vigil and for a raw two-hop relay (produce -> consume -> produce -> consume, no work).

With ``--baseline DIR`` (a checkout of another commit, e.g. ``git worktree add
/tmp/before REF``) every round also runs that checkout's worker on the same broker, topic and
model, alternating which goes first, and the summary prints both trees' ratios: a before/after
comparison in one run, so the machine's drift between two runs cannot pass for a change.

Usage: ``python bench/pipeline_bench.py [--broker kafka] [--n 100000] [--rate 2000]
[--seconds 20] [--rounds 5] [--baseline DIR]``.
It only talks to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.internals import aiokafka_client  # noqa: E402
from app.kafka.embedded_broker import EmbeddedBroker, free_port  # noqa: E402
from app.kafka.local_kafka import KAFKA_VERSION, LocalKafka  # noqa: E402
from bench.demo_soak import cpu_s_and_rss_mb  # noqa: E402
from models.simulator import Simulator  # noqa: E402
from tests.integration.worker import WorkerProcess, isolated_env  # noqa: E402

PARTITIONS = 4
FETCH_WAIT_MS = 10
FAUST = str(Path(sys.executable).parent / "faust")


class Broker(Protocol):
    """What the bench needs of a broker: the embedded tansu or a local Apache Kafka."""

    @property
    def url(self) -> str: ...  # Faust's kafka://host:port

    @property
    def bootstrap(self) -> str: ...  # aiokafka's host:port


def flavor_of(broker: Broker) -> str:
    """Return ``VIGIL_BROKER_FLAVOR`` for ``broker`` (tansu's workarounds on tansu only)."""
    return "kafka" if isinstance(broker, LocalKafka) else "tansu"


def client_options(bootstrap: str) -> dict[str, Any]:
    """Return the connection options of every Kafka client the bench creates (one place)."""
    return {"bootstrap_servers": bootstrap}


def generate(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Return ``n`` simulated transactions (about 1% labelled fraud patterns)."""
    events = Simulator(seed=seed).events(int(time.time() * 1000) - 3_600_000, 2000.0)
    return [next(events).tx for _ in range(n)]


async def create_topic(bootstrap: str, topic: str) -> None:
    """Create ``topic`` with the bench's partition count."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, txs: list[dict[str, Any]]) -> float:
    """Produce all transactions as fast as possible; return the produce rate."""
    await create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        **client_options(bootstrap), linger_ms=20, max_batch_size=262_144, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for tx in txs:
            key = tx["account_id"].encode()
            futures.append(await producer.send(topic, orjson.dumps(tx), key=key))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(txs) / (time.perf_counter() - started)


async def raw_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    """Return messages/s of a plain aiokafka consumer reading the whole topic."""
    consumer = AIOKafkaConsumer(
        **client_options(bootstrap), enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        # From the first fetch on: Kafka may answer it with most of a small topic at once,
        # so timing from the first batch received would leave almost nothing to time.
        first = time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(v) for v in batch.values())
        return seen / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def run_until(cmd: list[str], env: dict[str, str], log: Path, done: Any, timeout_s: float) -> None:
    """Run a subprocess until ``done()`` is true, then stop it."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done():
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited {proc.returncode}; see {log}")
            time.sleep(0.2)
        if not done():
            raise RuntimeError(f"{cmd} did not finish in {timeout_s}s; see {log}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def faust_count_rate(broker: Broker, topic: str, n: int, work: Path) -> float:
    """Return events/s of a counting-only Faust agent on ``topic``."""
    result = work / f"count-{topic}.json"
    env = dict(
        os.environ,
        BENCH_TOPIC=topic,
        BENCH_EXPECTED=str(n),
        BENCH_RESULT=str(result),
        BENCH_BROKER_URL=broker.url,
        BENCH_DATA_DIR=str(work / f"count-data-{topic}"),
    )
    # A port of its own: the worker command binds its web port even with the web disabled,
    # and Faust's default (6066) may be taken by anything else running here.
    cmd = [
        FAUST,
        "-A",
        "bench.counting_app",
        "worker",
        "-l",
        "warn",
        "--web-port",
        str(free_port()),
    ]
    run_until(cmd, env, work / "count.log", result.exists, 600)
    doc = json.loads(result.read_text())
    return float(doc["n"] / (doc["last"] - doc["first"]))


#: Extra ``VIGIL_*`` settings for the measured worker (``--set``), e.g. a batch linger to try.
WORKER_SETTINGS: dict[str, str] = {}


def vigil_env(
    broker: Broker, model: Path, work: Path, topic: str, tree: Path = REPO
) -> dict[str, str]:
    """Return a worker environment with its own app id and output topics, reading ``topic``.

    ``tree`` is the checkout whose code the worker runs: first on the import path, ahead of
    the editable install of this one (same virtualenv, so the same library versions).
    """
    env = isolated_env(cast(EmbeddedBroker, broker), model, work / f"vigil-{uuid.uuid4().hex[:6]}")
    if tree != REPO:
        env["PYTHONPATH"] = str(tree)
    env.update(
        VIGIL_BROKER_FLAVOR=flavor_of(broker),
        VIGIL_PARTITIONS=str(PARTITIONS),
        VIGIL_FETCH_MAX_WAIT_MS=str(FETCH_WAIT_MS),
        VIGIL_TOPIC_TRANSACTIONS=topic,
    )
    env.update(WORKER_SETTINGS)
    return env


async def _read_scored(
    bootstrap: str,
    topic: str,
    n: int | asyncio.Future[int],
    timeout_s: float,
    collect: list[tuple[float, dict[str, Any]]],
) -> None:
    """Read ``topic`` from the start into ``collect`` until ``n`` records (or the timeout).

    ``n`` may be a future: the count is only known once the load generator has finished.
    """
    consumer = AIOKafkaConsumer(
        **client_options(bootstrap), enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            await aiokafka_client.refresh_metadata(consumer)
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        def wanted() -> float:
            if isinstance(n, int):
                return n
            return n.result() if n.done() else float("inf")

        while len(collect) < wanted() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for msgs in batch.values():
                collect.extend((now, orjson.loads(m.value)) for m in msgs)
    finally:
        await consumer.stop()


def vigil_rate(
    broker: Broker, model: Path, topic: str, n: int, work: Path, tree: Path = REPO
) -> tuple[float, float]:
    """Return ``tree``'s sustained scored/s draining the pre-loaded topic, and CPU us per tx.

    The CPU figure is the worker's own user + system time from ready to the last record
    scored, divided by the records: unlike a rate, other processes on the machine barely
    move it, so it is the steadier before/after figure on a shared machine.
    """
    env = vigil_env(broker, model, work, topic, tree)
    scored: list[tuple[float, dict[str, Any]]] = []
    log = work / f"vigil-throughput-{tree.name}.log"
    worker = WorkerProcess(env, log, cwd=tree).start()  # throughput is measured on scored_ts
    assert worker.proc is not None
    pid = worker.proc.pid
    cpu_ready, _ = cpu_s_and_rss_mb(pid)
    try:
        asyncio.run(_read_scored(broker.bootstrap, env["VIGIL_TOPIC_SCORED"], n, 600, scored))
        cpu_done, _ = cpu_s_and_rss_mb(pid)
    finally:
        worker.stop(timeout_s=60)
    if len(scored) < n:
        raise RuntimeError(f"only {len(scored)} of {n} scored; see {log}")
    stamps = np.array([doc["scored_ts"] for _, doc in scored], dtype=np.float64) / 1000.0
    first_batch = int((stamps == stamps.min()).sum())
    rate = float((n - first_batch) / (stamps.max() - stamps.min()))
    return rate, (cpu_done - cpu_ready) / n * 1e6


async def offered_load(
    bootstrap: str, topic: str, txs: list[dict[str, Any]], rate: float, seconds: float
) -> int:
    """Produce at ``rate``/s for ``seconds``, stamping each event time at send."""
    producer = AIOKafkaProducer(**client_options(bootstrap), linger_ms=0, acks=1)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                tx = dict(txs[sent % len(txs)], tx_id=f"lat-{sent}", ts=int(time.time() * 1000))
                await producer.send(topic, orjson.dumps(tx), key=tx["account_id"].encode())
                sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    """Return p50/p95/p99/max in milliseconds, and the sample size."""
    arr = np.array(latencies_s) * 1000.0
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "n": float(arr.size),
    }


def print_latency(name: str, rate: float, figs: dict[str, float]) -> None:
    """Print one line of latency percentiles."""
    print(
        f"{name:<20} at {rate:,.0f} tx/s: p50 {figs['p50']:.1f} ms  "
        f"p95 {figs['p95']:.1f} ms  p99 {figs['p99']:.1f} ms  "
        f"max {figs['max']:.1f} ms  (n={figs['n']:.0f})"
    )


async def _latency_run(
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    txs: list[dict[str, Any]],
    rate: float,
    seconds: float,
    warmup_s: float,
) -> list[float]:
    """Return the end-to-end latencies (s) of the records sent after the warm-up."""
    collect: list[tuple[float, dict[str, Any]]] = []
    sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    # Every record sent comes out once (the relay forwards all, Vigil scores all valid
    # simulated transactions); the timeout only guards against a stalled worker.
    reader = asyncio.create_task(_read_scored(bootstrap, out_topic, sent, seconds + 60, collect))
    await asyncio.sleep(1.0)
    # The load generator and the reader share this process's event loop: a collector pass
    # over its heap (the generated transactions, earlier rounds' results) would stall both
    # and show up as latency of whatever is measured. Collect now, not while measuring.
    gc.collect()
    gc.disable()
    try:
        t0 = time.time()
        sent.set_result(await offered_load(bootstrap, in_topic, txs, rate, seconds))
        await reader
    finally:
        gc.enable()
    if len(collect) < sent.result():
        raise RuntimeError(f"only {len(collect)} of {sent.result()} records came out")
    return [
        recv - doc["ts" if "ts" in doc else "event_ts"] / 1000.0
        for recv, doc in collect
        if doc.get("ts", doc.get("event_ts", 0)) / 1000.0 >= t0 + warmup_s
    ]


def vigil_latency(
    broker: Broker,
    model: Path,
    txs: list[dict[str, Any]],
    rate: float,
    seconds: float,
    work: Path,
    tree: Path = REPO,
) -> list[float]:
    """Return the end-to-end latencies (s) of ``tree``'s Vigil at a fixed offered rate."""
    topic = f"lat-in-{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topic(broker.bootstrap, topic))
    env = vigil_env(broker, model, work, topic, tree)
    worker = WorkerProcess(env, work / f"vigil-latency-{tree.name}.log", cwd=tree).start()
    try:
        return asyncio.run(
            _latency_run(broker.bootstrap, topic, env["VIGIL_TOPIC_SCORED"], txs, rate, seconds, 3)
        )
    finally:
        worker.stop(timeout_s=60)


async def relay(bootstrap: str, src: str, dst: str) -> None:
    """Forward every record from ``src`` to ``dst`` untouched (the raw two-hop reference)."""
    consumer = AIOKafkaConsumer(
        src,
        **client_options(bootstrap),
        fetch_max_wait_ms=FETCH_WAIT_MS,
        auto_offset_reset="earliest",
        group_id=f"relay-{src}",
        enable_auto_commit=True,
    )
    producer = AIOKafkaProducer(**client_options(bootstrap), linger_ms=0, acks=1)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    await producer.send(dst, m.value, key=m.key, partition=tp.partition)
    finally:
        await consumer.stop()
        await producer.stop()


def raw_two_hop_latency(
    broker: Broker, txs: list[dict[str, Any]], rate: float, seconds: float, work: Path
) -> list[float]:
    """Return the latencies (s) of produce -> relay (own process) -> consume."""
    tag = uuid.uuid4().hex[:6]
    src, dst = f"hop1-{tag}", f"hop2-{tag}"
    asyncio.run(create_topic(broker.bootstrap, src))
    asyncio.run(create_topic(broker.bootstrap, dst))
    log = work / "relay.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--relay", broker.bootstrap, src, dst],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        time.sleep(3.0)  # relay joins its group
        return asyncio.run(_latency_run(broker.bootstrap, src, dst, txs, rate, seconds, 3))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ensure_model(work: Path, given: str | None) -> Path:
    """Return the model to serve: ``--model``, else the default artifact, else train one."""
    from app.settings import DEFAULT_MODEL_PATH
    from models.artifact import ArtifactError, load_artifact
    from models.offline.training import train_default

    if given:
        return Path(given)
    try:
        load_artifact(DEFAULT_MODEL_PATH)  # present and trained on this code's features
        return DEFAULT_MODEL_PATH
    except ArtifactError:
        pass
    path = work / "model.json"
    train_default(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--broker",
        choices=["tansu", "kafka"],
        default="tansu",
        help="the embedded tansu (a fresh one per round) or a local Apache Kafka (one node)",
    )
    parser.add_argument("--n", type=int, default=100_000, help="transactions for throughput")
    parser.add_argument("--rate", type=float, default=2000.0, help="offered tx/s for latency")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency run length")
    parser.add_argument("--model", default=None, help="artifact to serve")
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput part")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every measurement this many times and print the median ratios "
        "(a shared machine moves single figures by 10-30 %%)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VIGIL_X=VALUE",
        help="extra setting for the measured Vigil worker (repeatable)",
    )
    parser.add_argument(
        "--baseline",
        default="",
        metavar="DIR",
        help="another checkout (e.g. a git worktree of the commit before a change) whose "
        "worker every round measures too, on the same broker, topic and model",
    )
    parser.add_argument(
        "--relay", nargs=3, metavar=("BOOTSTRAP", "SRC", "DST"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.relay:
        asyncio.run(relay(*args.relay))
        return

    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("VIGIL_"):
            parser.error(f"--set {item!r}: expected VIGIL_NAME=VALUE")
        WORKER_SETTINGS[name] = value
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    print(f"work dir {work} (logs)")
    model = ensure_model(work, args.model)
    txs = generate(args.n)
    throughput_ratios: dict[str, list[float]] = {}
    latency_ratios: dict[str, list[float]] = {}
    pooled: dict[str, list[float]] = {}
    cpu_us: dict[str, list[float]] = {}
    kafka = None
    if args.broker == "kafka":
        started = time.monotonic()
        from app.settings import load_settings

        jars = load_settings().kafka_jars_dir  # VIGIL_KAFKA_JARS_DIR, else the default cache
        kafka = LocalKafka(work / "kafka", jars_dir=jars).start()
        print(
            f"Apache Kafka {KAFKA_VERSION}, one KRaft node at {kafka.bootstrap}, "
            f"up in {time.monotonic() - started:.1f} s (kept for every round)"
        )
    try:
        _rounds(args, work, model, txs, kafka, throughput_ratios, latency_ratios, pooled, cpu_us)
    finally:
        if kafka is not None:
            kafka.stop()
    if args.rounds > 1 or args.baseline:
        _summary(args, throughput_ratios, latency_ratios, pooled, cpu_us)


@contextlib.contextmanager
def round_broker(kafka: LocalKafka | None, work: Path, round_no: int) -> Iterator[Broker]:
    """Yield the broker of one round: the running Kafka, or a fresh embedded tansu.

    A fresh tansu per round: it keeps everything in memory, and its fetches slow down as its
    topics grow (it lists a partition's stored batches on every fetch). Kafka does not, and
    every round uses topics of its own.
    """
    if kafka is not None:
        yield kafka
        return
    with EmbeddedBroker(log_path=work / f"broker-{round_no}.log") as broker:
        yield broker


def trees_of(args: argparse.Namespace) -> dict[str, Path]:
    """Return the measured checkouts by label: this one, and ``--baseline`` when given."""
    trees = {"Vigil": REPO}
    if args.baseline:
        trees["Vigil (baseline)"] = Path(args.baseline).resolve()
    return trees


def _rounds(
    args: argparse.Namespace,
    work: Path,
    model: Path,
    txs: list[dict[str, Any]],
    kafka: LocalKafka | None,
    throughput_ratios: dict[str, list[float]],
    latency_ratios: dict[str, list[float]],
    pooled: dict[str, list[float]],
    cpu_us: dict[str, list[float]],
) -> None:
    """Run every round, appending each tree's ratios and CPU, and every path's latencies."""
    trees = trees_of(args)
    for round_no in range(1, args.rounds + 1):
        with round_broker(kafka, work, round_no) as broker:
            if args.rounds > 1:
                print(f"--- round {round_no} of {args.rounds}")
            if not args.latency_only:
                topic = f"bench-transactions-{round_no}"
                for label, (ratio, us) in throughput(
                    broker, model, txs, args.n, work, topic, trees, round_no
                ).items():
                    throughput_ratios.setdefault(label, []).append(ratio)
                    cpu_us.setdefault(label, []).append(us)
            # Rotate which path goes first, so none always meets the fresher broker.
            order = ["raw two-hop relay", *trees]
            shift = (round_no - 1) % len(order)
            order = order[shift:] + order[:shift]
            lat: dict[str, list[float]] = {}
            for name in order:
                if name == "raw two-hop relay":
                    lat[name] = raw_two_hop_latency(broker, txs, args.rate, args.seconds, work)
                else:
                    lat[name] = vigil_latency(
                        broker, model, txs, args.rate, args.seconds, work, trees[name]
                    )
            figs = {name: percentiles(values) for name, values in lat.items()}
            for name in ["raw two-hop relay", *trees]:
                print_latency(name, args.rate, figs[name])
                pooled.setdefault(name, []).extend(lat[name])
            relay_p99 = figs["raw two-hop relay"]["p99"]
            for label in trees:
                ratio = figs[label]["p99"] / relay_p99
                latency_ratios.setdefault(label, []).append(ratio)
                print(f"  {label} p99 / raw two-hop p99: {ratio:.2f}x   (target <= 1.5x)")


def _summary(
    args: argparse.Namespace,
    throughput_ratios: dict[str, list[float]],
    latency_ratios: dict[str, list[float]],
    pooled: dict[str, list[float]],
    cpu_us: dict[str, list[float]],
) -> None:
    """Print, per tree, the medians of the rounds' ratios and CPU, and pooled percentiles."""
    print(f"--- all {args.rounds} rounds on {args.broker}")
    for label, values in cpu_us.items():
        each = ", ".join(f"{v:.0f}" for v in values)
        median = float(np.median(values))
        print(f"  {label} worker CPU per transaction, median: {median:.0f} us   ({each})")
    if len(cpu_us) == 2:
        (a, mine), (b, base) = cpu_us.items()
        pairs = [x / y for x, y in zip(mine, base, strict=True)]
        each = ", ".join(f"{r:.2f}" for r in pairs)
        print(f"  {a} / {b} CPU per transaction, median of rounds: {np.median(pairs):.2f} ({each})")
    for label, ratios in throughput_ratios.items():
        median = float(np.median(ratios))
        each = ", ".join(f"{r:.0%}" for r in ratios)
        print(f"  {label} / counting agent, median: {median:>6.1%}   (rounds: {each})")
    for label, ratios in latency_ratios.items():
        median = float(np.median(ratios))
        each = ", ".join(f"{r:.2f}x" for r in ratios)
        print(f"  {label} p99 / raw two-hop p99, median of rounds: {median:.2f}x   ({each})")
    # One p99 from ~34,000 latencies moves a lot with the broker's state in that run;
    # the p99 of all rounds' latencies together is the steadier figure.
    figs = {name: percentiles(values) for name, values in pooled.items()}
    for name in pooled:
        print_latency(f"{name} (pooled)", args.rate, figs[name])
    for label in latency_ratios:
        ratio = figs[label]["p99"] / figs["raw two-hop relay"]["p99"]
        print(f"  {label} p99 / raw two-hop p99, pooled: {ratio:.2f}x   (target <= 1.5x)")


def throughput(
    broker: Broker,
    model: Path,
    txs: list[dict[str, Any]],
    n: int,
    work: Path,
    topic: str = "bench-transactions",
    trees: dict[str, Path] | None = None,
    round_no: int = 1,
) -> dict[str, tuple[float, float]]:
    """Print the throughput figures; return each tree's Vigil / counting agent and CPU/tx."""
    trees = trees or {"Vigil": REPO}
    produce_rate = asyncio.run(preload(broker.bootstrap, topic, txs))
    print(f"preloaded {n} transactions at {produce_rate:,.0f}/s")
    raw = asyncio.run(raw_consume_rate(broker.bootstrap, topic, n))
    print(f"raw aiokafka consume:         {raw:>10,.0f} msg/s")
    count = faust_count_rate(broker, topic, n, work)
    print(f"Faust counting-only agent:    {count:>10,.0f} events/s")
    labels = list(trees)
    if round_no % 2 == 0:
        labels.reverse()  # neither tree always reads the topic first
    ratios: dict[str, tuple[float, float]] = {}
    for label in labels:
        vigil, us = vigil_rate(broker, model, topic, n, work, trees[label])
        ratios[label] = (vigil / count, us)
        print(f"{label + ' full pipeline:':<30}{vigil:>10,.0f} scored/s  ({us:.0f} us CPU/tx)")
        print(f"  {label} / counting agent: {vigil / count:>10.1%}   (target >= 85%)")
        print(f"  {label} / raw consume:    {vigil / raw:>10.1%}")
    return ratios


if __name__ == "__main__":
    main()

"""Soak `faust -A app demo` and sample it: is it flat over time?

Starts the demo (embedded broker, worker, simulator) in its own data directory and on a
free web port, then every ``--interval`` seconds prints one row:

* scored tx/s over the interval,
* p50 / p95 end-to-end latency (event time to scored record acknowledged) in the interval,
* consumer lag of the worker's group on ``transactions`` (log end minus committed),
* CPU share and RSS of the broker, the worker and the simulator (from /proc),
* the demo's broker generation (``--rollover`` starts a new one),
* the worker log's new ERROR lines.

Throughput and latency come from the worker's own ``/metrics`` (scored transactions and the
``vigil_end_to_end_latency_seconds`` histogram, so p50/p95 are interpolated within its
buckets): a consumer of the scored topic would add its own fetches to the broker measured.

Usage: ``python bench/demo_soak.py --minutes 30 [--interval 60] [--rate 200]``.
It only talks to 127.0.0.1 and stops the demo (and so every process it started) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.kafka.tansu_compat import HighWatermarkProbe  # noqa: E402

FAUST = str(Path(sys.executable).parent / "faust")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def free_port() -> int:
    """Return a free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """Return every descendant of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def cmdline(pid: int) -> list[str]:
    """Return the command line of ``pid`` (empty once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cpu_s_and_rss_mb(pid: int) -> tuple[float, float]:
    """Return the CPU seconds used so far and the resident memory of ``pid``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return float("nan"), float("nan")
    return (int(stat[11]) + int(stat[12])) / CLK_TCK, int(statm[1]) * PAGE_MB


def find_roles(demo_pid: int) -> dict[str, int]:
    """Return the pids of the demo's broker, worker and simulator."""
    roles: dict[str, int] = {}
    for pid in children(demo_pid):
        args = cmdline(pid)
        if any("tansu" in a for a in args[:1]) and "broker" in args:
            roles["broker"] = pid
        elif "worker" in args and "app" in args:
            roles["worker"] = pid
        elif "simulate" in args and "app" in args:
            roles["simulator"] = pid
    return roles


def broker_bootstrap(broker_pid: int) -> str:
    """Read ``host:port`` from the broker's ``--listener-url``."""
    args = cmdline(broker_pid)
    url = args[args.index("--listener-url") + 1]
    return url.split("://", 1)[1].rstrip("/")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return the worker's Prometheus samples by (name, labels); empty if it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


SCORED = ("vigil_transactions_consumed_total", (("outcome", "scored"),))
E2E = "vigil_end_to_end_latency_seconds_bucket"


class Counts:
    """Scored transactions and the end-to-end latency histogram, summed across workers.

    A rollover starts a new worker whose counters start at zero: a counter that went down
    counts from zero again.
    """

    def __init__(self) -> None:
        self.last: dict[Any, float] = {}
        self.delta: dict[Any, float] = {}

    def update(self, samples: dict[Any, float]) -> None:
        """Add what the counters grew by since the last scrape."""
        for key, value in samples.items():
            if key != SCORED and key[0] != E2E:
                continue
            before = self.last.get(key, 0.0)
            grown = value - before if value >= before else value
            self.delta[key] = self.delta.get(key, 0.0) + grown
            self.last[key] = value

    def take(self) -> tuple[float, float, float]:
        """Return (scored, p50 s, p95 s) since the last call and start a new interval."""
        delta, self.delta = self.delta, {}
        scored = delta.get(SCORED, 0.0)
        buckets = sorted(
            (float(dict(labels)["le"]), n) for (name, labels), n in delta.items() if name == E2E
        )
        return scored, quantile(buckets, 0.5), quantile(buckets, 0.95)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Return the ``q`` quantile of a cumulative histogram (linear within a bucket)."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    target = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= target:
            if upper == float("inf"):
                return lower
            share = (target - below) / (cumulative - below) if cumulative > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, cumulative
    return lower


class Offsets:
    """End offsets (corrected for the embedded broker) and the worker group's commits."""

    def __init__(self, bootstrap: str, group: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.partitions = partitions
        self.probe = HighWatermarkProbe(bootstrap)
        self.consumer: Any = None

    async def start(self) -> None:
        """Connect the offset reader (it never joins the group)."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        await self.consumer.start()

    async def stop(self) -> None:
        """Close the connections."""
        await self.probe.close()
        if self.consumer is not None:
            await self.consumer.stop()

    def tps(self, topic: str) -> list[TopicPartition]:
        """Return the partitions of ``topic``."""
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    async def ends(self, topic: str) -> dict[TopicPartition, int]:
        """Return each partition's log end."""
        listed = await self.consumer.end_offsets(self.tps(topic))
        return await self.probe.corrected(listed)

    async def lag(self, topic: str) -> int:
        """Return the worker group's lag on ``topic``."""
        ends = await self.ends(topic)
        total = 0
        for tp, end in ends.items():
            committed = await self.consumer.committed(tp)
            total += max(0, end - (committed or 0))
        return total


HEADER = (
    f"{'min':>5} {'tx/s':>6} {'p50 s':>7} {'p95 s':>7} {'lag':>7} "
    f"{'brk cpu%':>8} {'brk MB':>7} {'wrk cpu%':>8} {'wrk MB':>7} {'sim MB':>6} "
    f"{'gen':>3} {'errors':>6}"
)
TICK_S = 2.0


class Demo:
    """The running demo's processes, followed across rollovers (new broker, worker...)."""

    def __init__(self, demo_pid: int, partitions: int, metrics_url: str) -> None:
        self.demo_pid = demo_pid
        self.metrics_url = metrics_url
        self.counts = Counts()
        self.partitions = partitions
        self.roles: dict[str, int] = {}
        self.cpu_s: dict[int, float] = {}  # last CPU reading of every pid seen
        self.pid_roles: dict[int, str] = {}
        self.generation = 0
        self.offsets: Offsets | None = None

    async def follow(self) -> None:
        """Re-read the roles; on a new broker, read its scored topic and offsets instead."""
        roles = find_roles(self.demo_pid)
        for role, pid in roles.items():
            self.pid_roles[pid] = role
            cpu = cpu_s_and_rss_mb(pid)[0]
            if cpu == cpu:  # not nan: still running
                self.cpu_s[pid] = cpu
        if "broker" in roles and roles.get("broker") != self.roles.get("broker"):
            await self.close()
            self.generation += 1
            self.offsets = Offsets(broker_bootstrap(roles["broker"]), "vigil", self.partitions)
            await self.offsets.start()
        self.roles.update(roles)
        samples = await asyncio.to_thread(scrape, self.metrics_url)
        self.counts.update(samples)

    async def close(self) -> None:
        """Stop reading the current broker."""
        if self.offsets is not None:
            await self.offsets.stop()
            self.offsets = None


async def soak(args: argparse.Namespace) -> int:
    """Run the demo for ``args.minutes`` and print a row every ``args.interval`` seconds."""
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="vigil-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_DATA_DIR": str(data_dir), "VIGIL_WEB_PORT": str(free_port())})
    if args.model:
        env["VIGIL_MODEL_PATH"] = args.model
    cmd = [FAUST, "-A", "app", "demo", "--rate", str(args.rate)]
    if args.rollover is not None:
        cmd += ["--rollover", str(args.rollover)]
    demo_log = (data_dir / "demo.out").open("ab")
    demo = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=demo_log, stderr=subprocess.STDOUT)
    worker_log = data_dir / "demo-logs" / "worker.log"
    print(f"demo pid {demo.pid}, data {data_dir}, web port {env['VIGIL_WEB_PORT']}", flush=True)
    state = Demo(demo.pid, args.partitions, f"http://127.0.0.1:{env['VIGIL_WEB_PORT']}/metrics")
    try:
        deadline = time.monotonic() + 300
        while len(find_roles(demo.pid)) < 3:
            if demo.poll() is not None or time.monotonic() > deadline:
                print("the demo did not start; see", data_dir / "demo.out")
                return 1
            await asyncio.sleep(1)
        await asyncio.sleep(args.warmup)
        await state.follow()
        print("pids", state.roles, flush=True)
        print(HEADER, flush=True)
        started = last_t = time.monotonic()
        last_cpu = dict(state.cpu_s)
        state.counts.take()
        log_pos = worker_log.stat().st_size if worker_log.exists() else 0
        while time.monotonic() - started < args.minutes * 60:
            row_due = last_t + args.interval
            while time.monotonic() < row_due:
                await asyncio.sleep(min(TICK_S, max(0.0, row_due - time.monotonic())))
                if demo.poll() is not None:
                    print(f"the demo exited with {demo.returncode}")
                    return 1
                await state.follow()
            now = time.monotonic()
            dt = now - last_t
            cpu = {}
            for role in state.roles:
                # every pid of the role in the interval (a rollover replaces them)
                pids = [p for p in state.cpu_s if state.pid_roles.get(p) == role]
                cpu[role] = 100 * sum(state.cpu_s[p] - last_cpu.get(p, 0.0) for p in pids) / dt
            rss = {role: cpu_s_and_rss_mb(pid)[1] for role, pid in state.roles.items()}
            try:
                lag = await state.offsets.lag("transactions") if state.offsets else -1
            except Exception:  # a rollover stopped the broker under the reader
                lag = -1
            scored, p50, p95 = state.counts.take()
            errors = 0
            if worker_log.exists():
                with worker_log.open("rb") as fh:
                    fh.seek(log_pos)
                    new = fh.read()
                    log_pos += len(new)
                errors = new.count(b"[ERROR]")
            print(
                f"{(now - started) / 60:5.1f} {scored / dt:6.1f} "
                f"{p50:7.2f} {p95:7.2f} {lag:7d} "
                f"{cpu['broker']:8.1f} {rss['broker']:7.1f} "
                f"{cpu['worker']:8.1f} {rss['worker']:7.1f} {rss['simulator']:6.1f} "
                f"{state.generation:3d} {errors:6d}",
                flush=True,
            )
            last_t = now
            last_cpu = dict(state.cpu_s)
        return 0
    finally:
        await state.close()
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
        demo_log.close()


def main() -> None:
    """Parse the options and run the soak."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="Seconds between rows.")
    parser.add_argument("--rate", type=float, default=200.0, help="The demo's tx/s.")
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds before the first row.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--data-dir", default="", help="Default: a new temporary directory.")
    parser.add_argument("--model", default="", help="Artifact [default: the demo's own].")
    parser.add_argument(
        "--rollover", type=float, default=None, help="The demo's --rollover [its default]."
    )
    raise SystemExit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()

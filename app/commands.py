"""Custom commands on the Faust entry point: ``faust -A app demo|simulate|train``.

Heavy imports happen inside the commands so that ``faust -A app worker`` stays lean.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from faust.cli import AppCommand, option

from app import app

log = logging.getLogger(__name__)


def _bootstrap(broker_url: str) -> str:
    """Turn ``kafka://h1:p1;h2:p2`` into aiokafka's ``h1:p1,h2:p2``."""
    return ",".join(part.split("://", 1)[-1] for part in broker_url.replace(";", ",").split(","))


async def run_simulation(
    bootstrap: str,
    topic: str,
    rate: float,
    duration_s: float,
    seed: int,
    fraud_rate: float,
) -> dict[str, int]:
    """Produce simulated transactions at ``rate`` per second, paced on their event time."""
    import orjson
    from aiokafka import AIOKafkaProducer

    from models.simulator import Simulator

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    counts: dict[str, int] = {}
    start_ms = int(time.time() * 1000)
    events = Simulator(seed=seed, fraud_rate=fraud_rate).events(start_ms, rate)
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    pending: list[Any] = []
    try:
        nxt = next(events)
        while time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            while nxt.tx["ts"] <= now_ms:
                value = orjson.dumps(nxt.tx)
                key = str(nxt.tx["account_id"]).encode()
                pending.append(await producer.send(topic, value, key=key))
                counts[nxt.pattern] = counts.get(nxt.pattern, 0) + 1
                nxt = next(events)
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(0.01)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


@app.command(
    option("--rate", type=float, default=100.0, show_default=True, help="Transactions/s."),
    option("--duration", type=float, default=0.0, show_default=True, help="Seconds; 0 = forever."),
    option("--seed", type=int, default=7, show_default=True, help="Random seed."),
    option("--fraud-rate", type=float, default=0.01, show_default=True, help="Share of frauds."),
)
async def simulate(
    self: AppCommand, rate: float, duration: float, seed: int, fraud_rate: float
) -> None:
    """Produce realistic transactions with labelled fraud patterns to the transactions topic."""
    s = app.settings
    counts = await run_simulation(
        _bootstrap(s.broker_url), s.topic_transactions, rate, duration, seed, fraud_rate
    )
    self.say(f"sent {sum(counts.values())} transactions: {counts}")


@app.command(
    option("--output", type=str, default="", help="Artifact path [default: VIGIL_MODEL_PATH]."),
    option("--seed", type=int, default=7, show_default=True, help="Random seed."),
)
async def train(self: AppCommand, output: str, seed: int) -> None:
    """Train the default XGBoost artifact on simulated transactions."""
    from models.training import train_default

    path = Path(output) if output else app.settings.model_path
    started = time.monotonic()
    artifact = await asyncio.to_thread(train_default, path, seed=seed)
    m = artifact.metrics
    self.say(
        f"wrote {path} (version {artifact.version}) in {time.monotonic() - started:.1f}s: "
        f"validation AUC {m.get('auc_roc', float('nan')):.4f}, "
        f"AP {m.get('average_precision', float('nan')):.4f}, thresholds {artifact.thresholds}"
    )


class _Children:
    """Child processes of the demo, stopped together."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def spawn(self, name: str, *args: str, env: dict[str, str], log_path: Path) -> None:
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        out.close()
        self.procs.append((name, proc))

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs if p.returncode is not None]

    async def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _print_alerts(bootstrap: str, say: Any) -> None:
    """Print a one-line summary of alerts every few seconds (the demo's console view)."""
    import orjson
    from aiokafka import AIOKafkaConsumer

    s = app.settings
    topics = list(s.alert_topics().values())
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, fetch_max_wait_ms=100, group_id=None
    )
    await consumer.start()
    totals = dict.fromkeys(s.alert_topics(), 0)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=3000)
            last: dict[str, Any] | None = None
            for msgs in batch.values():
                for msg in msgs:
                    alert = orjson.loads(msg.value)
                    totals[alert["tier"]] += 1
                    if alert["tier"] == "HIGH" or last is None:
                        last = alert
            if last is not None:
                why = ", ".join(
                    f"{r['feature']}={r['value']} ({r['contribution']:+.2f})"
                    for r in last["reasons"]
                )
                say(
                    f"alerts so far {totals} | latest {last['tier']} {last['tx_id']} "
                    f"account {last['account_id']} score {last['score']:.3f}: {why}"
                )
    finally:
        await consumer.stop()


@app.command(
    option("--rate", type=float, default=200.0, show_default=True, help="Simulated tx/s."),
    option("--duration", type=float, default=0.0, show_default=True, help="Seconds; 0 = forever."),
)
async def demo(self: AppCommand, rate: float, duration: float) -> None:
    """Run the embedded broker, a worker and the simulator until Ctrl-C."""
    from app.embedded_broker import EmbeddedBroker
    from models.artifact import ArtifactError, load_artifact
    from models.training import train_default

    s = app.settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    logs = s.data_dir / "demo-logs"
    logs.mkdir(exist_ok=True)
    try:
        load_artifact(s.model_path)
    except ArtifactError as exc:
        self.say(f"no usable model ({exc}); training the default model...")
        started = time.monotonic()
        await asyncio.to_thread(train_default, s.model_path)
        self.say(f"trained {s.model_path} in {time.monotonic() - started:.1f}s")

    broker = EmbeddedBroker(log_path=logs / "broker.log").start()
    # The embedded broker keeps nothing across runs, so neither may the worker's tables.
    worker_data = s.data_dir / "demo-worker"
    shutil.rmtree(worker_data, ignore_errors=True)
    env = dict(os.environ)  # every other VIGIL_* setting reaches the worker unchanged
    env.update(
        {
            "VIGIL_BROKER_URL": broker.url,
            "VIGIL_BROKER_FLAVOR": "tansu",
            "VIGIL_DATA_DIR": str(worker_data),
            "VIGIL_MODEL_PATH": str(s.model_path),
            "VIGIL_WEB_HOST": s.web_host,
            "VIGIL_WEB_PORT": str(s.web_port),
        }
    )
    faust_bin = str(Path(sys.executable).parent / "faust")
    children = _Children()
    printer: asyncio.Task[None] | None = None
    try:
        await children.spawn(
            "worker",
            faust_bin,
            "-A",
            "app",
            "worker",
            "-l",
            "info",
            env=env,
            log_path=logs / "worker.log",
        )
        await children.spawn(
            "simulator",
            faust_bin,
            "-A",
            "app",
            "simulate",
            "--rate",
            str(rate),
            env=env,
            log_path=logs / "simulator.log",
        )
        self.say(
            "\n".join(
                [
                    "Vigil demo is running:",
                    f"  embedded broker  {broker.bootstrap} (tansu, in memory)",
                    f"  worker           http://{s.web_host}:{s.web_port}/  (metrics: /metrics)",
                    f"  simulator        {rate:g} transactions/s with labelled fraud patterns",
                    f"  model            {s.model_path}",
                    f"  logs             {logs}/",
                    "Alerts are summarised below every few seconds. Ctrl-C stops everything.",
                ]
            )
        )
        printer = asyncio.create_task(_print_alerts(broker.bootstrap, self.say))
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        while time.monotonic() < deadline:
            dead = children.dead()
            if dead:
                self.say(f"stopping: child exited {dead}; see {logs}/")
                break
            await asyncio.sleep(0.5)
    finally:
        if printer is not None:
            printer.cancel()
            with contextlib.suppress(BaseException):
                await printer
        await children.stop()
        broker.stop()
        self.say("demo stopped: worker, simulator and broker are down")

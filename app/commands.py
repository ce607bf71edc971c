"""Custom commands on the Faust entry point: ``faust -A app demo|broker|simulate|train``.

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

import click
from faust.cli import AppCommand, option

from app import app
from app.kafka.failfast import one_line, print_and_exit
from app.kafka.security import PLAINTEXT, KafkaSecurity, without_security
from app.settings import bootstrap_servers
from models.tiers import DEFAULT_PRECISION_TARGETS as TARGETS

log = logging.getLogger(__name__)


async def run_simulation(
    bootstrap: str,
    topic: str,
    rate: float,
    duration_s: float,
    seed: int,
    fraud_rate: float,
    aml_rate: float = 0.0,
    labels_topic: str | None = None,
    label_delay_s: float = 0.0,
    legit_label_share: float = 0.05,
    linger_ms: int = 5,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, int]:
    """Produce simulated transactions at ``rate`` per second, paced on their event time.

    With ``labels_topic``, every fraud (and ``legit_label_share`` of the rest) that names a
    counterparty is labelled ``label_delay_s`` later, as chargebacks and analyst verdicts
    arrive in real life; the labels feed the counterparty-risk table.
    """
    import heapq
    import zlib

    import orjson
    from aiokafka import AIOKafkaProducer

    from models.labels import Label
    from models.simulator import Simulator

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=1, **security.client_kwargs()
    )
    await producer.start()
    counts: dict[str, int] = {}
    start_ms = int(time.time() * 1000)
    events = Simulator(seed=seed, fraud_rate=fraud_rate, aml_rate=aml_rate).events(start_ms, rate)
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    pending: list[Any] = []
    due: list[tuple[int, int, bytes, bytes]] = []  # (due ms, seq, key, label)
    delay_ms = int(label_delay_s * 1000)
    try:
        nxt = next(events)
        while time.monotonic() < deadline:
            now_ms = int(time.time() * 1000)
            while nxt.tx["ts"] <= now_ms:
                tx = nxt.tx
                value = orjson.dumps(tx)
                key = str(tx["account_id"]).encode()
                pending.append(await producer.send(topic, value, key=key))
                counts[nxt.pattern] = counts.get(nxt.pattern, 0) + 1
                cp = tx.get("counterparty_id")
                sampled = zlib.crc32(tx["tx_id"].encode()) % 1000 < legit_label_share * 1000
                if labels_topic and cp and (nxt.label or sampled):
                    label = Label(
                        tx_id=tx["tx_id"],
                        label="fraud" if nxt.label else "legit",
                        ts_ms=tx["ts"] + delay_ms,
                        source="simulator",
                        counterparty_id=cp,
                        account_id=tx["account_id"],
                        tx_ts_ms=tx["ts"],
                    )
                    item = (label.ts_ms, len(due), tx["tx_id"].encode(), label.to_bytes())
                    heapq.heappush(due, item)
                nxt = next(events)
            while labels_topic and due and due[0][0] <= now_ms:
                _, _, key, value = heapq.heappop(due)
                pending.append(await producer.send(labels_topic, value, key=key))
                counts["labels"] = counts.get("labels", 0) + 1
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
    option(
        "--aml-rate",
        type=float,
        default=0.0,
        show_default=True,
        help="Share of transactions in AML typologies (structuring, mules, pass-through...).",
    ),
    option(
        "--label-delay",
        type=float,
        default=0.0,
        show_default=True,
        help="Send labels (all frauds, 5%% of the rest) this many seconds later; 0 = none.",
    ),
    option("--linger-ms", type=int, default=5, show_default=True, help="Producer linger."),
    option(
        "--out",
        type=str,
        default="",
        help="Write a labelled JSONL file (gzip if .gz; label and pattern per row) instead.",
    ),
    option("--days", type=float, default=35.0, show_default=True, help="With --out: days."),
    option("--accounts", type=int, default=3000, show_default=True, help="With --out: accounts."),
    option("--start", type=str, default="2024-01-01", show_default=True, help="With --out."),
)
async def simulate(
    self: AppCommand,
    rate: float,
    duration: float,
    seed: int,
    fraud_rate: float,
    aml_rate: float,
    label_delay: float,
    linger_ms: int,
    out: str,
    days: float,
    accounts: int,
    start: str,
) -> None:
    """Produce realistic transactions with labelled fraud patterns to the transactions topic.

    With --out, write a history of --accounts accounts over --days to a file instead, each
    row with its label and pattern, for ``train --data`` and ``backtest --data``.
    """
    if out:
        from models.offline.datafile import write_labelled
        from models.simulator import simulate_history

        start_ms = parse_time(start, "--start") or 0
        history = simulate_history(
            seed, accounts, days, start_ms, fraud_rate=fraud_rate, aml_rate=aml_rate
        )
        rows = write_labelled(Path(out), ((r.tx, r.label, r.pattern) for r in history))
        self.say(f"wrote {rows:,} transactions to {out}")
        return
    from aiokafka.errors import KafkaError

    from app.kafka.security import KafkaSecurityError, diagnose_connection

    s = app.settings
    bootstrap = bootstrap_servers(s.broker_url)
    try:
        counts = await run_simulation(
            bootstrap,
            s.topic_transactions,
            rate,
            duration,
            seed,
            fraud_rate,
            aml_rate=aml_rate,
            labels_topic=s.topic_labels if label_delay > 0 else None,
            label_delay_s=label_delay,
            linger_ms=linger_ms,
            security=app.kafka_security,
        )
    except KafkaError:
        # aiokafka says only "Unable to bootstrap": name a refused login or certificate.
        found = await diagnose_connection(bootstrap, app.kafka_security, 5.0)
        if found is not None and found.final:
            raise KafkaSecurityError(f"cannot use the Kafka broker: {found.message}") from None
        raise
    self.say(f"sent {sum(counts.values())} transactions: {counts}")


def parse_time(value: str, option_name: str) -> int | None:
    """Read ``--from`` / ``--until``: a date, an ISO-8601 time (UTC unless zoned) or epoch ms."""
    from datetime import UTC, datetime

    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(
            f"{option_name} {value!r}: expected YYYY-MM-DD, ISO-8601 or epoch ms"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


_DATA_OPTIONS = (
    option("--format", "fmt", type=str, default="", help="jsonl or csv [default: from the name]."),
    option("--label-column", type=str, default="label", show_default=True, help="1 = fraud."),
    option(
        "--field",
        "fields",
        type=str,
        multiple=True,
        help="Map a column: --field account_id=CUSTOMER_ID (repeatable).",
    ),
    option("--from", "from_", type=str, default="", help="Start of the period (date/ISO/ms)."),
    option("--until", type=str, default="", help="End of the period, exclusive."),
    option(
        "--label-delay-days",
        type=float,
        default=7.0,
        show_default=True,
        help="Days after a transaction its label becomes known to the features.",
    ),
)


@app.command(
    option("--output", type=str, default="", help="Artifact path [default: VIGIL_MODEL_PATH]."),
    option("--seed", type=int, default=7, show_default=True, help="Random seed."),
    option("--data", type=str, default="", help="Labelled JSONL/CSV (gzip ok); else simulate."),
    option("--valid-days", type=float, default=0.0, help="Validation days [default: last 25%]."),
    option("--gap-days", type=float, default=0.0, show_default=True, help="Train/valid gap."),
    option("--high-precision", type=float, default=TARGETS["HIGH"], show_default=True),
    option("--medium-precision", type=float, default=TARGETS["MEDIUM"], show_default=True),
    option("--low-precision", type=float, default=TARGETS["LOW"], show_default=True),
    option("--top-k", type=int, default=100, show_default=True, help="Card precision@k."),
    option("--report-dir", type=str, default="", help="Report folder [default: next to output]."),
    option(
        "--tune",
        is_flag=True,
        default=False,
        help="Search the XGBoost parameters on time folds of the training period first.",
    ),
    option(
        "--tune-minutes",
        type=float,
        default=None,
        help="Time budget of --tune [default: 10, or none with --tune-trials].",
    ),
    option("--tune-trials", type=int, default=None, help="Trials of --tune (deterministic)."),
    option("--tune-folds", type=int, default=3, show_default=True, help="Time folds of --tune."),
    option(
        "--tune-gap-days",
        type=float,
        default=None,
        help="Days between a fold's training and validation [default: --label-delay-days].",
    ),
    option(
        "--if-missing",
        is_flag=True,
        default=False,
        help="Do nothing when the output exists (never replace an artifact a worker serves).",
    ),
    *_DATA_OPTIONS,
)
async def train(
    self: AppCommand,
    output: str,
    seed: int,
    data: str,
    valid_days: float,
    gap_days: float,
    high_precision: float,
    medium_precision: float,
    low_precision: float,
    top_k: int,
    report_dir: str,
    tune: bool,
    tune_minutes: float | None,
    tune_trials: int | None,
    tune_folds: int,
    tune_gap_days: float | None,
    if_missing: bool,
    fmt: str,
    label_column: str,
    fields: tuple[str, ...],
    from_: str,
    until: str,
    label_delay_days: float,
) -> None:
    """Train an XGBoost artifact: on a labelled file (--data) or on simulated transactions.

    A file is replayed in event-time order through the stream's own feature code; training
    takes [from, until - valid - gap), validation [until - valid, until) and writes its
    report (JSON + HTML) beside the artifact. --tune first searches the XGBoost parameters
    on successive time folds of the training period and reports every trial.
    """
    path = Path(output) if output else app.settings.model_path
    if if_missing and path.exists():
        self.say(f"{path} exists; not training (--if-missing)")
        return
    tuning = None
    if tune:
        from models.offline.tuning import TuneConfig

        tuning = TuneConfig(
            trials=tune_trials,
            minutes=tune_minutes,
            folds=tune_folds,
            gap_days=label_delay_days if tune_gap_days is None else tune_gap_days,
            top_k=top_k,
        )
    elif tune_minutes is not None or tune_trials is not None or tune_gap_days is not None:
        raise ValueError("--tune-minutes, --tune-trials and --tune-gap-days need --tune")
    reports = Path(report_dir) if report_dir else path.parent / f"{path.stem}-report"
    started = time.monotonic()
    if not data:
        from models.offline.training import train_default

        artifact = await asyncio.to_thread(
            train_default,
            path,
            seed=seed,
            tune=tuning,
            report_dir=reports if tune or report_dir else None,
            say=self.say,
        )
        m = artifact.metrics
        self.say(
            f"wrote {path} (version {artifact.version}) in {time.monotonic() - started:.1f}s: "
            f"validation AUC {m.get('auc_roc', float('nan')):.4f}, "
            f"AP {m.get('average_precision', float('nan')):.4f}, thresholds {artifact.thresholds}"
            + (f"; report in {reports}/" if tune or report_dir else "")
        )
        return
    from models.offline.backtest import train_on_records
    from models.offline.datafile import parse_field_map, read_labelled

    records = read_labelled(Path(data), parse_field_map(fields), label_column, fmt or None)
    artifact, result = await asyncio.to_thread(
        train_on_records,
        records,
        path,
        from_ms=parse_time(from_, "--from"),
        until_ms=parse_time(until, "--until"),
        valid_days=valid_days or None,
        gap_days=gap_days,
        label_delay_days=label_delay_days,
        targets={"HIGH": high_precision, "MEDIUM": medium_precision, "LOW": low_precision},
        report_dir=reports,
        top_k=top_k,
        seed=seed,
        tune=tuning,
        say=self.say,
    )
    f = result.figures
    self.say(
        f"wrote {path} (version {artifact.version}) in {time.monotonic() - started:.1f}s; "
        f"validation AUC {f['auc_roc']:.4f}, AP {f['average_precision']:.4f}, "
        f"card precision@{top_k} {f['card_precision_at_k']['mean']:.4f}, "
        f"thresholds {artifact.thresholds}; report in {reports}/"
    )


@app.command(
    option("--data", type=str, required=True, help="Labelled JSONL/CSV (gzip ok)."),
    option("--model", type=str, default="", help="Artifact [default: VIGIL_MODEL_PATH]."),
    option("--top-k", type=int, default=100, show_default=True, help="Card precision@k."),
    option("--out-dir", type=str, default="backtest-report", show_default=True),
    option("--scores-out", type=str, default="", help="JSON lines: tx_id, score, tier, label."),
    option("--no-rules", is_flag=True, default=False, help="Score with the model alone."),
    *_DATA_OPTIONS,
)
async def backtest(
    self: AppCommand,
    data: str,
    model: str,
    top_k: int,
    out_dir: str,
    scores_out: str,
    no_rules: bool,
    fmt: str,
    label_column: str,
    fields: tuple[str, ...],
    from_: str,
    until: str,
    label_delay_days: float,
) -> None:
    """Replay a labelled file through features, rules and model: what would have been caught.

    Rows before --from only warm up the state. Writes figures (JSON) and a report (HTML).
    """
    from models.artifact import load_artifact
    from models.offline.backtest import run_backtest, write_backtest_report
    from models.offline.datafile import parse_field_map, read_labelled

    s = app.settings
    artifact = load_artifact(Path(model) if model else s.model_path)
    rules = None if no_rules else _rules_hook()
    records = read_labelled(Path(data), parse_field_map(fields), label_column, fmt or None)
    result = await asyncio.to_thread(
        run_backtest,
        records,
        artifact,
        from_ms=parse_time(from_, "--from"),
        until_ms=parse_time(until, "--until"),
        label_delay_days=label_delay_days,
        top_k=top_k,
        tier_overrides=s.tier_overrides(),
        rules=rules,
        say=self.say,
    )
    json_path, html_path = write_backtest_report(
        result, artifact, Path(out_dir), "backtest", f"Backtest of {artifact.version}"
    )
    if scores_out:
        result.write_scores(Path(scores_out))
    f = result.figures
    tiers = ", ".join(
        f"{t}: {v['transactions']} (precision {v['precision'] or 0:.2f})"
        for t, v in f["tiers"].items()
        if t != "MINIMAL"
    )
    recall = ", ".join(f"{p} {v['recall']:.2f}" for p, v in f.get("patterns", {}).items())
    self.say(
        f"backtest of {artifact.version} on {f['transactions']:,} transactions "
        f"({f['frauds']:,} frauds): AUC {f['auc_roc']:.4f}, AP {f['average_precision']:.4f}, "
        f"card precision@{top_k} {f['card_precision_at_k']['mean']:.4f}; {tiers}"
        + (f"; recall per pattern: {recall}" if recall else "")
        + f". Report: {html_path} ({json_path})"
    )


def _rules_hook() -> Any:
    """Return the configured AML rules and lists (VIGIL_RULES_PATH, ...) as a backtest hook."""
    from models.aml.runtime import AmlRuntime
    from models.offline.backtest import rules_hook

    return rules_hook(AmlRuntime.from_settings(app.settings).snapshot)


def _setup_errors() -> tuple[type[BaseException], ...]:
    """Return the errors of a local broker that cannot start: one line, not a traceback."""
    from app.kafka.embedded_broker import BrokerStartError
    from app.kafka.local_kafka import KafkaSetupError

    return (KafkaSetupError, BrokerStartError)


@app.command(
    option(
        "--kafka",
        is_flag=True,
        default=False,
        help="Apache Kafka (KRaft, jars from Maven Central) instead of the embedded tansu.",
    ),
    option("--nodes", type=int, default=1, show_default=True, help="Kafka nodes: 1 or 3."),
)
async def broker(self: AppCommand, kafka: bool, nodes: int) -> None:
    """Run a local broker on 127.0.0.1 until Ctrl-C; print its bootstrap address (one line).

    Topics are created on first use with VIGIL_PARTITIONS partitions. Nothing is kept: each
    run starts empty.
    """
    import tempfile

    from app.kafka.local_broker import LocalBroker

    s = app.settings
    with tempfile.TemporaryDirectory(prefix="vigil-broker-") as work:
        local = LocalBroker(
            "kafka" if kafka else "tansu",
            Path(work),
            nodes=nodes,
            partitions=s.partitions,
            jars_dir=s.kafka_jars_dir,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                await local.start()
            except _setup_errors() as exc:
                print_and_exit(f"broker: {one_line(exc)}", 1)
            print(local.bootstrap, flush=True)
            flavor = "kafka" if kafka else "tansu"
            print(
                f"vigil: {local.describe()}; for Vigil: VIGIL_BROKER_URL={local.url} "
                f"VIGIL_BROKER_FLAVOR={flavor}; Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            while not stop.is_set():
                if not local.running:
                    print_and_exit("broker: the broker process exited unexpectedly", 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            local.stop()


class _Children:
    """Child processes of the demo, stopped together; each dies with the demo (kill -9 too)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def spawn(self, name: str, *args: str, env: dict[str, str], log_path: Path) -> None:
        from app.kafka.embedded_broker import die_with_parent

        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        proc = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
        out.close()
        self.procs.append((name, proc))

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs if p.returncode is not None]

    async def stop(self, *names: str) -> None:
        """Stop the named children (all when none is named), the last started first."""
        chosen = [(n, p) for n, p in self.procs if not names or n in names]
        for _, proc in reversed(chosen):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(chosen):
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs = [(n, p) for n, p in self.procs if (n, p) not in chosen]


async def _print_alerts(bootstrap: str, say: Any, security: KafkaSecurity = PLAINTEXT) -> None:
    """Print a one-line summary of alerts every few seconds (the demo's console view)."""
    import orjson
    from aiokafka import AIOKafkaConsumer

    s = app.settings
    topics = list(s.alert_topics().values())
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=100,
        group_id=None,
        **security.client_kwargs(),
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
                rules = ", ".join(r["rule_id"] for r in last.get("rules", []))
                say(
                    f"alerts so far {totals} | latest {last['tier']} {last['tx_id']} "
                    f"account {last['account_id']} score {last['score']:.3f}: {why}"
                    + (f" | rules: {rules}" if rules else "")
                )
    finally:
        await consumer.stop()


async def _create_demo_topics(bootstrap: str) -> None:
    """Create the topics the simulator and the console use before they start.

    Kafka would create them on first use too, but the console's consumer would log an ERROR
    for each until then. The worker declares the rest (changelogs, re-key topics) itself.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    s = app.settings
    names = [s.topic_transactions, s.topic_labels, s.topic_scored, s.topic_deadletter]
    names += sorted(set(s.alert_topics().values()))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, s.partitions, s.replication_factor) for name in names]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


#: The demo simulator's producer linger: ~10 transactions a batch and partition at 200 tx/s.
DEMO_LINGER_MS = 200


class _DemoGeneration:
    """One local broker with the worker and simulator that use it (see ``--rollover``)."""

    def __init__(
        self, number: int, rate: float, logs: Path, env: dict[str, str], flavor: str = "tansu"
    ) -> None:
        from app.kafka.local_broker import LocalBroker

        self.number = number
        self.rate = rate
        self.logs = logs
        self.flavor = flavor
        # A fresh Kafka formats new storage under the logs: each demo starts empty, as on tansu.
        workdir = logs if flavor == "tansu" else logs / f"kafka-{number}"
        if flavor == "kafka":
            shutil.rmtree(workdir, ignore_errors=True)
        self.broker = LocalBroker(
            flavor,
            workdir,
            partitions=app.settings.partitions,
            jars_dir=app.settings.kafka_jars_dir,
        )
        self.env = env
        self.children = _Children()
        self.printer: asyncio.Task[None] | None = None

    async def start_broker(self) -> None:
        """Start the broker (empty: tansu keeps its records in memory, Kafka is formatted)."""
        await self.broker.start()
        self.env = {**self.env, "VIGIL_BROKER_URL": self.broker.url}
        if self.flavor == "kafka":
            await _create_demo_topics(self.broker.bootstrap)

    async def start_simulator(self) -> None:
        """Produce to this generation's broker (a new seed: new accounts, new tx ids)."""
        await self.children.spawn(
            "simulator",
            str(Path(sys.executable).parent / "faust"),
            "-A",
            "app",
            "simulate",
            "--rate",
            str(self.rate),
            "--seed",
            str(7 + self.number),
            "--label-delay",
            "30",
            "--aml-rate",
            "0.01",
            # Each produced batch is an object the embedded broker lists on every fetch of
            # its partition: fewer, larger batches keep its fetches cheap for longer.
            "--linger-ms",
            str(DEMO_LINGER_MS),
            env=self.env,
            log_path=self.logs / "simulator.log",
        )

    async def start_worker(self, say: Any) -> None:
        """Start the worker and the console's alert summary."""
        await self.children.spawn(
            "worker",
            str(Path(sys.executable).parent / "faust"),
            "-A",
            "app",
            "worker",
            "-l",
            "info",
            env=self.env,
            log_path=self.logs / "worker.log",
        )
        self.printer = asyncio.create_task(_print_alerts(self.broker.bootstrap, say))

    async def stop(self, *names: str) -> None:
        """Stop the named children (all, the printer and the broker when none is named)."""
        if (not names or "worker" in names) and self.printer is not None:
            self.printer.cancel()
            with contextlib.suppress(BaseException):
                await self.printer
            self.printer = None
        await self.children.stop(*names)
        if not names:
            self.broker.stop()


@app.command(
    option("--rate", type=float, default=200.0, show_default=True, help="Simulated tx/s."),
    option("--duration", type=float, default=0.0, show_default=True, help="Seconds; 0 = forever."),
    option(
        "--rollover",
        type=float,
        default=None,
        help="Minutes between fresh brokers (tansu keeps every record); 0 = never "
        "[default: 10 on tansu, never on kafka].",
    ),
    option(
        "--broker",
        "flavor",
        type=click.Choice(["tansu", "kafka"]),
        default="tansu",
        show_default=True,
        help="The embedded tansu, or Apache Kafka (KRaft, one node; needs Java and Maven).",
    ),
)
async def demo(
    self: AppCommand, rate: float, duration: float, rollover: float | None, flavor: str
) -> None:
    """Run a local broker, a worker and the simulator until Ctrl-C."""
    from models.artifact import ArtifactError, load_artifact
    from models.offline.training import train_default

    s = app.settings
    if rollover is None:
        rollover = 10.0 if flavor == "tansu" else 0.0
    if rollover < 0:
        raise ValueError(f"--rollover {rollover:g}: give minutes >= 0 (0 = never)")
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

    # The embedded broker keeps nothing across runs, so neither may the worker's tables.
    worker_data = s.data_dir / "demo-worker"
    # Every other VIGIL_* setting reaches the worker unchanged; TLS and SASL are for a
    # remote cluster, not the demo's own plain-text loopback broker.
    env = without_security(os.environ)
    env.update(
        {
            # The worker knows which broker it talks to: tansu's workarounds on tansu only.
            "VIGIL_BROKER_FLAVOR": flavor,
            "VIGIL_DATA_DIR": str(worker_data),
            "VIGIL_MODEL_PATH": str(s.model_path),
            "VIGIL_WEB_HOST": s.web_host,
            "VIGIL_WEB_PORT": str(s.web_port),
        }
    )
    current = _DemoGeneration(1, rate, logs, env, flavor)
    try:
        try:
            await current.start_broker()
        except _setup_errors() as exc:
            print_and_exit(f"demo: {one_line(exc)}", 1)
        shutil.rmtree(worker_data, ignore_errors=True)
        await current.start_worker(self.say)
        await current.start_simulator()
        self.say(
            "\n".join(
                [
                    "Vigil demo is running:",
                    f"  broker           {current.broker.bootstrap} ({current.broker.describe()})",
                    f"  web view         http://{s.web_host}:{s.web_port}/  (live alerts; "
                    "accounts: /accounts/<id>; metrics: /metrics)",
                    "  labelling        "
                    + ("on (VIGIL_WEB_TOKEN)" if s.web_token else "off: set VIGIL_WEB_TOKEN"),
                    f"  simulator        {rate:g} transactions/s with labelled fraud patterns; "
                    "labels (all frauds, 5% of the rest) 30 s later",
                    f"  model            {s.model_path}",
                    f"  logs             {logs}/",
                    (
                        f"  rollover         every {rollover:g} min: a fresh broker, worker "
                        "state and simulated accounts (tansu keeps every record in memory and "
                        "slows down as they pile up)"
                        if rollover > 0
                        else "  rollover         off"
                    ),
                    "Alerts are summarised below every few seconds. Ctrl-C stops everything.",
                ]
            )
        )
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        rollover_s = rollover * 60 if rollover > 0 else float("inf")
        generation_started = time.monotonic()
        # SIGTERM (a service manager, `kill`) stops the demo like Ctrl-C does: children and
        # the broker are stopped in the finally below, none is left behind.
        terminated = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
        while time.monotonic() < deadline and not terminated.is_set():
            dead = current.children.dead()
            if dead:
                self.say(f"stopping: child exited {dead}; see {logs}/")
                break
            if time.monotonic() - generation_started >= rollover_s:
                current = await _roll_over(current, worker_data, self.say)
                generation_started = time.monotonic()
            await asyncio.sleep(0.5)
    finally:
        await current.stop()
        self.say("demo stopped: worker, simulator and broker are down")


async def _roll_over(old: _DemoGeneration, worker_data: Path, say: Any) -> _DemoGeneration:
    """Move the demo to a fresh broker: the new simulator first, then the worker.

    Transactions produced while the new worker starts wait in the new broker; the old
    worker has the old simulator's last ones scored before it stops.
    """
    new = _DemoGeneration(old.number + 1, old.rate, old.logs, old.env, old.flavor)
    await new.start_broker()
    await new.start_simulator()
    await old.stop("simulator")
    await asyncio.sleep(2.0)  # the old worker scores what the old simulator sent last
    await old.stop()
    shutil.rmtree(worker_data, ignore_errors=True)  # tables start as empty as the broker
    await new.start_worker(say)
    kind = "embedded" if new.flavor == "tansu" else "Kafka"
    say(f"rolled over to {kind} broker {new.number} at {new.broker.bootstrap}")
    return new

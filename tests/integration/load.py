"""Steady load and observers for the fault-injection suite (tests/integration/test_faults.py).

* :class:`LoadGenerator` offers simulated transactions (``models.simulator``, keyed by account
  like ``faust -A app simulate``) at a fixed rate from a thread, with one malformed message in
  a hundred, and records exactly what the broker acknowledged.
* :class:`ScoredWatcher` reads ``transactions.scored`` from a thread while the faults happen,
  so a test can tell how far the worker got before a kill and when it resumed.
* :func:`replay_states` is the offline replay of what was produced: the same pure
  ``update_account`` (and AML state update) the stream applies, one pass per account.

Everything talks to the broker the test gives it (127.0.0.1) and stops by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.settings import load_settings
from models.aml.runtime import AmlRuntime
from models.features import AccountState
from models.offline.replay import Replayer
from models.simulator import simulate_history
from models.transaction import parse_transaction

#: One message in this many is malformed (the issue's 1 %).
MALFORMED_EVERY = 100
#: Kinds of malformed message, used in turn: each must end in the dead-letter topic.
MALFORMED_KINDS: tuple[str, ...] = (
    "bad_json",
    "not_an_object",
    "missing_amount",
    "missing_tx_id",
    "negative_amount",
    "amount_is_text",
    "account_id_is_int",
    "ts_is_text",
    "amount_is_bool",
    "amount_nan",
)
#: One message in this many belongs to one busy account (5 %: 40 a second at 800 tx/s).
BUSY_EVERY = 20
BUSY_ACCOUNT = "acc-busy"
#: Event time of the first simulated transaction (fixed, so runs are comparable).
START_MS = 1_772_000_000_000  # 2026-02-25


@dataclass(frozen=True, slots=True)
class Record:
    """One message of the plan: key, value and, for a valid transaction, its id and account."""

    key: bytes
    value: bytes
    tx_id: str | None = None
    account_id: str | None = None


def malformed_value(kind: str, n: int, account_id: str, ts_ms: int) -> bytes:
    """Return a unique malformed message of ``kind`` (``n`` makes it unique)."""
    ok: dict[str, Any] = {
        "tx_id": f"malformed-{n}",
        "ts": ts_ms,
        "account_id": account_id,
        "amount": 12.5,
        "type": "CARD",
    }
    if kind == "bad_json":
        return b'{"tx_id": "malformed-%d", "ts": %d, "amount": ' % (n, ts_ms)
    if kind == "not_an_object":
        return orjson.dumps(["malformed", n, account_id])
    if kind == "missing_amount":
        del ok["amount"]
    elif kind == "missing_tx_id":
        del ok["tx_id"]
        ok["note"] = f"malformed-{n}"
    elif kind == "negative_amount":
        ok["amount"] = -1.0 - n
    elif kind == "amount_is_text":
        ok["amount"] = f"twelve-{n}"
    elif kind == "account_id_is_int":
        ok["account_id"] = n
    elif kind == "ts_is_text":
        ok["ts"] = f"yesterday-{n}"
    elif kind == "amount_is_bool":
        ok["amount"] = True
    elif kind == "amount_nan":
        return b'{"tx_id": "malformed-%d", "ts": %d, "account_id": "%s", "amount": NaN}' % (
            n,
            ts_ms,
            account_id.encode(),
        )
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return orjson.dumps(ok)


def build_plan(n_records: int, n_accounts: int, seed: int) -> list[Record]:
    """Return ``n_records`` messages: simulated transactions over ``n_accounts`` accounts.

    Occasional accounts are off, so every transaction belongs to the fixed population and
    each account gets a real history (its state is worth comparing); one account in
    addition gets every :data:`BUSY_EVERY`-th transaction. Every
    :data:`MALFORMED_EVERY`-th message is malformed, keyed by an account like the rest.
    """
    n_valid = n_records - n_records // MALFORMED_EVERY
    per_day = 24.0
    days = n_valid / (n_accounts * per_day) * 1.3 + 0.5
    history = simulate_history(
        seed, n_accounts, days, START_MS, tx_per_account_per_day=per_day, occasional_share=0.0
    )
    if len(history) < n_valid:
        raise RuntimeError(f"simulator gave {len(history)} transactions, {n_valid} needed")
    plan: list[Record] = []
    valid = iter(history)
    malformed = 0
    busy = 0
    while len(plan) < n_records:
        if len(plan) % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            anchor = plan[-1]
            assert anchor.account_id is not None
            kind = MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)]
            value = malformed_value(kind, malformed, anchor.account_id, START_MS)
            plan.append(Record(anchor.key, value))
            malformed += 1
            continue
        tx = next(valid).tx
        if len(plan) % BUSY_EVERY == 0:
            # A busy account: more of its records than the replay memory holds
            # (SEEN_TX) are redelivered after a crash, so a double count shows on it.
            busy += 1
            tx = {**tx, "tx_id": f"busy-{seed}-{busy}", "account_id": BUSY_ACCOUNT}
        account = str(tx["account_id"])
        plan.append(Record(account.encode(), orjson.dumps(tx), str(tx["tx_id"]), account))
    return plan


@dataclass
class Produced:
    """What the broker acknowledged, in send order (per account order is partition order)."""

    records: list[Record] = field(default_factory=list)

    @property
    def valid(self) -> list[Record]:
        """Return the valid transactions."""
        return [r for r in self.records if r.tx_id is not None]

    @property
    def malformed(self) -> list[bytes]:
        """Return the values of the malformed messages."""
        return [r.value for r in self.records if r.tx_id is None]

    def ids_by_account(self) -> dict[str, list[str]]:
        """Return each account's valid tx ids, in the order they were produced."""
        out: dict[str, list[str]] = {}
        for r in self.valid:
            assert r.account_id is not None and r.tx_id is not None
            out.setdefault(r.account_id, []).append(r.tx_id)
        return out


class LoadGenerator:
    """Offer ``rate`` messages a second to ``topic`` from a thread, for ``max_duration_s``.

    Pacing is by wall clock: every tick sends what is due, so the offered rate holds whatever
    the worker does. Worker restarts take a machine-dependent time, so a test ends the load
    a little after its last fault (:meth:`finish`) instead of guessing a duration; the
    generator stops by itself at ``max_duration_s`` in any case. :attr:`produced` then holds
    exactly what the broker acknowledged (a prefix of the plan).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        rate: float = 800.0,
        max_duration_s: float = 30.0,
        n_accounts: int = 400,
        seed: int = 23,
        durable: bool = False,
    ) -> None:
        if not bootstrap.startswith("127.0.0.1:"):
            raise ValueError(f"load goes to the loopback broker only, not {bootstrap}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.rate = rate
        #: acks=all and idempotence: an acknowledged message survives a broker's death and
        #: a retry after one is not written twice (for a cluster whose brokers fail).
        self.durable = durable
        self.plan = build_plan(int(rate * max_duration_s), n_accounts, seed)
        self.produced = Produced()
        self.sent = 0  # handed to the producer so far (read by the test thread)
        self.error: BaseException | None = None
        self.started_s = 0.0
        self.finished_s = 0.0
        self._end_at = float("inf")  # monotonic time to stop at (set by finish())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    @property
    def running(self) -> bool:
        """Tell whether messages are still being offered."""
        return (
            self._thread.is_alive()
            and self.sent < len(self.plan)
            and time.monotonic() < self._end_at
        )

    @property
    def offered_rate(self) -> float:
        """Return the messages per second actually offered (after the run)."""
        if not self.started_s:
            return 0.0
        span = (self.finished_s or time.monotonic()) - self.started_s
        return self.sent / span if span > 0 else 0.0

    def start(self) -> LoadGenerator:
        """Start sending in the background."""
        self._thread.start()
        return self

    def finish(self, after_s: float) -> None:
        """Stop offering ``after_s`` seconds from now (the run's last fault is behind it)."""
        self._end_at = min(self._end_at, time.monotonic() + after_s)

    def stop(self) -> None:
        """Stop now (clean-up after a failed test)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def join(self, timeout_s: float = 300.0) -> Produced:
        """Wait until the load ended and was acknowledged; re-raise a producer failure."""
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("the load generator did not finish")
        if self.error is not None:
            raise RuntimeError("the load generator failed") from self.error
        return self.produced

    def _run(self) -> None:
        try:
            asyncio.run(self._send_all())
        except BaseException as exc:
            self.error = exc

    async def _send_all(self) -> None:
        if self.durable:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                linger_ms=5,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=120_000,
            )
        else:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, acks=1)
        await producer.start()
        plan = self.plan
        pending: list[asyncio.Future[Any]] = []
        acked = 0
        try:
            self.started_s = time.monotonic()
            while self.sent < len(plan) and not self._stop.is_set():
                if time.monotonic() >= self._end_at:
                    break
                due = min(len(plan), int((time.monotonic() - self.started_s) * self.rate) + 1)
                while self.sent < due:
                    record = plan[self.sent]
                    pending.append(await producer.send(self.topic, record.value, key=record.key))
                    self.sent += 1
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    acked += len(pending)
                    pending.clear()
                await asyncio.sleep(0.005)
            await asyncio.gather(*pending)
            acked += len(pending)
            self.finished_s = time.monotonic()
            self.produced.records = plan[:acked]
        finally:
            await producer.stop()


@dataclass(frozen=True, slots=True)
class Scored:
    """One record of ``transactions.scored`` as the watcher saw it."""

    tx_id: str
    scored_ts_ms: int
    replayed: bool
    partition: int


class ScoredWatcher:
    """Read a topic of scored records from the beginning, in a thread, until stopped."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 4) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.records: list[Scored] = []
        self.ids: set[str] = set()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scored-watcher", daemon=True)

    @property
    def distinct(self) -> int:
        """Return how many distinct tx ids were scored so far."""
        return len(self.ids)

    def first_after(self, wall_ms: float) -> Scored | None:
        """Return the first record scored (by the worker's clock) after ``wall_ms``."""
        with self._lock:
            later = [r for r in self.records if r.scored_ts_ms > wall_ms]
        return min(later, key=lambda r: r.scored_ts_ms) if later else None

    def wait_for(self, n: int, timeout_s: float, stalled_s: float | None = None) -> bool:
        """Wait until ``n`` distinct ids were scored; tell whether they were.

        With ``stalled_s``, give up early once nothing new was scored for that long.
        """
        deadline = time.monotonic() + timeout_s
        last, last_change = self.distinct, time.monotonic()
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError("the scored-topic watcher failed") from self.error
            now_seen = self.distinct
            if now_seen >= n:
                return True
            if now_seen != last:
                last, last_change = now_seen, time.monotonic()
            elif stalled_s is not None and time.monotonic() - last_change > stalled_s:
                break
            time.sleep(0.1)
        return self.distinct >= n

    def start(self) -> ScoredWatcher:
        """Start reading in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._read())
        except BaseException as exc:
            self.error = exc

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    for msg in msgs:
                        doc = orjson.loads(msg.value)
                        seen = Scored(
                            doc["tx_id"],
                            int(doc["scored_ts"]),
                            bool(doc["replayed"]),
                            msg.partition,
                        )
                        with self._lock:
                            self.records.append(seen)
                            self.ids.add(seen.tx_id)
        finally:
            await consumer.stop()


def replay_states(records: Iterable[Record], env: Mapping[str, str]) -> dict[str, AccountState]:
    """Return each account's state after one pass over ``records`` (offline, no broker).

    The same pure functions the stream applies: ``update_account`` through
    :class:`models.offline.replay.Replayer` (no labels are sent, so no counterparty risk), then the
    AML rules of the worker's settings on the account's AML state.
    """
    settings = load_settings(dict(env))
    engine = AmlRuntime.from_settings(settings).snapshot.engine
    replayer = Replayer(label_delay_ms=None)
    for record in records:
        if record.tx_id is None:
            continue
        tx = parse_transaction(record.value, settings.max_message_bytes)
        step = replayer.step(tx)
        _, step.state.aml = engine.evaluate(step.state.aml, tx, step.features, step.replayed)
    return replayer.accounts

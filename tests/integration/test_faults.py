"""Fault injection under a steady load: kills, a graceful stop, a worker joining and leaving.

Each scenario offers 800 tx/s over 400 accounts on 4 partitions with 1 % malformed messages
(tests/integration/load.py) and injects its faults while that load flows. Afterwards every
valid tx_id must be in the scored topic, every malformed message in the dead-letter topic,
and every account's state must equal one offline pass over what was produced. The figures
(transactions, faults, lost, double-counted, time to resume) are printed, never asserted on
time.
"""

from __future__ import annotations

import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from app.kafka.embedded_broker import free_port
from app.web.api import account_view
from models.features import AccountState
from tests.integration.kafka_io import consume, consume_for
from tests.integration.load import LoadGenerator, Produced, ScoredWatcher, replay_states
from tests.integration.tables import read_accounts
from tests.integration.worker import WorkerProcess

pytestmark = pytest.mark.integration

RATE = 800.0
PARTITIONS = [0, 1, 2, 3]
ACCOUNTS = 400
#: Distinct transactions a (re)started worker must score before the next fault hits it.
PROGRESS = 1000
#: Seconds of load a scenario may offer at most (the faults must all hit before it ends).
LOAD_MAX_S = 90.0
#: Seconds of load after the last replacement worker resumed.
TAIL_S = 5.0
#: How long the worker may take to score everything once the load has ended.
CATCH_UP_S = 240.0
#: ... but it has stalled when nothing new was scored for this long.
STALLED_S = 45.0

StartWorker = Callable[..., WorkerProcess]


@dataclass
class FaultRecord:
    """One injected fault and what the scored topic showed around it."""

    kind: str
    scored_before: int  # distinct tx ids in the scored topic at the signal
    sent_before: int  # messages the load had sent at the signal
    exit_code: int | None = None
    ready_s: float | None = None  # signal (or join) -> the new worker ready
    resume_s: float | None = None  # signal -> first record scored after the old one was gone


@dataclass
class Figures:
    """What a scenario reports: the issue's figures, printed after every scenario."""

    scenario: str
    transactions: int = 0
    malformed: int = 0
    accounts: int = 0
    offered_rate: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    lost: int = 0
    double_counted: int = 0
    replayed_records: int = 0

    def lines(self) -> list[str]:
        """Return the report, one fact a line."""
        out = [
            f"fault scenario {self.scenario}: {self.transactions} transactions + "
            f"{self.malformed} malformed over {self.accounts} accounts, offered at "
            f"{self.offered_rate:.0f} msg/s; {len(self.faults)} faults; lost {self.lost}; "
            f"double-counted {self.double_counted}; re-emitted as replayed "
            f"{self.replayed_records}",
        ]
        for f in self.faults:
            ready = f"{f.ready_s:.1f} s" if f.ready_s is not None else "-"
            resume = f"{f.resume_s:.1f} s" if f.resume_s is not None else "never"
            out.append(
                f"  {f.kind}: at {f.scored_before} scored / {f.sent_before} sent, "
                f"exit {f.exit_code}, new worker ready after {ready}, "
                f"scoring resumed after {resume}"
            )
        return out


@pytest.fixture
def figures(capsys: pytest.CaptureFixture[str]) -> Iterator[list[Figures]]:
    """Print each scenario's figures even when the test fails (and outside capture)."""
    collected: list[Figures] = []
    yield collected
    with capsys.disabled():
        for fig in collected:
            print("\n" + "\n".join(fig.lines()))


@dataclass
class Run:
    """A load run on one app: the load, the scored-topic watcher and the worker env."""

    broker: Any
    env: dict[str, str]
    load: LoadGenerator
    watcher: ScoredWatcher | None = None

    def begin(self) -> None:
        """Start watching the scored topic (the worker created it) and offering load."""
        self.watcher = ScoredWatcher(self.broker.bootstrap, self.env["VIGIL_TOPIC_SCORED"])
        self.watcher.start()
        self.load.start()

    def wait_progress(self, at_s: float, what: str) -> None:
        """Wait until ``at_s`` seconds of load were sent and the worker scored fresh records.

        Faults are spread over the run and each one hits a worker that has scored
        :data:`PROGRESS` records since it started, with load still flowing.
        """
        assert self.watcher is not None
        scored = self.watcher.distinct
        deadline = time.monotonic() + 120.0
        while self.load.sent < at_s * self.load.rate:
            if time.monotonic() > deadline or not self.load.running:
                pytest.fail(f"{what}: the load did not reach {at_s:.0f} s")
            time.sleep(0.1)
        if not self.watcher.wait_for(scored + PROGRESS, timeout_s=120.0):
            pytest.fail(f"{what}: the worker scored {self.watcher.distinct - scored} in 120 s")
        assert self.load.running, f"{what}: the load ended before the fault; raise LOAD_MAX_S"

    def end(self, fig: Figures) -> Produced:
        """End the load after the last fault; wait until the worker scored all it produced.

        The last replacement worker first scores fresh records under load (if it stalls,
        the checks after the run count what it lost); the load then goes on for
        :data:`TAIL_S` more seconds.
        """
        try:
            assert self.watcher is not None
            progress = self.watcher.distinct + PROGRESS
            self.watcher.wait_for(progress, timeout_s=CATCH_UP_S, stalled_s=STALLED_S)
            self.load.finish(TAIL_S)
            produced = self.load.join()
            wanted = {r.tx_id for r in produced.valid}
            self.watcher.wait_for(len(wanted), timeout_s=CATCH_UP_S, stalled_s=STALLED_S)
        finally:
            self.stop(fig)
        assert fig.accounts > ACCOUNTS
        for fault in fig.faults:  # each fault hit a worker that had scored some, not all
            assert fault.scored_before < fig.transactions, f"{fault.kind}: after the load"
        return produced

    def stop(self, fig: Figures) -> None:
        """Stop the load and the watcher (also after a failed step) and note the figures."""
        self.load.stop()
        if self.watcher is not None:
            self.watcher.stop()
        produced = self.load.produced
        fig.transactions = len(produced.valid) or self.load.sent
        fig.malformed = len(produced.malformed)
        fig.accounts = len(produced.ids_by_account())
        fig.offered_rate = self.load.offered_rate


def _fault_checked(run: Run, kind: str) -> FaultRecord:
    """Record that a fault hits now, with load flowing and the worker part way through."""
    assert run.watcher is not None
    fault = FaultRecord(kind, run.watcher.distinct, run.load.sent)
    assert run.load.running, f"{kind}: the load was not flowing"
    assert 0 < fault.scored_before < len(run.load.plan), f"{kind}: not mid-stream"
    return fault


def _signal(worker: WorkerProcess, sig: signal.Signals) -> int:
    """Send ``sig`` and wait for the process to be gone; return its exit code."""
    assert worker.proc is not None
    worker.proc.send_signal(sig)
    try:
        code = worker.proc.wait(timeout=60)
    except Exception:
        worker.proc.kill()
        raise
    worker.proc = None
    return code


def _resume_after(run: Run, fault: FaultRecord, signalled_s: float, gone_s: float) -> None:
    """Fill in when the first record after the old worker was gone was scored."""
    assert run.watcher is not None
    deadline = time.monotonic() + 60.0
    first = run.watcher.first_after(gone_s * 1000)
    while first is None and time.monotonic() < deadline:
        time.sleep(0.1)
        first = run.watcher.first_after(gone_s * 1000)
    if first is not None:
        fault.resume_s = first.scored_ts_ms / 1000 - signalled_s


def _check_outputs(
    run: Run, produced: Produced, fig: Figures, workers: list[WorkerProcess]
) -> None:
    """Every valid tx_id scored, every malformed message dead-lettered.

    When some are missing, the message says whether each worker still runs and how its log
    ends: a worker that exited and one that runs but stopped scoring read alike otherwise.
    """
    assert run.watcher is not None
    valid_ids = {r.tx_id for r in produced.valid if r.tx_id is not None}
    missing = valid_ids - run.watcher.ids
    fig.lost += len(missing)
    fig.replayed_records = sum(1 for r in run.watcher.records if r.replayed)
    bad = produced.malformed
    dead = consume(
        run.broker.bootstrap,
        run.env["VIGIL_TOPIC_DEADLETTER"],
        lambda recs: len({r.value for r in recs} & set(bad)) >= len(set(bad)),
        timeout_s=30.0,
    )
    not_dead = set(bad) - {r.value for r in dead}
    assert not missing, (
        f"{len(missing)} valid transactions never scored; by input partition: "
        f"{_by_partition(produced, missing)}; {_workers_now(workers)}"
    )
    assert not not_dead, f"{len(not_dead)} malformed messages not dead-lettered"


def _workers_now(workers: list[WorkerProcess]) -> str:
    """Say whether each worker still runs, with the last lines of its log."""
    out = []
    for w in workers:
        code = None if w.proc is None else w.proc.poll()
        state = "running" if w.proc is not None and code is None else f"exited ({code})"
        tail = [
            line
            for line in w.log().splitlines()
            if line.strip() and "not found in cluster metadata" not in line
        ][-15:]
        out.append(f"{w.log_path.name}: {state}; log ends:\n" + "\n".join(tail))
    return "\n".join(out)


def _by_partition(produced: Produced, tx_ids: set[str]) -> dict[int, str]:
    """Say, per input partition, which of its records ``tx_ids`` are (by position in it).

    A run of consecutive records (one dropped batch) reads differently from a scatter.
    """
    partitioner = DefaultPartitioner()
    positions: dict[int, list[tuple[int, str]]] = {}
    seen: dict[int, int] = {}
    for r in produced.valid:
        p = partitioner(r.key, PARTITIONS, PARTITIONS)
        seen[p] = seen.get(p, 0) + 1
        if r.tx_id in tx_ids:
            assert r.tx_id is not None
            positions.setdefault(p, []).append((seen[p] - 1, r.tx_id))
    out = {}
    for p, found in sorted(positions.items()):
        (first, first_id), (last, last_id) = found[0], found[-1]
        out[p] = (
            f"{len(found)} of the {last - first + 1} records #{first} ({first_id}) to "
            f"#{last} ({last_id}) of the {seen[p]} valid ones sent to it"
        )
    return out


def _compare_states(
    live: dict[str, Any],
    expected: dict[str, Any],
    fig: Figures,
    what: str,
    history: Callable[[str], str] | None = None,
) -> None:
    """Compare live account states (or views) with the offline replay, exactly.

    ``history`` tells how one account's state came about (shown for the first wrong one).
    """
    double = 0
    lost = 0
    for account, want in expected.items():
        got = live.get(account)
        n_got = _count(got)
        n_want = _count(want)
        double += max(0, n_got - n_want)
        lost += max(0, n_want - n_got)
    fig.double_counted += double
    fig.lost += lost
    wrong = sorted(a for a in expected if live.get(a) != expected[a])
    extra = sorted(set(live) - set(expected))
    assert not extra, f"{what}: accounts nobody sent to: {extra[:5]}"
    assert not wrong, (
        f"{what}: {len(wrong)} of {len(expected)} accounts differ from the offline replay "
        f"({double} transactions counted twice, {lost} missing), e.g. {wrong[0]}: "
        f"live {live.get(wrong[0])!r} != replay {expected[wrong[0]]!r}"
        + (f"\n{history(wrong[0])}" if history is not None and wrong else "")
    )


def _account_history(run: Run, account: str) -> str:
    """Return where ``account``'s transactions sit in the input and what its changelog holds.

    Input offsets next to the changelog's counts and input-offset marks show where a state
    fell behind (a mark past records never counted, or a write that never reached the log).
    """
    key = account.encode()
    changelog = f"{run.env['VIGIL_APP_ID']}-accounts-changelog"
    topic = run.env["VIGIL_TOPIC_TRANSACTIONS"]
    inputs = [m.offset for m in consume_for(run.broker.bootstrap, topic, 5.0) if m.key == key]
    writes = []
    for m in consume_for(run.broker.bootstrap, changelog, 5.0):
        if m.key == key and m.value is not None:
            state = AccountState.from_bytes(m.value)
            writes.append(f"{m.offset}:n={state.n},mark={list(state.offsets.values())}")
    return (
        f"{account}: input offsets {inputs}\n"
        f"{account}: changelog (offset:count,input mark) {writes}"
    )


def _effect(state: AccountState) -> dict[str, Any]:
    """Return what the transactions did to an account: every field but the input offsets.

    The offsets say where the stream read the transactions (its redelivery bookkeeping);
    an offline replay reads none. Everything else must be equal, floats bit for bit.
    """
    return {f.name: getattr(state, f.name) for f in fields(state) if f.name != "offsets"}


def _count(state: dict[str, Any] | None) -> int:
    if state is None:
        return 0
    return int(state["n"] if "n" in state else state["tx_count"])


def _api_views(worker: WorkerProcess, accounts: list[str]) -> dict[str, Any]:
    """Read each account through the worker's web view (routed to the owner)."""
    views: dict[str, Any] = {}
    for account in accounts:
        url = f"{worker.web_url}/api/accounts/{account}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                state = orjson.loads(resp.read())["state"]
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            state = None  # the worker knows nothing of this account
        views[account] = None if state is None else {k: state.get(k) for k in _VIEW_KEYS}
    return views


_VIEW_KEYS = ("tx_count", "first_ts", "last_ts", "mean_amount", "std_amount", "windows")


def _scored_by(worker: WorkerProcess) -> float:
    """Return the worker's own count of scored transactions (its /metrics page)."""
    with urllib.request.urlopen(f"{worker.web_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith('vigil_transactions_consumed_total{outcome="scored"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


KILL_PLANS: dict[str, list[tuple[str, signal.Signals, bool, float]]] = {
    # (what, signal, wipe the data dir before the restart, seconds of load before it)
    "kill-then-wiped-kill": [
        ("kill -9", signal.SIGKILL, False, 11.0),
        ("kill -9, wiped data dir", signal.SIGKILL, True, 27.0),
    ],
    "sigterm-then-kill": [
        ("SIGTERM", signal.SIGTERM, False, 11.0),
        ("kill -9", signal.SIGKILL, False, 27.0),
    ],
}


@pytest.mark.parametrize("plan", sorted(KILL_PLANS))
def test_restarts_under_load_lose_nothing_and_count_nothing_twice(
    plan: str,
    broker: Any,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    figures: list[Figures],
) -> None:
    """kill -9 (once onto a wiped disk) and SIGTERM, each followed by a restart, mid-stream."""
    fig = Figures(plan)
    figures.append(fig)
    env = worker_env
    data_dir = Path(env["VIGIL_DATA_DIR"])
    run = Run(
        broker,
        env,
        LoadGenerator(
            broker.bootstrap, env["VIGIL_TOPIC_TRANSACTIONS"], RATE, LOAD_MAX_S, ACCOUNTS
        ),
    )
    worker = start_worker(env, "worker-0")
    try:
        run.begin()
        for i, (kind, sig, wipe, at_s) in enumerate(KILL_PLANS[plan], start=1):
            run.wait_progress(at_s, kind)
            fault = _fault_checked(run, kind)
            fig.faults.append(fault)
            signalled = time.time()
            fault.exit_code = _signal(worker, sig)
            gone = time.time()
            if sig == signal.SIGKILL:
                assert fault.exit_code == -signal.SIGKILL, f"{kind}: the worker was not killed"
            else:
                assert fault.exit_code == 0, f"{kind}: the worker did not stop cleanly"
            if wipe:
                shutil.rmtree(data_dir)
            worker = start_worker(env, f"worker-{i}")
            fault.ready_s = time.time() - signalled
            _resume_after(run, fault, signalled, gone)
    except BaseException:
        run.stop(fig)
        raise
    produced = run.end(fig)
    _check_outputs(run, produced, fig, [worker])
    assert worker.stop() == 0
    live = {a: _effect(st) for a, st in read_accounts(data_dir).items()}
    expected = {a: _effect(st) for a, st in replay_states(produced.records, env).items()}
    _compare_states(live, expected, fig, plan, lambda a: _account_history(run, a))


def test_worker_joins_and_another_leaves_mid_stream(
    broker: Any,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    figures: list[Figures],
    tmp_path: Path,
) -> None:
    """A second worker joins the group under load, then the first one leaves it."""
    fig = Figures("join-then-leave")
    figures.append(fig)
    env = worker_env
    run = Run(
        broker,
        env,
        LoadGenerator(
            broker.bootstrap, env["VIGIL_TOPIC_TRANSACTIONS"], RATE, LOAD_MAX_S, ACCOUNTS
        ),
    )
    first = start_worker(env, "first")
    try:
        run.begin()
        assert run.watcher is not None
        run.wait_progress(9.0, "join")
        join = _fault_checked(run, "second worker joins")
        fig.faults.append(join)
        second_env = dict(
            env,
            VIGIL_DATA_DIR=str(tmp_path / "second-data"),
            VIGIL_WEB_PORT=str(free_port()),
        )
        joined = time.time()
        second = start_worker(second_env, "second")
        join.ready_s = time.time() - joined
        deadline = time.monotonic() + 90.0
        while _scored_by(second) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _scored_by(second) > 0, "the second worker never got a partition"
        join.resume_s = time.time() - joined  # polled: the joiner's first own scored record

        run.wait_progress(25.0, "leave")
        leave = _fault_checked(run, "first worker leaves (SIGTERM)")
        fig.faults.append(leave)
        signalled = time.time()
        leave.exit_code = _signal(first, signal.SIGTERM)
        gone = time.time()
        assert leave.exit_code == 0, "the first worker did not leave cleanly"
        _resume_after(run, leave, signalled, gone)
    except BaseException:
        run.stop(fig)
        raise
    produced = run.end(fig)
    _check_outputs(run, produced, fig, [second])
    expected = replay_states(produced.records, env)
    want = {a: _view(a, s) for a, s in expected.items()}
    live = _api_views(second, sorted(expected))
    _compare_states(live, want, fig, "join-then-leave (web view)")


def _view(account: str, state: AccountState) -> dict[str, Any]:
    view = account_view(account, state.to_bytes())
    assert view is not None
    return {k: view.get(k) for k in _VIEW_KEYS}

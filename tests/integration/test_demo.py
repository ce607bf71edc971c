"""``faust -A app demo``: nothing outlives it, and it moves to a fresh embedded broker.

The embedded broker (tansu 0.6.0) keeps every record in memory and lists them on every
fetch, so the demo rolls over to a new broker every ``--rollover`` minutes. Its processes
(broker, worker, simulator) die with the demo even when it is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kafka.embedded_broker import free_port

pytestmark = pytest.mark.integration

FAUST = str(Path(sys.executable).parent / "faust")
REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Return every live descendant of ``pid``."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def _role(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    if args and b"tansu" in args[0] and b"broker" in args:
        return "broker"
    for role in (b"worker", b"simulate"):
        if role in args:
            return role.decode()
    return ""


def _alive(pid: int) -> bool:
    """Tell whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(what: str, check: object, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def _roles(pid: int) -> dict[str, int]:
    return {r: p for p in _children(pid) if (r := _role(p))}


@pytest.fixture
def demo_env(trained_model: Path, tmp_path: Path) -> dict[str, str]:
    """Environment of a demo with its own data directory, web port and the test model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_DATA_DIR": str(tmp_path / "demo-data"),
            "VIGIL_MODEL_PATH": str(trained_model),
            "VIGIL_WEB_PORT": str(free_port()),
        }
    )
    return env


class Spawned:
    """Processes a test starts, and the pids of what they start, to kill after the test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pids: set[int] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            self.pids.update(_children(proc.pid))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for pid in self.pids:
            if _alive(pid):  # only where the test failed: it left this one behind
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    """Kill, after the test, whatever it started that still runs."""
    tracker = Spawned()
    yield tracker
    tracker.cleanup()


def test_broker_dies_with_the_process_that_started_it(tmp_path: Path, spawned: Spawned) -> None:
    parent = textwrap.dedent(
        """
        import sys, time
        from app.kafka.embedded_broker import EmbeddedBroker
        broker = EmbeddedBroker().start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = spawned.add(
        subprocess.Popen([sys.executable, "-c", parent], cwd=REPO, stdout=subprocess.PIPE)
    )
    assert proc.stdout is not None
    broker_pid = int(proc.stdout.readline())
    spawned.pids.add(broker_pid)
    assert _alive(broker_pid) and _role(broker_pid) == "broker"

    proc.kill()  # SIGKILL: no cleanup code of the parent runs
    proc.wait()

    _wait_for("the broker is gone", lambda: not _alive(broker_pid), timeout_s=30)


def test_demo_killed_with_sigkill_leaves_no_process_behind(
    demo_env: dict[str, str], tmp_path: Path, spawned: Spawned
) -> None:
    with open(tmp_path / "demo.out", "wb") as out:
        demo = subprocess.Popen(
            [FAUST, "-A", "app", "demo", "--rate", "20", "--rollover", "0"],
            cwd=REPO,
            env=demo_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    spawned.add(demo)
    _wait_for("broker, worker and simulator run", lambda: len(_roles(demo.pid)) == 3)
    roles = _roles(demo.pid)
    spawned.pids.update(roles.values())
    assert all(_alive(pid) for pid in roles.values())

    demo.kill()
    demo.wait()

    for role, pid in roles.items():
        _wait_for(f"the {role} is gone", lambda pid=pid: not _alive(pid), timeout_s=30)


def test_demo_rolls_over_to_a_fresh_broker_and_keeps_scoring(
    demo_env: dict[str, str], tmp_path: Path, spawned: Spawned
) -> None:
    from tests.integration.web_support import http

    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [FAUST, "-A", "app", "demo", "--rate", "20", "--rollover", "0.5"],
            cwd=REPO,
            env=demo_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    spawned.add(demo)
    _wait_for("broker, worker and simulator run", lambda: len(_roles(demo.pid)) == 3)
    first = _roles(demo.pid)
    spawned.pids.update(first.values())

    _wait_for("a rollover", lambda: b"rolled over to embedded broker 2" in log.read_bytes())
    _wait_for("a new broker, worker and simulator", lambda: len(_roles(demo.pid)) == 3)
    second = _roles(demo.pid)
    spawned.pids.update(second.values())
    assert set(second.values()).isdisjoint(first.values())
    assert not any(_alive(pid) for pid in first.values())  # the old generation is down

    metrics_url = f"http://127.0.0.1:{demo_env['VIGIL_WEB_PORT']}/metrics"

    def new_worker_scores() -> bool:
        try:
            text = http("GET", metrics_url).body.decode()
        except OSError:
            return False  # the new worker's web server is not up yet
        for line in text.splitlines():
            if line.startswith('vigil_transactions_consumed_total{outcome="scored"}'):
                return float(line.split()[-1]) > 0
        return False

    _wait_for("the new worker scores transactions", new_worker_scores)

    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=90) == 0
    assert not any(_alive(pid) for pid in second.values())

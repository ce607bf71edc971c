"""Run a real ``faust -A app worker`` process against a test broker (tansu or Apache Kafka)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Protocol

from app.kafka.embedded_broker import die_with_parent, free_port

READY_LINE = "[^Worker]: Ready"
FAUST = str(Path(sys.executable).parent / "faust")


def run_faust(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run ``faust -A app ARGS`` to its end; return its exit code and output (both streams).

    ``timeout_s`` guards the test run only: a command that hangs fails the test.
    """
    done = subprocess.run(
        [FAUST, "-A", "app", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stdout.decode(errors="replace")


class Broker(Protocol):
    """What the tests need of a broker: the embedded tansu one or a local Apache Kafka."""

    @property
    def bootstrap(self) -> str:
        """Return aiokafka's ``host:port[,host:port]``."""
        ...

    @property
    def url(self) -> str:
        """Return Faust's ``kafka://host:port[;host:port]``."""
        ...

    @property
    def flavor(self) -> str:
        """Return ``tansu`` or ``kafka`` (the worker's ``VIGIL_BROKER_FLAVOR``)."""
        ...


def isolated_env(broker: Broker, model_path: Path, data_dir: Path) -> dict[str, str]:
    """Return a worker environment with its own app id and topic names, for ``broker``."""
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_BROKER_URL": broker.url,
            "VIGIL_BROKER_FLAVOR": broker.flavor,
            "VIGIL_APP_ID": f"vigil-{tag}",
            "VIGIL_DATA_DIR": str(data_dir),
            "VIGIL_MODEL_PATH": str(model_path),
            "VIGIL_WEB_PORT": str(free_port()),
            "VIGIL_PARTITIONS": "4",
            "VIGIL_TOPIC_TRANSACTIONS": f"{tag}.transactions",
            "VIGIL_TOPIC_DEADLETTER": f"{tag}.transactions.deadletter",
            "VIGIL_TOPIC_REPARTITION": f"{tag}.transactions.by-account",
            "VIGIL_TOPIC_SCORED": f"{tag}.transactions.scored",
            "VIGIL_TOPIC_ALERTS_HIGH": f"{tag}.alerts.high",
            "VIGIL_TOPIC_ALERTS_MEDIUM": f"{tag}.alerts.medium",
            "VIGIL_TOPIC_ALERTS_LOW": f"{tag}.alerts.low",
            "VIGIL_TOPIC_LABELS": f"{tag}.labels",
            "VIGIL_TOPIC_BY_COUNTERPARTY": f"{tag}.transactions.by-counterparty",
        }
    )
    return env


class WorkerProcess:
    """A worker subprocess whose output goes to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.env = env
        self.log_path = log_path
        #: Working directory of the worker (a benchmark runs another checkout's code there).
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        #: Where this process's output starts in the log: a log file reused by a later
        #: worker (a benchmark's next round) already holds an earlier "Ready" line.
        self._log_start = 0

    def start(self, timeout_s: float = 90.0) -> WorkerProcess:
        """Start the worker and wait until Faust reports it ready."""
        faust = Path(sys.executable).parent / "faust"
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(faust), "-A", "app", "worker", "-l", "info"],
                # Unbuffered: the log of a worker killed with -9 keeps its last lines.
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                # A test run that is killed takes its workers with it (start from the main
                # thread: the kernel ties the child to the thread that started it).
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if READY_LINE in self.log():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker not ready within {timeout_s}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        """Return what this worker has written so far (not earlier runs in the same file)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop the worker like an operator would (SIGTERM), killing it if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    @property
    def web_url(self) -> str:
        """Return the base URL of the worker's web server."""
        return f"http://127.0.0.1:{self.env['VIGIL_WEB_PORT']}"

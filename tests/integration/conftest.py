"""Session fixtures: one embedded broker and one trained model for all integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded_broker import EmbeddedBroker
from tests.integration.worker import WorkerProcess, isolated_env


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Start one tansu broker on a free loopback port for the whole session."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a real (small) XGBoost artifact on simulated data."""
    from models.training import train_default

    path = tmp_path_factory.mktemp("model") / "vigil-test.json"
    train_default(path, seed=11, n_accounts=1500, days=14)
    return path


@pytest.fixture
def worker_env(broker: EmbeddedBroker, trained_model: Path, tmp_path: Path) -> dict[str, str]:
    """Return an isolated worker environment (own app id, topics and data dir)."""
    return isolated_env(broker, trained_model, tmp_path / "worker-data")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    """Start workers on demand; every one still running is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"{name}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()

"""Fail fast: wrong files, an unreachable broker and a crashed agent stop the process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from mode import Service

import app.kafka.failfast as failfast
from app.kafka.failfast import ExitOnCrash, one_line, reach_broker, run_start_checks
from models.aml.rulebook import RulebookError
from models.artifact import ArtifactError


class StoppedError(Exception):
    """Raised instead of ``os._exit`` so the test can see the line and the code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@pytest.fixture
def stops(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def stop(message: str, code: int) -> None:
        raise StoppedError(message, code)

    monkeypatch.setattr(failfast, "stop_process", stop)
    yield


def test_a_wrong_file_at_start_is_one_line_and_exit_78(stops: None) -> None:
    def no_model() -> None:
        raise ArtifactError("model artifact /m.json not found (run `faust -A app train`)")

    with pytest.raises(StoppedError) as info:
        run_start_checks([lambda: None, no_model])
    assert info.value.code == 78
    assert info.value.message == (
        "cannot start: model artifact /m.json not found (run `faust -A app train`)"
    )

    def bad_rules() -> None:
        raise RulebookError("/r.toml: empty file (no keys or tables)")

    with pytest.raises(StoppedError, match=r"cannot start: /r\.toml: empty file"):
        run_start_checks([bad_rules])


def test_a_bug_in_a_start_check_is_not_disguised_as_a_user_error(stops: None) -> None:
    def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_start_checks([bug])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_broker_stops_with_the_url_and_exit_69(stops: None) -> None:
    port = _free_port()  # nothing listens there any more
    with pytest.raises(StoppedError) as info:
        await reach_broker(f"kafka://127.0.0.1:{port}", f"127.0.0.1:{port}", 0.5)
    assert info.value.code == 69
    assert f"kafka://127.0.0.1:{port} within 0.5 s" in info.value.message
    assert "VIGIL_BROKER_URL" in info.value.message and "\n" not in info.value.message


async def test_a_silent_broker_stops_after_the_timeout(stops: None) -> None:
    """A port that accepts connections but never answers (not Kafka, or hung)."""
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(StoppedError) as info:
            await reach_broker(f"kafka://127.0.0.1:{port}", f"127.0.0.1:{port}", 0.5)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted, "the probe never connected: the fault was not injected"
    assert info.value.code == 69 and f"127.0.0.1:{port}" in info.value.message


class _Agentish(Service):
    """A service standing in for an agent's actor."""

    async def on_start(self) -> None:
        self.starts = getattr(self, "starts", 0) + 1


async def test_a_crashed_agent_stops_the_process_with_exit_70(stops: None) -> None:
    actor = _Agentish()
    supervisor = ExitOnCrash(actor)
    await actor.start()
    actor._crash(RuntimeError("model artifact gone"))
    with pytest.raises(StoppedError) as info:
        await supervisor.restart_services([actor])
    assert info.value.code == 70
    assert "crashed (RuntimeError: model artifact gone)" in info.value.message
    await actor.stop()


async def test_a_cancelled_actor_is_restarted_as_faust_does_on_rebalance(stops: None) -> None:
    actor = _Agentish()
    supervisor = ExitOnCrash(actor)
    await actor.start()
    actor._crash(asyncio.CancelledError())
    await supervisor.restart_services([actor])  # no StoppedError raised
    assert actor.starts == 2
    await actor.stop()


def test_one_line_keeps_the_first_line_only() -> None:
    assert one_line(ValueError("a\nb")) == "a"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(ValueError("x" * 2000))) == 500

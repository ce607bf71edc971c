"""Stop a worker that cannot do its job, at once and with one line that says what to do.

A worker that stays up without a model, a broker or a live agent consumes nothing while
looking healthy to its supervisor. Instead, before it connects, a worker loads what it will
serve (model, rules, lists) and reaches its broker within ``VIGIL_BROKER_CONNECT_TIMEOUT_S``;
later, a crashed agent stops the process. Exit codes follow sysexits: 78 configuration
(settings, files), 69 broker unavailable, 70 an agent crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from faust.cli import AppCommand
from mode import ServiceT
from mode.supervisors import OneForOneSupervisor

from app.kafka.security import PLAINTEXT, KafkaSecurity, diagnose_connection

log = logging.getLogger("vigil.failfast")

EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def stop_process(message: str, code: int) -> NoReturn:
    """Log ``message`` as one CRITICAL line and end the process with ``code`` right away.

    ``os._exit``: no graceful shutdown that could commit offsets or hang on a dead broker.
    """
    log.critical(message)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


def print_and_exit(message: str, code: int) -> NoReturn:
    """Print ``vigil: <message>`` on stderr and exit (before logging is set up: import time)."""
    print(f"vigil: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def user_errors() -> tuple[type[BaseException], ...]:
    """Return the exception classes that mean "a file or setting is wrong", not a bug."""
    from models.aml.rulebook import RulebookError
    from models.artifact import ArtifactError

    return (ArtifactError, RulebookError)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """Return the first line of an error's message (its class name if it has none), cut."""
    text = str(exc).strip().partition("\n")[0] or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VigilCommand(AppCommand):  # type: ignore[misc]
    """Base of Vigil's CLI commands: a user error is one line on stderr and exit 1.

    User errors are wrong input, not bugs: a bad file or option (``ValueError`` and the
    project's errors derived from it), a path that cannot be read or written (``OSError``),
    a broker that cannot be reached. ``faust --debug`` shows the traceback instead.
    """

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command; turn a user error into one line and a non-zero exit."""
        from aiokafka.errors import KafkaError

        try:
            return await super().execute(*args, **kwargs)
        except (ValueError, OSError, KafkaError) as exc:
            if self.debug:
                raise
            name = type(self).__name__
            if isinstance(exc, KafkaError):
                app: Any = self.app  # the VigilApp (faust types it as AppT)
                url = app.settings.broker_url
                print_and_exit(
                    f"{name}: cannot use the Kafka broker at {url} ({one_line(exc)}); "
                    "start it or set VIGIL_BROKER_URL",
                    1,
                )
            print_and_exit(f"{name}: {one_line(exc)}", 1)


def run_start_checks(checks: Iterable[Callable[[], object]]) -> None:
    """Run a worker's start-up checks; a wrong file stops it with one line (exit 78)."""
    refused = user_errors()
    for check in checks:
        try:
            check()
        except refused as exc:
            stop_process(f"cannot start: {exc}", EX_CONFIG)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hold back a library's per-attempt ERROR lines while we retry (we report once)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def reach_broker(
    broker_url: str, bootstrap: str, timeout_s: float, security: KafkaSecurity = PLAINTEXT
) -> None:
    """Fetch cluster metadata from a broker, retrying for up to ``timeout_s``.

    Unreachable after that: stop with one line naming the URL (exit 69). Faust alone would
    die with a traceback on a refused connection, or wait far longer on a silent host. A
    problem that retrying cannot fix (refused login, untrusted certificate, plain text to a
    TLS port) stops the worker at once with a line naming it (exit 78).
    """
    deadline = time.monotonic() + timeout_s
    problem = "no answer"
    with _quiet("aiokafka"):
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            found = await diagnose_connection(bootstrap, security, remaining)
            if found is None:
                return
            if found.final:
                stop_process(f"cannot use the Kafka broker: {found.message}", EX_CONFIG)
            problem = found.message
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    stop_process(
        f"cannot reach the Kafka broker at {broker_url} within {timeout_s:g} s ({problem}); "
        "start the broker or fix VIGIL_BROKER_URL (VIGIL_BROKER_CONNECT_TIMEOUT_S sets the wait)",
        EX_UNAVAILABLE,
    )


def _describe(service: ServiceT) -> str:
    agent = getattr(service, "agent", None)
    name = getattr(agent, "name", None) or getattr(service, "shortlabel", None)
    return str(name or service)


class ExitOnCrash(OneForOneSupervisor):
    """Agents' supervisor: a crashed agent stops the worker (exit 70) rather than idling.

    Faust's default restarts the actor, which for Vigil's batch agents leaves a process
    that is up but consumes nothing (its start-up failed, or its batch stream is gone).
    A supervisor (systemd, Kubernetes, compose) restarts the process from the last commit.
    A cancellation (Faust restarting an actor on rebalance) is restarted as before.
    """

    async def restart_services(self, services: list[ServiceT]) -> None:
        """Stop the process if one of ``services`` crashed with an exception."""
        crashed: list[tuple[ServiceT, Any]] = [
            (s, s.crash_reason)
            for s in services
            if s.crash_reason is not None and not isinstance(s.crash_reason, asyncio.CancelledError)
        ]
        if crashed:
            service, reason = crashed[0]
            stop_process(
                f"agent {_describe(service)} crashed ({type(reason).__name__}: {reason}); "
                "stopping the worker so that its supervisor restarts it",
                EX_SOFTWARE,
            )
        await super().restart_services(services)

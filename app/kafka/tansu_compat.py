"""Workarounds for the embedded tansu 0.6.0 broker, and only for it.

Everything here runs only when ``VIGIL_BROKER_FLAVOR=tansu`` (set by the demo and the test
fixtures): each caller asks the app's :class:`Workarounds` first. Apache Kafka deployments never
take these paths (tests/integration/test_broker_flavor.py asks a running worker).

Quirks handled:

* ListOffsets LATEST answers the *base offset of the last record batch* + 1, not the log end
  (batches of 5, 7 and 10 records: 13 instead of 22), while the Fetch high watermark is right.
  A table's persisted offset is the last offset of its last acknowledged changelog batch
  (base + count - 1), so recovery saw it above the uncorrected "highwater" (listed - 1) by
  exactly count - 1 records of the last batch (the issue's 1716 > 1715 and 515 > 509) and
  raised ConsistencyError, or stopped early with stale state. The end offsets Faust asks for
  are corrected with the high watermark of a real fetch, for every partition: the probe
  waits until each one has answered, and raises :class:`EndOffsetsUnavailableError` rather than
  return an under-reported end (it used to give up after 2 s and keep the listed value).
* Every partition in every Fetch costs tansu about 50-90 us even when it has nothing new
  (no fetch sessions; each partition's offsets are looked up several times), and a fetch
  always takes its full ``max_wait``. A worker polls ~25 partitions every
  ``VIGIL_FETCH_MAX_WAIT_MS``, most of them idle (labels, the global table's changelog,
  re-key topics), which alone kept ~12 % of a core busy in the broker, the broker that the
  worker's latency waits on. :func:`fetch_quiet_partitions_less_often` leaves a partition
  that has been idle out of most fetches.

Quirks avoided by configuration rather than code (see README):

* a group join is held for half the session timeout: short session timeout by default;
* InitProducerId v0 is refused: no idempotent producer, no ``exactly_once``;
* a Fetch with ``max_wait`` 0 comes back empty: ``VIGIL_FETCH_MAX_WAIT_MS`` >= 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from app.internals import aiokafka_client

log = logging.getLogger(__name__)

#: The workarounds a worker can take, by the name it logs when it first uses one.
QUIET_FETCHES = "idle partitions fetched less often"
END_OFFSETS = "end offsets raised to the fetch high watermark"
FEED_END_OFFSETS = "web feed end offsets raised to the fetch high watermark"
LAG_FROM_FETCH = "consumer lag from the last fetch's high watermark"
WORKAROUNDS = (QUIET_FETCHES, END_OFFSETS, FEED_END_OFFSETS, LAG_FROM_FETCH)


class Workarounds:
    """The one switch of a process's tansu workarounds: on only for ``VIGIL_BROKER_FLAVOR=tansu``.

    Every place that works around a quirk asks :meth:`use` first, so none is taken on Apache
    Kafka, and the log tells which ones a worker took (``tansu workaround on: <name>``, once).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        #: The workarounds taken so far.
        self.used: set[str] = set()

    def use(self, name: str) -> bool:
        """Tell whether to work around quirk ``name`` (one of :data:`WORKAROUNDS`)."""
        if name not in WORKAROUNDS:
            raise ValueError(f"unknown tansu workaround {name!r}")
        if not self.enabled:
            return False
        if name not in self.used:
            self.used.add(name)
            log.info("tansu workaround on: %s", name)
        return True


def _new_probe(bootstrap: Any) -> Any:
    import aiokafka

    return aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=1,
    )


#: How long a probe may wait for every partition's high watermark (a table recovery waits on
#: it; a busy broker answers slowly, but an under-reported end is never returned instead).
PROBE_TIMEOUT_S = 60.0
#: Wait of one poll of the probe (the fetch it starts carries on across polls).
PROBE_POLL_MS = 100


class EndOffsetsUnavailableError(RuntimeError):
    """The embedded broker did not report some partitions' high watermark in time."""


async def _poll_marks(
    probe: Any,
    tps: list[Any],
    ktps: list[Any],
    timeout_s: float | None = None,
    complete: bool = True,
) -> dict[Any, int]:
    """Poll ``probe`` until every partition has reported its high watermark.

    ``timeout_s`` None gives :data:`PROBE_TIMEOUT_S`. A partition still silent then raises
    :class:`EndOffsetsUnavailableError`, unless ``complete`` is False (a rate sample may miss one).
    """
    limit_s = PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + limit_s
    marks: dict[Any, int] = {}
    while True:
        await probe.getmany(*ktps, timeout_ms=PROBE_POLL_MS)
        for tp, ktp in zip(tps, ktps, strict=True):
            hw = probe.highwater(ktp)
            if hw is not None:
                marks[tp] = int(hw)
        if len(marks) == len(tps):
            return marks
        if time.monotonic() >= deadline:
            if not complete:
                return marks
            missing = sorted(str(tp) for tp in tps if tp not in marks)
            raise EndOffsetsUnavailableError(
                f"no high watermark from the embedded broker within {limit_s:.0f}s for {missing}"
            )


def _seek_below_listed(
    probe: Any, tps: list[Any], ktps: list[Any], offsets: Mapping[Any, int]
) -> None:
    """Seek each partition to its last listed batch: the fetch is one batch, not the log."""
    for tp, ktp in zip(tps, ktps, strict=True):
        probe.seek(ktp, max(0, (offsets[tp] or 0) - 1))


async def fetch_high_watermarks(
    client_consumer: Any, offsets: Mapping[Any, int], timeout_s: float | None = None
) -> dict[Any, int]:
    """Return each partition's high watermark as reported by a real Fetch response.

    ``offsets`` are the listed (under-reported) ends; the fetch starts just below them.
    """
    import aiokafka

    tps = list(offsets)
    probe = _new_probe(aiokafka_client.bootstrap_servers_of(client_consumer))
    try:
        await probe.start()
        ktps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        probe.assign(ktps)
        _seek_below_listed(probe, tps, ktps, offsets)
        return await _poll_marks(probe, tps, ktps, timeout_s)
    finally:
        # Shielded: a worker shutting down cancels its callers, and a half-stopped probe
        # would leak its connections ("Unclosed AIOKafkaConsumer").
        await asyncio.shield(probe.stop())


def _raise_to(offsets: Mapping[Any, int], marks: Mapping[Any, int]) -> dict[Any, int]:
    corrected = dict(offsets)
    for tp, hw in marks.items():
        end = offsets[tp]
        if end is None or hw > end:
            log.debug("tansu end offset corrected", extra={"tp": str(tp), "listed": end, "hw": hw})
            corrected[tp] = hw
    return corrected


async def corrected_end_offsets(client_consumer: Any, offsets: Mapping[Any, int]) -> dict[Any, int]:
    """Return ``offsets`` raised to the fetch high watermark where tansu under-reports."""
    tps = list(offsets)
    if not tps:
        return dict(offsets)
    return _raise_to(offsets, await fetch_high_watermarks(client_consumer, offsets))


#: How long a rate sample (:class:`HighWatermarkProbe`) waits; what is missing then keeps
#: its listed end (a sample, not a recovery: never worth stalling the web feed for).
SAMPLE_TIMEOUT_S = 2.0


class HighWatermarkProbe:
    """:func:`corrected_end_offsets` for callers that ask every few seconds.

    A probe consumer per call (bootstrap, metadata of every topic, new connections) is fine
    for a table recovery, but the web view samples the scored topic's end every 5 s, and
    starting a consumer each time paused the worker's event loop in the middle of scoring.
    This keeps one probe, and fetches from just below the listed end.
    """

    def __init__(self, bootstrap: Any) -> None:
        self._bootstrap = bootstrap
        self._probe: Any = None

    async def corrected(self, offsets: Mapping[Any, int]) -> dict[Any, int]:
        """Return ``offsets`` raised to the fetch high watermark where tansu under-reports."""
        import aiokafka

        tps = list(offsets)
        if not tps:
            return dict(offsets)
        if self._probe is None:
            probe = _new_probe(self._bootstrap)
            await probe.start()
            self._probe = probe
        probe = self._probe
        ktps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        if set(ktps) != probe.assignment():
            probe.assign(ktps)
        probe.resume(*ktps)
        _seek_below_listed(probe, tps, ktps, offsets)
        try:
            marks = await _poll_marks(probe, tps, ktps, SAMPLE_TIMEOUT_S, complete=False)
            return _raise_to(offsets, marks)
        finally:
            # Between calls the probe must not fetch: an assigned consumer prefetches for
            # ever, here a record at a time through the whole topic.
            probe.pause(*ktps)

    async def close(self) -> None:
        """Stop the probe consumer (shielded, as in :func:`fetch_high_watermarks`)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            await asyncio.shield(probe.stop())


#: A partition whose position has not moved for this long counts as quiet.
QUIET_AFTER_S = 1.0
#: Quiet partitions are fetched this often (a record arriving there waits up to this long).
QUIET_FETCH_EVERY_S = 0.2


class _AssignmentView:
    """An aiokafka assignment that lists only some of its partitions."""

    def __init__(self, assignment: Any, tps: list[Any]) -> None:
        self._assignment = assignment
        self.tps = tps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._assignment, name)


class QuietPartitions:
    """Decide which partitions of an assignment the next fetch leaves out.

    A partition of ``always`` (the scoring inputs) is in every fetch. Any other partition is
    left out while it is quiet (its position has not moved for ``quiet_after_s``), except in
    one fetch every ``fetch_every_s``. Activity (records consumed, a seek, a new assignment)
    makes it active again at once.
    """

    def __init__(
        self,
        always: Collection[str],
        quiet_after_s: float = QUIET_AFTER_S,
        fetch_every_s: float = QUIET_FETCH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.always = frozenset(always)
        self.quiet_after_s = quiet_after_s
        self.fetch_every_s = fetch_every_s
        self.clock = clock
        self._seen: dict[Any, tuple[int | None, float]] = {}
        self._last_full = float("-inf")

    def select(self, tps: Collection[Any], position: Callable[[Any], int | None]) -> list[Any]:
        """Return the partitions of ``tps`` the next fetch should include."""
        now = self.clock()
        full = now - self._last_full >= self.fetch_every_s
        if full:
            self._last_full = now
        chosen = []
        seen = self._seen
        for tp in tps:
            pos = position(tp)
            last = seen.get(tp)
            if last is None or last[0] != pos:
                seen[tp] = last = (pos, now)
            if full or tp.topic in self.always or now - last[1] < self.quiet_after_s:
                chosen.append(tp)
        if len(seen) > 4 * max(1, len(tps)):  # partitions revoked long ago
            current = set(tps)
            self._seen = {tp: v for tp, v in seen.items() if tp in current}
        return chosen


def fetch_quiet_partitions_less_often(consumer: Any, always: Collection[str]) -> QuietPartitions:
    """Make a started aiokafka consumer's fetcher skip quiet partitions (embedded broker only).

    The fetcher's own planning (:func:`app.internals.aiokafka_client.wrap_fetch_planning`)
    runs on a view of the assignment without the partitions :class:`QuietPartitions` leaves
    out; fetch responses are still applied to the real assignment.
    """
    quiet = QuietPartitions(always)

    def position(assignment: Any) -> Callable[[Any], int | None]:
        def of(tp: Any) -> int | None:
            state = assignment.state_value(tp)
            return state.position if state is not None and state.has_valid_position else None

        return of

    def narrowed(plan: aiokafka_client.Plan) -> aiokafka_client.Plan:
        def planned(assignment: Any) -> Any:
            tps = list(assignment.tps)
            chosen = quiet.select(tps, position(assignment))
            if len(chosen) == len(tps):
                return plan(assignment)
            return plan(_AssignmentView(assignment, chosen))

        return planned

    aiokafka_client.wrap_fetch_planning(consumer, narrowed)
    return quiet

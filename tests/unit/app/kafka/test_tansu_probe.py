"""The end-offset probe of the embedded-broker workaround waits for every partition."""

from __future__ import annotations

from typing import Any

import pytest

from app.kafka.tansu_compat import EndOffsetsUnavailableError, _poll_marks


class SlowProbe:
    """A consumer whose partitions report their high watermark after some polls each."""

    def __init__(self, answers_after: dict[str, int], marks: dict[str, int]) -> None:
        self.answers_after = answers_after
        self.marks = marks
        self.polls = 0

    async def getmany(self, *tps: str, timeout_ms: int) -> dict[str, list[Any]]:
        self.polls += 1
        return {}

    def highwater(self, tp: str) -> int | None:
        return self.marks[tp] if self.polls >= self.answers_after[tp] else None


async def test_a_slow_partition_is_waited_for_past_the_old_twenty_polls() -> None:
    # A busy broker: partition "b" answers at the 45th poll. The old probe gave up after 20
    # and kept tansu's listed end (the base offset of the last batch + 1) for it.
    probe = SlowProbe({"a": 1, "b": 45}, {"a": 10, "b": 22})
    marks = await _poll_marks(probe, ["a", "b"], ["a", "b"], timeout_s=3600)
    assert marks == {"a": 10, "b": 22}
    assert probe.polls == 45


async def test_a_partition_that_never_answers_fails_loudly_instead_of_under_reporting() -> None:
    probe = SlowProbe({"a": 1, "b": 10**9}, {"a": 10, "b": 22})
    with pytest.raises(EndOffsetsUnavailableError, match="'b'"):
        await _poll_marks(probe, ["a", "b"], ["a", "b"], timeout_s=0)


async def test_a_rate_sample_returns_what_answered() -> None:
    probe = SlowProbe({"a": 1, "b": 10**9}, {"a": 10, "b": 22})
    marks = await _poll_marks(probe, ["a", "b"], ["a", "b"], timeout_s=0, complete=False)
    assert marks == {"a": 10}

"""The web view's in-memory alert feed: bounded, de-duplicated, filtered, pushed, measured."""

from __future__ import annotations

import orjson
import pytest

from app.settings import bootstrap_servers
from app.web.feed import (
    BEHIND_AFTER_S,
    CLOSED,
    STALLED_AFTER_S,
    AlertFeed,
    RateWindow,
    parse_alert,
    percentile,
    summary,
    worker_status,
)


def _alert(i: int, tier: str = "HIGH", account: str = "a1", **extra: object) -> dict[str, object]:
    return {
        "alert_id": f"t{i}",
        "tx_id": f"t{i}",
        "account_id": account,
        "tier": tier,
        "score": 0.9,
        "reasons": [{"feature": "amount", "value": 1.0, "contribution": 0.5}],
        "rules": [],
        "transaction": {"amount": 12.5, "counterparty_id": "m1"},
        "event_ts": 1000 * i,
        "scored_ts": 1000 * i + 40,
        **extra,
    }


def test_parse_alert_accepts_alerts_and_refuses_the_rest() -> None:
    doc = parse_alert(orjson.dumps(_alert(1)))
    assert doc is not None and doc["alert_id"] == "t1"
    no_alert_id = {k: v for k, v in _alert(2).items() if k != "alert_id"}
    assert parse_alert(orjson.dumps(no_alert_id))["alert_id"] == "t2"  # type: ignore[index]
    for raw in (None, b"", b"not json", b"[1]", orjson.dumps(_alert(3, tier="MINIMAL"))):
        assert parse_alert(raw) is None
    assert parse_alert(orjson.dumps({**_alert(4), "alert_id": 7, "tx_id": 7})) is None


def test_feed_is_bounded_and_newest_first() -> None:
    feed = AlertFeed(capacity=3)
    for i in range(5):
        assert feed.add(_alert(i), now=0.0)
    assert len(feed) == 3
    assert [a["alert_id"] for a in feed.recent(10)] == ["t4", "t3", "t2"]
    assert feed.get("t0") is None and feed.get("t4") is not None
    assert feed.tier_totals["HIGH"] == 5


def test_redelivery_replaces_without_counting_twice() -> None:
    feed = AlertFeed(capacity=10)
    feed.add(_alert(1), now=0.0)
    feed.add(_alert(2), now=0.0)
    assert not feed.add(_alert(1, score=0.95), now=0.0)
    assert feed.tier_totals["HIGH"] == 2
    assert [a["alert_id"] for a in feed.recent(10)] == ["t1", "t2"]
    assert feed.get("t1")["score"] == 0.95  # type: ignore[index]


async def test_an_escalated_alert_is_pushed_and_moves_its_tier_count() -> None:
    feed = AlertFeed(capacity=10)
    queue = feed.subscribe()
    feed.add(_alert(1, tier="LOW"), 0.0)
    fan_in = [{"rule_id": "fan_in_mule", "tier": "HIGH", "explanation": "5 distinct senders"}]
    assert not feed.add(_alert(1, tier="HIGH", rules=fan_in), 0.0)  # same alert_id
    assert feed.tier_totals["LOW"] == 0 and feed.tier_totals["HIGH"] == 1
    first, second = queue.get_nowait(), queue.get_nowait()
    assert first["data"]["tier"] == "LOW" and second["data"]["tier"] == "HIGH"
    assert feed.get("t1")["rules"] == fan_in  # type: ignore[index]


def test_recent_filters_by_tier_and_account_and_limits() -> None:
    feed = AlertFeed(capacity=10)
    feed.add(_alert(1, "HIGH", "a"), 0.0)
    feed.add(_alert(2, "LOW", "b"), 0.0)
    feed.add(_alert(3, "LOW", "a"), 0.0)
    assert [a["alert_id"] for a in feed.recent(10, tier="LOW")] == ["t3", "t2"]
    assert [a["alert_id"] for a in feed.recent(10, account_id="a")] == ["t3", "t1"]
    assert [a["alert_id"] for a in feed.recent(1)] == ["t3"]
    assert feed.recent(10, tier="MEDIUM") == []


async def test_subscribers_get_new_alerts_then_closed() -> None:
    feed = AlertFeed(capacity=10)
    queue = feed.subscribe()
    feed.add(_alert(1), 0.0)
    feed.add(_alert(1), 0.0)  # redelivery: not pushed again
    event = queue.get_nowait()
    assert event == {"event": "alert", "data": summary(_alert(1))}
    assert queue.empty()
    feed.close()
    assert queue.get_nowait() is CLOSED
    assert feed.subscriber_count == 0
    assert feed.subscribe().get_nowait() is CLOSED  # after close, at once


async def test_a_slow_subscriber_is_dropped_not_buffered() -> None:
    feed = AlertFeed(capacity=100, queue_size=3)
    slow = feed.subscribe()
    for i in range(10):
        feed.add(_alert(i), 0.0)
    assert feed.subscriber_count == 0
    got = [slow.get_nowait() for _ in range(slow.qsize())]
    assert len(got) == 4 and got[-1] is CLOSED


def test_summary_keeps_what_the_list_shows() -> None:
    s = summary(_alert(1))
    assert s["amount"] == 12.5 and s["counterparty_id"] == "m1"
    assert s["top_reason"] == {"feature": "amount", "value": 1.0, "contribution": 0.5}
    bare = summary({"alert_id": "x", "tier": "LOW", "transaction": "junk", "reasons": None})
    assert bare["amount"] is None and bare["top_reason"] is None and bare["rule_count"] == 0


def test_stats_cover_the_last_minute_only() -> None:
    feed = AlertFeed(capacity=10)
    feed.add(_alert(1, scored_ts=1100, event_ts=1000), now=0.0)
    feed.add(_alert(2, "LOW", scored_ts=2300, event_ts=2000), now=30.0)
    feed.add(_alert(3, "LOW"), now=30.0, live=False)  # start-up backlog
    stats = feed.stats(now=50.0)
    assert stats["tiers"] == {"HIGH": 1, "MEDIUM": 0, "LOW": 2}
    assert stats["alerts_last_minute"] == 2
    assert stats["latency_ms_p50"] == 100.0 and stats["latency_ms_p95"] == 300.0
    later = feed.stats(now=70.0)
    assert later["alerts_last_minute"] == 1 and later["latency_ms_p50"] == 300.0
    assert feed.stats(now=200.0)["latency_ms_p50"] is None


def test_rate_window() -> None:
    rate = RateWindow(window_s=60.0)
    assert rate.rate() is None
    rate.add(0.0, 1000)
    assert rate.rate() is None
    rate.add(10.0, 1500)
    assert rate.rate() == 50.0
    for t in range(20, 130, 10):
        rate.add(float(t), 1500 + 100 * (t - 10))
    assert rate.rate() == pytest.approx(100.0)  # the early, slower samples have aged out
    rate.add(130.0, 10)  # offsets went back (topic recreated): start over
    assert rate.rate() is None


def test_percentile_and_capacity() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    with pytest.raises(ValueError):
        AlertFeed(capacity=0)


def test_bootstrap_servers_strip_the_scheme() -> None:
    assert bootstrap_servers("kafka://127.0.0.1:9092") == "127.0.0.1:9092"
    assert bootstrap_servers("kafka://h1:1;kafka://h2:2") == "h1:1,h2:2"
    assert bootstrap_servers("kafka://h1:1; h2:2") == "h1:1,h2:2"


def test_status_is_live_while_the_workers_keep_up_or_have_nothing_to_do() -> None:
    assert worker_status(True, 0, 200.0, 0.0)["state"] == "live"
    assert worker_status(True, 150, 200.0, 1.0)["state"] == "live"  # under a second of work
    assert worker_status(True, 0, 0.0, 3600.0)["state"] == "live"  # idle: nothing waits
    assert worker_status(True, None, None, None)["state"] == "live"  # lag not read yet
    assert worker_status(False, 0, 200.0, 0.0)["state"] == "starting"


def test_status_says_behind_with_the_backlog_and_its_time_at_the_current_rate() -> None:
    status = worker_status(True, 4000, 200.0, 1.0)  # 20 s of work queued
    assert status["state"] == "behind" and status["lag"] == 4000
    assert "4,000" in status["text"] and "20 s" in status["text"]
    just_under = int(BEHIND_AFTER_S * 200.0) - 1
    assert worker_status(True, just_under, 200.0, 1.0)["state"] == "live"
    assert worker_status(True, 10, None, 1.0)["state"] == "behind"  # waiting, no rate known


def test_status_says_stalled_when_transactions_wait_and_nothing_is_scored() -> None:
    status = worker_status(True, 37, 0.0, STALLED_AFTER_S + 5)
    assert status["state"] == "stalled" and "37 waiting" in status["text"]
    assert worker_status(True, 37, 0.0, STALLED_AFTER_S - 1)["state"] == "behind"


def test_feed_status_follows_its_samples_of_scored_end_and_lag() -> None:
    feed = AlertFeed(capacity=10)
    feed.live = True
    feed.sample(0.0, 1000, 0)
    feed.sample(5.0, 2000, 0)  # 200 tx/s scored, nothing waiting
    assert feed.stats(5.0)["status"]["state"] == "live"
    feed.sample(10.0, 2000, 50_000)  # the end stopped moving while input piles up
    assert feed.stats(10.0)["status"]["state"] == "behind"
    feed.sample(40.0, 2000, 56_000)
    stats = feed.stats(40.0)
    assert stats["status"]["state"] == "stalled" and stats["status"]["lag"] == 56_000
    feed.sample(45.0, 3000, 0)  # caught up
    assert feed.stats(45.0)["status"]["state"] == "live"

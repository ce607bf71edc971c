"""In-memory recent alerts for the web view (pure code: no Kafka, no web server).

The alert-feed service (app/web/alert_feed.py) reads every partition of the alert topics and
:meth:`AlertFeed.add`s what it reads; the views query it and subscribe to it for server-sent
events. Memory is bounded twice: at most ``capacity`` alerts, and a subscriber that falls
``queue_size`` events behind is dropped (its browser reconnects and gets a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Any

import orjson

from models.tiers import ALERTED_TIERS

STATS_WINDOW_S = 60.0
#: Work queued for longer than this (lag at the current scoring rate) is "behind".
BEHIND_AFTER_S = 10.0
#: Transactions waiting and nothing scored for this long is "stalled".
STALLED_AFTER_S = 30.0

#: Put in a subscriber's queue when the feed closes or drops the subscriber.
CLOSED: dict[str, Any] = {"event": "closed"}


def parse_alert(raw: bytes | None) -> dict[str, Any] | None:
    """Decode an alert topic value; ``None`` for anything that is not a usable alert."""
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    alert_id = doc.get("alert_id", doc.get("tx_id"))
    if not isinstance(alert_id, str) or not alert_id or doc.get("tier") not in ALERTED_TIERS:
        return None
    doc["alert_id"] = alert_id
    return doc


def summary(alert: dict[str, Any]) -> dict[str, Any]:
    """Return the fields of an alert that the live list shows (the SSE payload stays small)."""
    tx = alert.get("transaction")
    tx = tx if isinstance(tx, dict) else {}
    reasons = alert.get("reasons") if isinstance(alert.get("reasons"), list) else []
    return {
        "alert_id": alert["alert_id"],
        "tx_id": alert.get("tx_id"),
        "account_id": alert.get("account_id"),
        "tier": alert["tier"],
        "score": alert.get("score"),
        "event_ts": alert.get("event_ts"),
        "scored_ts": alert.get("scored_ts"),
        "amount": tx.get("amount"),
        "currency": tx.get("currency"),
        "counterparty_id": tx.get("counterparty_id"),
        "merchant_category": tx.get("merchant_category"),
        "top_reason": reasons[0] if reasons else None,
        "rule_count": len(alert.get("rules") or []),
    }


def percentile(values: list[float], q: float) -> float | None:
    """Return the ``q`` quantile (0..1, nearest rank) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class RateWindow:
    """Events per second over a sliding window, from samples of a monotonic total."""

    def __init__(self, window_s: float = STATS_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> None:
        """Record the running total (e.g. the sum of end offsets) seen at ``now``."""
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()  # topic recreated: offsets went back
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Return events/s between the oldest and newest sample, ``None`` before two."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def worker_status(
    live: bool, lag: int | None, rate_per_s: float | None, unchanged_s: float | None
) -> dict[str, Any]:
    """Say whether the workers keep up, for the page's status badge.

    ``lag`` is the consumer group's transactions not yet committed (``None``: not known yet),
    ``rate_per_s`` the recent scoring rate, and ``unchanged_s`` how long the scored topic's
    end has not moved. States: ``starting`` (the feed reads its backlog), ``stalled``
    (transactions wait and nothing is scored), ``behind`` (the queued work would take
    longer than :data:`BEHIND_AFTER_S` at the current rate), ``live`` (keeping up, or
    nothing to do).
    """
    if not live:
        return {"state": "starting", "text": "starting…", "lag": lag}
    waiting = lag or 0
    if waiting > 0 and unchanged_s is not None and unchanged_s >= STALLED_AFTER_S:
        return {
            "state": "stalled",
            "text": f"stalled: nothing scored for {unchanged_s:.0f} s, {waiting:,} waiting",
            "lag": waiting,
        }
    if waiting > 0:
        behind_s = waiting / rate_per_s if rate_per_s else float("inf")
        if behind_s >= BEHIND_AFTER_S:
            ahead = f" (~{behind_s:.0f} s of work)" if rate_per_s else ""
            return {
                "state": "behind",
                "text": f"behind: {waiting:,} transactions waiting{ahead}",
                "lag": waiting,
            }
    return {"state": "live", "text": "live", "lag": lag}


class AlertFeed:
    """The most recent alerts by ``alert_id`` (newest last), with live subscribers."""

    def __init__(self, capacity: int, queue_size: int = 500) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.queue_size = queue_size
        self._alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        #: Alerts seen by tier since the feed started (de-duplicated only within memory).
        self.tier_totals: dict[str, int] = dict.fromkeys(ALERTED_TIERS, 0)
        #: (received monotonic s, event-to-scored latency ms) of recent alerts.
        self._latencies: deque[tuple[float, float]] = deque()
        self.tx_rate = RateWindow()
        #: The consumer group's transactions not yet committed, when last sampled.
        self.lag: int | None = None
        self._scored_total: int | None = None
        self._scored_moved_at: float | None = None
        #: True once the backlog is read and new alerts arrive as they are produced.
        self.live = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._alerts)

    def add(self, alert: dict[str, Any], now: float, live: bool = True) -> bool:
        """Keep ``alert`` and tell the subscribers; return False for a redelivery.

        ``live`` is False for the backlog read at start, which must not count in the
        last minute's latency.
        """
        alert_id = alert["alert_id"]
        old = self._alerts.get(alert_id)
        self._alerts[alert_id] = alert
        self._alerts.move_to_end(alert_id)
        while len(self._alerts) > self.capacity:
            self._alerts.popitem(last=False)
        if old is not None:
            # The same transaction again: a redelivery (nothing to show) or the fan-in
            # stage's escalation, which supersedes the first alert and must reach the page.
            if old.get("tier") != alert.get("tier") or old.get("rules") != alert.get("rules"):
                if old.get("tier") in self.tier_totals:
                    self.tier_totals[old["tier"]] -= 1
                self.tier_totals[alert["tier"]] += 1
                self._publish({"event": "alert", "data": summary(alert)})
            return False
        self.tier_totals[alert["tier"]] += 1
        event_ts, scored_ts = alert.get("event_ts"), alert.get("scored_ts")
        if live and isinstance(event_ts, int | float) and isinstance(scored_ts, int | float):
            self._latencies.append((now, float(scored_ts - event_ts)))
        self._trim(now)
        self._publish({"event": "alert", "data": summary(alert)})
        return True

    def sample(self, now: float, scored_total: int, lag: int | None) -> None:
        """Record the scored topic's end (sum of partitions) and the group's lag at ``now``."""
        self.tx_rate.add(now, scored_total)
        if self._scored_total is None or scored_total != self._scored_total:
            self._scored_total, self._scored_moved_at = scored_total, now
        self.lag = lag

    def status(self, now: float) -> dict[str, Any]:
        """Return :func:`worker_status` for what was sampled last."""
        moved = self._scored_moved_at
        return worker_status(
            self.live, self.lag, self.tx_rate.rate(), None if moved is None else now - moved
        )

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """Return the alert with this id if it is still in memory."""
        return self._alerts.get(alert_id)

    def recent(
        self, limit: int, tier: str | None = None, account_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` alerts, newest first, optionally of one tier or account."""
        out: list[dict[str, Any]] = []
        for alert in self._newest_first():
            if tier is not None and alert["tier"] != tier:
                continue
            if account_id is not None and alert.get("account_id") != account_id:
                continue
            out.append(alert)
            if len(out) >= limit:
                break
        return out

    def _newest_first(self) -> Iterator[dict[str, Any]]:
        return reversed(self._alerts.values())

    def _trim(self, now: float) -> None:
        while self._latencies and now - self._latencies[0][0] > STATS_WINDOW_S:
            self._latencies.popleft()

    def stats(self, now: float) -> dict[str, Any]:
        """Return tier totals, alerts and tx/s and latency percentiles over the last minute."""
        self._trim(now)
        lat = [ms for _, ms in self._latencies]
        rate = self.tx_rate.rate()
        return {
            "tiers": dict(self.tier_totals),
            "in_memory": len(self._alerts),
            "alerts_last_minute": len(lat),
            "tx_per_s": None if rate is None else round(rate, 1),
            "latency_ms_p50": percentile(lat, 0.5),
            "latency_ms_p95": percentile(lat, 0.95),
            "window_s": STATS_WINDOW_S,
            "live": self.live,
            "status": self.status(now),
        }

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """Return a queue that receives every new alert (and :data:`CLOSED` at the end)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self.queue_size + 1)
        if self.closed:
            queue.put_nowait(CLOSED)
        else:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Forget a subscriber (its connection ended)."""
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        """Return how many live connections are subscribed."""
        return len(self._subscribers)

    def _publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= self.queue_size:
                # Too slow: drop it rather than buffer without bound.
                self._subscribers.discard(queue)
                queue.put_nowait(CLOSED)
            else:
                queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription (the worker is stopping)."""
        self.closed = True
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(CLOSED)
        self._subscribers.clear()

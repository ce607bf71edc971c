"""The analyst web view on the worker's own Faust web server (thin: logic is in api/pages/feed).

Read-only pages and API need no token; ``POST /api/labels`` needs ``VIGIL_WEB_TOKEN``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from faust.web import Request, Response, View

from app import app
from app.web import api, pages
from app.web.alert_feed import feed
from app.web.feed import CLOSED, summary
from models.partitioning import murmur2_partition
from tables.accounts import AccountStore, accounts_table

log = logging.getLogger(__name__)
settings = app.settings

SNAPSHOT_SIZE = 200
STATS_EVERY_S = 2.0

labels_topic = app.topic(settings.topic_labels, partitions=settings.partitions)
_labels_declared = False


class WebView(View):  # type: ignore[misc]
    """Base view: JSON errors and the security headers on every response."""

    def ok(self, doc: Any, status: int = 200) -> Response:
        """Return a JSON document."""
        return self.bytes(
            orjson.dumps(doc),
            content_type="application/json",
            status=status,
            headers=dict(pages.COMMON_HEADERS),
        )

    def fail(self, exc: api.ApiError) -> Response:
        """Return an :class:`~app.web.api.ApiError` as JSON."""
        headers = dict(pages.COMMON_HEADERS)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="vigil"'
        return self.bytes(
            orjson.dumps(exc.body()),
            content_type="application/json",
            status=exc.status,
            headers=headers,
        )

    def page(self, body: str) -> Response:
        """Return an HTML page with the Content-Security-Policy."""
        return self.html(body, headers=dict(pages.PAGE_HEADERS))


@app.page("/")
class IndexPage(WebView):
    """Live alerts."""

    async def get(self, request: Request) -> Response:
        """Return the page shell; alerts arrive over ``/api/stream``."""
        return self.page(pages.index_html())


@app.page("/accounts/{account_id}")
class AccountPage(WebView):
    """One account: velocity state and recent alerts."""

    async def get(self, request: Request, account_id: str) -> Response:
        """Return the page shell; its data comes from ``/api/accounts/{id}``."""
        return self.page(pages.account_html(account_id))


@app.page("/static/{name}")
class StaticFile(WebView):
    """The page's script, style sheet and icon (no inline code, so CSP can forbid it)."""

    async def get(self, request: Request, name: str) -> Response:
        """Return one static file."""
        body = pages.static_file(name)
        if body is None:
            return self.fail(api.ApiError(404, f"no static file {name!r}"))
        return self.bytes(
            body, content_type=pages.STATIC_TYPES[name], headers=dict(pages.PAGE_HEADERS)
        )


@app.page("/api/alerts")
class AlertList(WebView):
    """``GET /api/alerts?tier=&limit=&account=``: recent alerts from all partitions."""

    async def get(self, request: Request) -> Response:
        """Return the newest alerts first."""
        try:
            query: Any = request.query
            limit = api.parse_limit(query.get("limit"))
            tier = api.parse_tier(query.get("tier"))
        except api.ApiError as exc:
            return self.fail(exc)
        alerts = feed.recent(limit, tier=tier, account_id=query.get("account") or None)
        return self.ok({"count": len(alerts), "alerts": alerts})


@app.page("/api/alerts/{alert_id}")
class AlertDetail(WebView):
    """``GET /api/alerts/{id}``: one alert with its reasons, rules and features."""

    async def get(self, request: Request, alert_id: str) -> Response:
        """Return the alert, or 404 once it has left memory."""
        alert = feed.get(alert_id)
        if alert is None:
            msg = f"no alert {alert_id!r} among the {len(feed)} recent alerts in memory"
            return self.fail(api.ApiError(404, msg))
        return self.ok(alert)


@app.page("/api/accounts/{account_id}")
class AccountApi(WebView):
    """``GET /api/accounts/{id}``: answered by the worker that owns the account's partition."""

    @app.table_route(table=accounts_table, match_info="account_id")  # type: ignore[arg-type,untyped-decorator]
    async def get(self, request: Request, account_id: str) -> Response:
        """Return the account's velocity state and its recent alerts."""
        key = account_id.encode()
        # Where the agent wrote it: every topic, the changelog too, has VIGIL_PARTITIONS.
        partition = murmur2_partition(key, app.settings.partitions)
        state = api.account_view(account_id, AccountStore(accounts_table).get(partition, key))
        alerts = feed.recent(api.MAX_LIMIT, account_id=account_id)
        if state is None and not alerts:
            return self.fail(api.ApiError(404, f"no state and no recent alerts for {account_id!r}"))
        return self.ok(
            {
                "account_id": account_id,
                "partition": partition,
                # Which worker answered: the owner of the partition (table_route).
                "served_by": str(app.conf.canonical_url),
                "state": state,
                "alerts": [summary(a) for a in alerts],
            }
        )


async def _read_body(req: Any, max_bytes: int) -> bytes:
    """Read the body until its end or one byte past ``max_bytes`` (chunked bodies too).

    ``content.read(n)`` returns what is buffered, so one call can stop at a TCP segment.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await req.content.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@app.page("/api/labels")
class LabelApi(WebView):
    """``POST /api/labels``: an analyst's verdict, sent to the labels topic (token required)."""

    async def post(self, request: Request) -> Response:
        """Validate, complete from the alert, produce keyed by ``tx_id``; 201 when acked."""
        global _labels_declared
        req: Any = request
        try:
            api.check_token(req.headers.get("Authorization"), settings.web_token)
            api.check_body(req.content_type, req.content_length, settings.web_max_body_bytes)
            body = await _read_body(req, settings.web_max_body_bytes)
            doc = api.decode_json_object(body, settings.web_max_body_bytes)
            tx_id = doc.get("tx_id")
            alert = feed.get(tx_id) if isinstance(tx_id, str) else None
            label = api.build_label(doc, alert, int(time.time() * 1000))
        except api.ApiError as exc:
            return self.fail(exc)
        if not _labels_declared:
            await labels_topic.maybe_declare()
            _labels_declared = True
        sent = await labels_topic.send(key=label.tx_id.encode(), value=label.to_bytes())
        metadata = await sent
        log.info("label sent", extra={"tx_id": label.tx_id, "label": label.label})
        return self.ok(
            {
                "label": label.to_dict(),
                "topic": settings.topic_labels,
                "partition": metadata.partition,
                "offset": metadata.offset,
            },
            status=201,
        )


@app.page("/api/stats")
class StatsApi(WebView):
    """``GET /api/stats``: tier totals, tx/s and latency over the last minute."""

    async def get(self, request: Request) -> Response:
        """Return the feed's figures."""
        return self.ok(feed.stats(time.monotonic()))


def _sse(event: str, data: Any) -> bytes:
    # orjson never emits a raw newline, so one data line always holds the whole document.
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@app.page("/api/stream")
class AlertStream(WebView):
    """Server-sent events: a snapshot, then every new alert and the stats every 2 s."""

    async def get(self, request: Any) -> Any:
        """Stream until the browser goes away or the worker stops."""
        from aiohttp import web

        response = web.StreamResponse(
            headers={
                **pages.COMMON_HEADERS,
                "Content-Type": "text/event-stream",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = feed.subscribe()
        try:
            snapshot = [summary(a) for a in feed.recent(SNAPSHOT_SIZE)]
            await response.write(b"retry: 3000\n\n")
            await response.write(
                _sse("snapshot", {"alerts": snapshot, "stats": feed.stats(time.monotonic())})
            )
            next_stats = time.monotonic() + STATS_EVERY_S
            while True:
                wait = max(0.05, next_stats - time.monotonic())
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    await response.write(_sse("stats", feed.stats(time.monotonic())))
                    next_stats = time.monotonic() + STATS_EVERY_S
                    continue
                if event is CLOSED:
                    break
                await response.write(_sse(event["event"], event["data"]))
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            feed.unsubscribe(queue)
        return response

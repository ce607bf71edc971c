"""``/metrics`` on the worker's own Faust web server."""

from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from app.kafka.instance import app


@app.page("/metrics")
class MetricsView(View):  # type: ignore[misc]
    """Serve the Prometheus exposition of this worker."""

    async def get(self, request: Request) -> Response:
        """Return every ``vigil_*`` metric (Faust's sensor's as ``vigil_faust_*``)."""
        body = app.metrics.render()
        return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

"""Reference point for the benchmark: a Faust agent that only counts events.

Run as ``faust -A bench.counting_app worker``; configured by ``BENCH_*`` variables because it
is bench tooling, not part of Vigil.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

_env = os.environ
TOPIC = _env["BENCH_TOPIC"]
EXPECTED = int(_env["BENCH_EXPECTED"])
RESULT = Path(_env["BENCH_RESULT"])

app = faust.App(
    f"bench-count-{TOPIC}",
    broker=_env["BENCH_BROKER_URL"],
    store="memory://",
    datadir=_env["BENCH_DATA_DIR"],
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    web_enabled=False,
)
source = app.topic(TOPIC)


@app.agent(source)
async def count(stream: Any) -> None:
    """Count events; write first/last wall-clock times once all expected arrived."""
    n = 0
    first = 0.0
    async for _ in stream:
        if n == 0:
            first = time.time()
        n += 1
        if n == EXPECTED:
            RESULT.write_text(json.dumps({"first": first, "last": time.time(), "n": n}))

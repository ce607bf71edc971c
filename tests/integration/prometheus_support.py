"""A real Prometheus server for the tests: loopback only, data in the test's tmp dir."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from app.kafka.embedded_broker import free_port
from tests.debian_packages import ensure_tool


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``promtool`` (installed from Debian's ``prometheus`` package if missing)."""
    binary = ensure_tool("promtool", "prometheus")
    return subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=300)


class PrometheusServer:
    """``prometheus`` scraping the given targets every second, evaluating ``rule_files``."""

    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "vigil",
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        """Start the server and wait until it reports ready."""
        binary = ensure_tool("prometheus", "prometheus")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prometheus not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it hangs)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """Call the HTTP API; return its JSON document, errors (HTTP 400/422) included."""
        data = urllib.parse.urlencode(params).encode() if params else None
        request = urllib.request.Request(f"{self.url}/api/v1/{path}", data=data)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            doc = json.loads(err.read())
        return doc

    def query(self, expr: str) -> dict[str, Any]:
        """Evaluate an instant query."""
        return self.api("query", query=expr)

    def value(self, expr: str) -> float | None:
        """Return the single value of a scalar-like query, None while it has no data."""
        doc = self.query(expr)
        result = doc.get("data", {}).get("result", [])
        if doc.get("status") != "success" or not result:
            return None
        return float(result[0]["value"][1])


def has_finite_value(doc: dict[str, Any]) -> bool:
    """Tell whether an instant-query answer holds at least one finite number."""
    values = [float(r["value"][1]) for r in doc.get("data", {}).get("result", [])]
    return any(math.isfinite(v) for v in values)


def wait_for(condition: Any, timeout_s: float, what: str, interval_s: float = 1.0) -> None:
    """Wait until ``condition()`` is true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")

"""Headless Debian Chromium driven over the DevTools protocol (a small client on aiohttp).

Why not selenium: the DevTools protocol is one WebSocket that aiohttp (already a runtime
dependency) speaks, so the tests need no extra Python package and no chromium-driver; it
also reports console messages, exceptions and CSP violations as events, which is what the
"no console errors" check needs. Clicks and typing go through ``Input.*`` (real input
events at the element's position), not through ``element.click()`` in page script.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.debian_packages import ensure_tool


def ensure_chromium() -> str:
    """Return the path of Debian's ``chromium``, installing the package if it is missing."""
    # With recommends: the fonts that come with it are what screenshots render text with.
    return ensure_tool("chromium", "chromium", recommends=True)


class CdpError(RuntimeError):
    """A DevTools command failed or a page script threw."""


class Page:
    """One browser tab: commands, events, and the console errors seen so far."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console_errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            doc = json.loads(msg.data)
            if "id" in doc:
                fut = self._pending.pop(doc["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(doc)
            else:
                self._on_event(doc.get("method", ""), doc.get("params", {}))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CdpError("browser connection closed"))

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            self.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {})
            self.console_errors.append(
                f"exception: {exc.get('description') or details.get('text', '')}"
            )
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.console_errors.append(
                    f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
                )

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one DevTools command and return its result."""
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._ws.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params or {}})
        )
        doc = await asyncio.wait_for(fut, timeout=60)
        if "error" in doc:
            raise CdpError(f"{method}: {doc['error']}")
        result: dict[str, Any] = doc.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting a promise) and return its JSON value."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or expression}; "
                    f"console errors: {self.console_errors}"
                )
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        """Navigate and wait until the document has loaded."""
        await self.send("Page.navigate", {"url": url})
        await self.wait_for(
            f"document.readyState === 'complete' && location.href === {json.dumps(url)}",
            what=f"page {url} to load",
        )

    async def click(self, selector: str) -> None:
        """Click the centre of the element with a real mouse press and release."""
        point = await self.wait_for(
            "(() => { const e = document.querySelector(" + json.dumps(selector) + ");"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return r.width > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()",
            what=f"{selector} to be visible",
        )
        x, y = point
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    async def type_text(self, selector: str, text: str) -> None:
        """Focus an input by clicking it and type ``text`` into it."""
        await self.click(selector)
        await self.send("Input.insertText", {"text": text})

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport."""
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Browser:
    """A headless Chromium process with one page, for ``async with``."""

    def __init__(self, binary: str, profile_dir: Path, log_path: Path) -> None:
        self.binary = binary
        self.profile_dir = profile_dir
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.page: Page | None = None

    async def __aenter__(self) -> Page:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-domain-reliability",
            "--no-pings",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile_dir}",
            "--window-size=1400,1000",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with it
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start:\n{self.log_path.read_text()}")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        targets: list[dict[str, Any]] = []
        while not any(t.get("type") == "page" for t in targets):
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
        ws_url = next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"]
        ws = await self._session.ws_connect(ws_url, max_msg_size=0)
        self.page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            await self.page.send(f"{domain}.enable")
        return self.page

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

"""Install the Debian package that provides a tool a test needs, when it is missing.

The compose, Prometheus and browser tests check against the real tools (``docker-compose``,
``prometheus``, ``promtool``, ``chromium``). A fresh CI machine may not have them yet; it
runs as root (or has passwordless sudo) and reaches Debian's archive, so the test installs
them rather than skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

#: How long to wait for apt's lock, which another install on a shared machine may hold.
LOCK_WAIT_S = 600.0

_updated = False


def _apt(prefix: list[str], args: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        done = subprocess.run(
            [*prefix, "apt-get", *args], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return
        if "lock" not in done.stderr or time.monotonic() > deadline:
            raise RuntimeError(f"apt-get {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        time.sleep(5)


def ensure_tool(binary: str, package: str, recommends: bool = False) -> str:
    """Return the path of ``binary``, installing Debian's ``package`` first if needed."""
    global _updated
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise RuntimeError(f"{binary} is missing; install it with: sudo apt-get install {package}")
    if not _updated:
        _apt(prefix, ["update", "-q"])
        _updated = True
    _apt(
        prefix,
        ["install", "-y", "-q", *([] if recommends else ["--no-install-recommends"]), package],
    )
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"installing {package} did not provide {binary}")
    return found

"""Install the Debian package that provides a tool a test needs, when it is missing.

The compose and Prometheus tests check files against the real tools (``docker-compose``,
``prometheus``, ``promtool``). A fresh CI machine may not have them yet; it runs as root
and reaches Debian's archive, so the test installs them rather than skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess

_updated = False


def ensure_tool(binary: str, package: str) -> str:
    """Return the path of ``binary``, installing Debian's ``package`` first if needed."""
    global _updated
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{binary} is missing; install it with: sudo apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        _updated = True
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
    )
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"installing {package} did not provide {binary}")
    return found

"""Children started with ``die_with_parent``: their own process group, so Ctrl-C stays ours."""

from __future__ import annotations

import os
import subprocess
import sys

from app.kafka.embedded_broker import die_with_parent


def test_a_child_gets_a_process_group_of_its_own() -> None:
    # A terminal's Ctrl-C goes to its foreground process group: the child must not be in
    # ours, or the demo's broker would stop at the same instant as the worker reading it.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], preexec_fn=die_with_parent()
    )
    try:
        assert os.getpgid(child.pid) == child.pid
        assert os.getpgid(child.pid) != os.getpgid(0)
    finally:
        child.kill()
        child.wait()

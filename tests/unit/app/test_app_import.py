"""The settings and the app package import without building the Faust app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter: ``sys.modules`` of this test process already holds Faust."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_settings_import_does_not_load_faust() -> None:
    done = _run(
        "import sys, app, app.settings\n"
        "assert 'faust' not in sys.modules, 'faust imported'\n"
        "assert 'app.kafka.faust_app' not in sys.modules, 'app built'\n"
        "print(app.settings.load_settings({}).app_id)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "vigil"


def test_app_is_built_once_on_first_access_with_its_commands() -> None:
    done = _run(
        "import app\n"
        "from app import app as first\n"
        "from app import app as again\n"
        "from app.kafka.faust_app import VigilApp\n"
        "assert first is again is app.app, 'built twice'\n"
        "assert isinstance(first, VigilApp) and app.VigilApp is VigilApp\n"
        "print('app.commands' in __import__('sys').modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    done = _run(
        "import app\ntry:\n    app.nothing_here\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "nothing_here" in done.stdout

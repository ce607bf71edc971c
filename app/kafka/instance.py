"""The one Faust app of a process, built when this module is first imported.

Tables, agents and monitoring (layers 2 and 3) declare themselves on it from here: the
``app`` package is the top layer (``faust -A app``), and reading ``app.app`` there also
registers the CLI commands.
"""

from __future__ import annotations

from app.kafka.faust_app import VigilApp, create_app

app: VigilApp = create_app()

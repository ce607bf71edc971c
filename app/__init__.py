"""Vigil's Faust application; ``faust -A app worker`` finds :data:`app` here.

The app is built on first access (PEP 562), not when the package is imported: a module
that only needs ``app.settings`` (the simulator, training, a unit test) does not pay for,
or depend on, building Faust. ``from app import app`` and ``faust -A app`` both read the
attribute, so both build it once, and the CLI commands are registered on it then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.kafka.faust_app import VigilApp, create_app

    app: VigilApp

__all__ = ["VigilApp", "app", "create_app"]


def __getattr__(name: str) -> Any:
    """Build :data:`app` (and expose the names of ``app.kafka.faust_app``) on first access."""
    if name == "app":
        from app.kafka.instance import app as instance

        globals()["app"] = instance
        # Registers the CLI commands on the app; it reads ``app`` back from here.
        from app import commands  # noqa: F401

        return instance
    if name in ("VigilApp", "create_app"):
        from app.kafka import faust_app as main

        return getattr(main, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

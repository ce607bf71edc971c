"""Vigil's Faust application; ``faust -A app worker`` finds :data:`app` here."""

from app.main import VigilApp, create_app

app: VigilApp = create_app()

from app import commands  # noqa: E402,F401  (registers the CLI commands on app)

__all__ = ["VigilApp", "app", "create_app"]

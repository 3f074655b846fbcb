"""ASGI entry point for uvicorn workers: settings come from the environment (``CALLSTREAM_CONFIG``,
``REDIS_URL``), which ``callstream serve`` sets before it starts them."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from receiver import collector
from receiver.app import create_app
from receiver.providers import PROVIDERS
from receiver.settings import Settings


def app() -> Starlette:
    """Factory used as ``uvicorn receiver.asgi:app --factory``: the app, in a worker whose garbage collector
    is set up for serving (receiver/collector.py)."""
    settings = Settings.load(None, os.environ, list(PROVIDERS))
    built = create_app(settings)
    collector.tune_for_serving(settings.gc_young_threshold)
    return built

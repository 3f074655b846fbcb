"""The receiving half of callstream: the ASGI app, provider adapters, configuration and the CLI."""

from receiver.app import create_app
from receiver.settings import Settings, Source

__all__ = ["Settings", "Source", "create_app"]

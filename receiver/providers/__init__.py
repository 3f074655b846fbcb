"""Provider adapters, one module each, found by name.

Adding a provider is one file: ``receiver/providers/<name>.py`` exposing ``ADAPTER`` (a
`ProviderAdapter`), plus its recorded callbacks under ``fixtures/<name>/``. Every module of this package
that defines ``ADAPTER`` is registered here.
"""

from __future__ import annotations

from receiver.discovery import discover
from receiver.providers.base import OutgoingRequest, ProviderAdapter

PROVIDERS: dict[str, ProviderAdapter] = discover(
    __name__, __path__, "ADAPTER", ProviderAdapter, lambda adapter: adapter.name
)

__all__ = ["PROVIDERS", "OutgoingRequest", "ProviderAdapter"]

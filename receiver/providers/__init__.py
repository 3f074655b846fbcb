"""Provider adapters, one module each, found by name.

Adding a provider is one file: ``receiver/providers/<name>.py`` exposing ``ADAPTER`` (a
`ProviderAdapter`), plus its recorded callbacks under ``fixtures/<name>/``. Every module of this package
that defines ``ADAPTER`` is registered here.
"""

from __future__ import annotations

import importlib
import pkgutil

from receiver.providers.base import OutgoingRequest, ProviderAdapter


def _discover() -> dict[str, ProviderAdapter]:
    adapters: dict[str, ProviderAdapter] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, ProviderAdapter):
            adapters[adapter.name] = adapter
    return adapters


PROVIDERS: dict[str, ProviderAdapter] = _discover()

__all__ = ["PROVIDERS", "OutgoingRequest", "ProviderAdapter"]

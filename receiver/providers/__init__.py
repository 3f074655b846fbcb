"""Provider adapters, one module each, looked up by name from this registry.

Adding a provider: write ``receiver/providers/<name>.py`` exposing ``ADAPTER``, add it to `PROVIDERS`,
and record its callbacks under ``fixtures/<name>/``.
"""

from __future__ import annotations

from receiver.providers import minivoice, vobiz
from receiver.providers.base import OutgoingRequest, ProviderAdapter

PROVIDERS: dict[str, ProviderAdapter] = {
    adapter.name: adapter
    for adapter in (
        vobiz.ADAPTER,
        minivoice.ADAPTER,
    )
}

__all__ = ["PROVIDERS", "OutgoingRequest", "ProviderAdapter"]

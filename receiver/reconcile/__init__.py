"""Reconciliation: asking a provider's get-call API for the state of a call whose callbacks were lost.

One module per provider (``receiver/reconcile/<provider>.py``) exposing ``CLIENT`` (a `GetCallClient`),
registered here by discovery, keyed by provider name (the same names as `receiver.providers.PROVIDERS`).
"""

from __future__ import annotations

import importlib
import pkgutil

from receiver.reconcile.base import (
    ApiConfig,
    CallNotFound,
    Finding,
    GetCallClient,
    ProviderUnavailable,
    ReconcileError,
    UnusableAnswer,
    ask,
)


def _discover() -> dict[str, GetCallClient]:
    clients: dict[str, GetCallClient] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        client = getattr(module, "CLIENT", None)
        if isinstance(client, GetCallClient):
            clients[client.provider] = client
    return clients


CLIENTS: dict[str, GetCallClient] = _discover()

__all__ = [
    "CLIENTS",
    "ApiConfig",
    "CallNotFound",
    "Finding",
    "GetCallClient",
    "ProviderUnavailable",
    "ReconcileError",
    "UnusableAnswer",
    "ask",
]

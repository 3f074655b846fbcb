"""Reconciliation: asking a provider's get-call API for the state of a call whose callbacks were lost.

One module per provider (``receiver/reconcile/<provider>.py``) exposing ``CLIENT`` (a `GetCallClient`),
registered here by discovery, keyed by provider name (the same names as `receiver.providers.PROVIDERS`).
"""

from __future__ import annotations

from receiver.discovery import discover
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

CLIENTS: dict[str, GetCallClient] = discover(
    __name__, __path__, "CLIENT", GetCallClient, lambda client: client.provider
)

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

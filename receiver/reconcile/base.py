"""The small interface every get-call client implements, and how one is configured and asked.

A client is a `GetCallClient` value in its own module (``receiver/reconcile/<provider>.py``): ``build``
turns the source's API settings and a call id into one GET request, ``interpret`` turns the provider's
answer into a `Finding` (canonical trigger, provider status, enrichment). Both are pure; `ask` does the
I/O. Status names are mapped with the provider adapter's own tables, imported, so a webhook and a
lookup can never disagree about what a status means.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from receiver.providers.base import normalized_name
from receiver.reconcile import http
from receiver.settings import ConfigError, Secret, Source, check_keys, resolve_secret
from statemachine.states import Trigger

DEFAULT_TIMEOUT_S = 5.0


class ReconcileError(Exception):
    """The provider could not tell us the call's state; ``reason`` is a short machine-readable word."""

    reason = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class CallNotFound(ReconcileError):
    """The provider does not know the call (HTTP 404), or has no record of it yet."""

    reason = "not_found"


class ProviderUnavailable(ReconcileError):
    """No usable answer now (network error, 429, 5xx): worth asking again on a later sweep."""

    reason = "unavailable"


class UnusableAnswer(ReconcileError):
    """An answer we cannot read: not JSON, no status, or a status we have no mapping for."""

    reason = "unusable_answer"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """A source's get-call API settings: ``[sources.<name>.reconcile]``."""

    base_url: str
    credentials: Mapping[str, Secret]
    timeout_s: float = DEFAULT_TIMEOUT_S

    def secret(self, name: str) -> str:
        return self.credentials[name].reveal()


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One GET to a provider's API."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    """What the provider says about a call, in canonical terms."""

    trigger: Trigger
    status: str
    extras: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


Build = Callable[[ApiConfig, str], ApiRequest]
Interpret = Callable[[Any], Finding]


@dataclass(frozen=True, slots=True)
class GetCallClient:
    """One provider's get-call API."""

    provider: str
    credentials: tuple[str, ...]
    build: Build
    interpret: Interpret
    default_base_url: str | None = None

    def configure(self, source: Source, environ: Mapping[str, str]) -> ApiConfig | None:
        """The source's API settings, or None when the source has no ``reconcile`` table.

        Raises `ConfigError` naming the key at fault; credentials accept ``"env:NAME"``.
        """
        table = source.options.get("reconcile")
        if table is None:
            return None
        where = f"sources.{source.name}.reconcile"
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{where}] must be a table")
        check_keys(table, {"enabled", "base_url", "timeout_seconds", *self.credentials}, f"unknown key {where}.{{}}")
        if table.get("enabled", True) is False:
            return None
        base_url = table.get("base_url", self.default_base_url)
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.base_url must be an http(s) URL")
        timeout = table.get("timeout_seconds", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{where}.timeout_seconds must be a positive number")
        credentials = {name: resolve_secret(table.get(name), environ, f"{where}.{name}") for name in self.credentials}
        return ApiConfig(base_url=base_url.rstrip("/"), credentials=credentials, timeout_s=float(timeout))


def segment(value: str) -> str:
    """A provider id as one URL path segment."""
    return urllib.parse.quote(value, safe="")


def document_of(answer: Any, *wrappers: str) -> dict[str, Any]:
    """The call object of an answer: the answer itself, or the first of ``wrappers`` holding an object."""
    if not isinstance(answer, dict):
        raise UnusableAnswer("the answer is not a JSON object")
    for name in wrappers:
        inner = answer.get(name)
        if isinstance(inner, dict):
            return inner
    return answer


def mapped_status(provider: str, value: Any, table: Mapping[str, Trigger]) -> tuple[str, Trigger]:
    """A provider's status, normalized, and its canonical trigger from ``table``.

    Raises `UnusableAnswer` naming the status when the table has no meaning for it.
    """
    status = normalized_name(str(value or ""))
    trigger = table.get(status)
    if trigger is None:
        raise UnusableAnswer(f"{provider} status {value or '(none)'!r} has no canonical meaning")
    return status, trigger


def finding(
    trigger: Trigger,
    status: str,
    raw: dict[str, Any],
    extras: Mapping[str, Any],
    absent: tuple[Any, ...] = (None,),
) -> Finding:
    """A `Finding` keeping only the extras the answer had a value for (not one of ``absent``)."""
    return Finding(
        trigger=trigger,
        status=status,
        extras={key: value for key, value in extras.items() if value not in absent},
        raw=raw,
    )


async def ask(client: GetCallClient, config: ApiConfig, call_id: str) -> Finding:
    """Ask the provider about one call. Raises a `ReconcileError` subclass when it cannot tell."""
    api = client.build(config, call_id)
    try:
        response = await http.request("GET", api.url, headers=api.headers, timeout_s=config.timeout_s)
    except http.TransportError as err:
        raise ProviderUnavailable(str(err)) from err
    if response.status == 404:
        raise CallNotFound(f"{client.provider} has no call {call_id!r} (HTTP 404)")
    if response.status == 429 or response.status >= 500:
        raise ProviderUnavailable(f"{client.provider} answered HTTP {response.status}")
    if not response.ok:
        raise ReconcileError(f"{client.provider} answered HTTP {response.status}")
    document = response.document
    if document is None:
        raise UnusableAnswer(f"{client.provider} answered with a body that is not JSON")
    return client.interpret(document)

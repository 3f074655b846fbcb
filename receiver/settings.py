"""Configuration: sources, secrets, Redis, streams and limits, read once into frozen values.

Read from a TOML file (``--config`` or ``CALLSTREAM_CONFIG``) and the environment (``REDIS_URL``).
Secret values may name an environment variable as ``"env:NAME"``; they are wrapped in `Secret`, whose
repr never shows the value.
"""

from __future__ import annotations

import difflib
import importlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from receiver.collector import DEFAULT_YOUNG_THRESHOLD
from statemachine.keys import DEFAULT_PREFIX, Keys
from statemachine.partitions import MAX_PARTITIONS
from statemachine.store import Retention

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

#: The keys each section may hold. ``[sources.<name>]`` tables are checked by `_source` (their keys depend
#: on the provider), ``[sinks.<name>]`` tables by the sink that reads them.
SECTION_KEYS: Mapping[str, frozenset[str] | None] = {
    "redis": frozenset({"url", "wait_replicas", "wait_timeout_ms"}),
    "server": frozenset(
        {
            "host",
            "port",
            "max_body_bytes",
            "redis_timeout_seconds",
            "redis_max_connections",
            "allow_unverified_public",
            "max_header_bytes",
            "header_timeout_seconds",
            "body_timeout_seconds",
            "max_connections",
            "gc_young_threshold",
        }
    ),
    "streams": frozenset({"prefix", "partitions", "maxlen"}),
    "retention": frozenset({"active_call_seconds", "terminal_call_seconds", "nonce_seconds"}),
    "operator": frozenset({"token"}),
    "sweeper": frozenset({"interval_seconds"}),
    "deadletter": frozenset({"max_entry_bytes", "max_source_bytes"}),
    "sources": None,
    "sinks": None,
}
#: The keys of a source whatever its provider; a provider module that reads more lists them in ``KNOWN_OPTIONS``.
SOURCE_KEYS = frozenset({"provider", "secrets", "verify", "public_url", "timestamp_tolerance_seconds"})
#: Options every source may carry whatever its provider (read by the sweeper and reconciliation).
SOURCE_WIDE_OPTIONS = frozenset({"stale_after_seconds", "reconcile"})


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class Secret:
    """A secret value that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Source:
    """A configured webhook endpoint: ``POST /webhooks/<name>`` handled by ``provider``'s adapter."""

    name: str
    provider: str
    secrets: tuple[Secret, ...] = ()
    verify: bool = True
    public_url: str | None = None
    timestamp_tolerance_s: int = 300
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """``[deadletter]``: how many bytes one dead letter and one source's dead letters may hold."""

    #: A body beyond this is cut (its size and SHA-256 kept) and the entry marked truncated.
    max_entry_bytes: int = 64 * 1024
    #: A source's entries beyond this: its oldest are removed to make room.
    max_source_bytes: int = 16 * 1024 * 1024


DEFAULT_DEADLETTERS = DeadLetterLimits()


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """``[server]`` limits on each connection of one server process (see receiver/transport.py)."""

    #: Request line plus headers; beyond: 431.
    max_header_bytes: int = 32 * 1024
    #: From a connection's opening (or a request's first byte) to the end of the request's headers; beyond: 408.
    header_timeout_s: float = 10.0
    #: From the end of the headers to the end of the body; beyond: 408. Also bounds a lingering close.
    body_timeout_s: float = 10.0
    #: Open connections per process; beyond: 503 and closed at once.
    max_connections: int = 1024


DEFAULT_TRANSPORT = TransportLimits()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to run."""

    sources: Mapping[str, Source]
    redis_url: str | None = None
    key_prefix: str = DEFAULT_PREFIX
    #: Partitions of the transitions stream (``[streams] partitions``); see statemachine/partitions.py.
    partitions: int = 1
    retention: Retention = field(default_factory=Retention)
    max_body_bytes: int = 256 * 1024
    redis_timeout_s: float = 2.0
    redis_max_connections: int = 64
    #: Replicas that must confirm each step before the 2xx (``[redis] wait_replicas``); 0: the primary's word.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    operator_token: Secret | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    allow_unverified_public: bool = False
    from_file: bool = False
    #: ``[sweeper] interval_seconds``: run the stuck-call sweeper inside the server this often (off if None).
    sweeper_interval_s: int | None = None
    deadletters: DeadLetterLimits = field(default_factory=DeadLetterLimits)
    transport: TransportLimits = field(default_factory=TransportLimits)
    #: ``[server] gc_young_threshold``: the serving worker's young-generation threshold (receiver/collector.py).
    gc_young_threshold: int = DEFAULT_YOUNG_THRESHOLD

    @property
    def keys(self) -> Keys:
        return Keys(self.key_prefix, self.partitions)

    def unverified_sources(self) -> list[str]:
        return sorted(name for name, source in self.sources.items() if not source.verify)

    def check_bind(self, host: str) -> None:
        """Refuse to listen beyond loopback while any source accepts unsigned requests."""
        unverified = self.unverified_sources()
        if host not in LOOPBACK_HOSTS and unverified and not self.allow_unverified_public:
            raise ConfigError(
                f"refusing to listen on {host} with unverified sources ({', '.join(unverified)}): "
                "configure their secrets (or remove them), listen on 127.0.0.1, or pass --allow-unverified-public "
                "(see docs/docker.md)"
            )

    @classmethod
    def default(cls, environ: Mapping[str, str], providers: list[str]) -> Settings:
        """No configuration file: every built-in provider at ``/webhooks/<provider>``, unverified, loopback."""
        sources = {name: Source(name=name, provider=name, verify=False) for name in providers}
        return cls(sources=sources, redis_url=environ.get("REDIS_URL") or None)

    @classmethod
    def from_toml(cls, text: str, environ: Mapping[str, str], providers: list[str]) -> Settings:
        """Parse a TOML configuration; every error names the key at fault."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"configuration is not valid TOML: {err}") from err
        return cls._from_mapping(doc, environ, providers)

    @classmethod
    def load(cls, path: str | None, environ: Mapping[str, str], providers: list[str]) -> Settings:
        """Settings from ``path`` (or ``CALLSTREAM_CONFIG``), else the zero-configuration default."""
        path = path or environ.get("CALLSTREAM_CONFIG")
        if not path:
            return cls.default(environ, providers)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read configuration {path}: {err.strerror}") from err
        try:
            return cls.from_toml(text, environ, providers)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err

    @classmethod
    def _from_mapping(cls, doc: Mapping[str, Any], environ: Mapping[str, str], providers: list[str]) -> Settings:
        check_keys(doc, SECTION_KEYS, "unknown section [{}]")
        for section, keys in SECTION_KEYS.items():
            if keys is not None:
                check_keys(_table(doc, section), keys, f"unknown key {section}.{{}}")
        redis = _table(doc, "redis")
        server = _table(doc, "server")
        streams = _table(doc, "streams")
        retention = _table(doc, "retention")
        operator = _table(doc, "operator")
        sweeper = _table(doc, "sweeper")
        deadletters = _table(doc, "deadletter")
        sources = {name: _source(name, spec, environ, providers) for name, spec in _table(doc, "sources").items()}
        if not sources:
            raise ConfigError("[sources] is empty: configure at least one source")
        token = operator.get("token")
        defaults = Retention()
        return cls(
            sources=sources,
            redis_url=environ.get("REDIS_URL") or _opt_str(redis, "redis.url"),
            key_prefix=str(streams.get("prefix", DEFAULT_PREFIX)),
            partitions=_partitions(streams),
            retention=Retention(
                stream_maxlen=_int(streams, "maxlen", defaults.stream_maxlen),
                active_call_ms=_int(retention, "active_call_seconds", defaults.active_call_ms // 1000) * 1000,
                terminal_call_ms=_int(retention, "terminal_call_seconds", defaults.terminal_call_ms // 1000) * 1000,
                nonce_ms=_int(retention, "nonce_seconds", defaults.nonce_ms // 1000) * 1000,
            ),
            max_body_bytes=_int(server, "max_body_bytes", 256 * 1024),
            redis_timeout_s=float(server.get("redis_timeout_seconds", 2.0)),
            redis_max_connections=_int(server, "redis_max_connections", 64),
            redis_wait_replicas=_wait_replicas(redis),
            redis_wait_timeout_ms=_wait_timeout_ms(redis, server),
            operator_token=resolve_secret(token, environ, "operator.token") if token else None,
            host=str(server.get("host", "127.0.0.1")),
            port=_int(server, "port", 8000),
            allow_unverified_public=_flag(server, "server.allow_unverified_public", False),
            from_file=True,
            sweeper_interval_s=_int(sweeper, "interval_seconds", 1) if "interval_seconds" in sweeper else None,
            gc_young_threshold=_int(server, "gc_young_threshold", DEFAULT_YOUNG_THRESHOLD),
            transport=TransportLimits(
                max_header_bytes=_int(server, "max_header_bytes", DEFAULT_TRANSPORT.max_header_bytes),
                header_timeout_s=_seconds(server, "header_timeout_seconds", DEFAULT_TRANSPORT.header_timeout_s),
                body_timeout_s=_seconds(server, "body_timeout_seconds", DEFAULT_TRANSPORT.body_timeout_s),
                max_connections=_int(server, "max_connections", DEFAULT_TRANSPORT.max_connections),
            ),
            deadletters=DeadLetterLimits(
                max_entry_bytes=_int(deadletters, "max_entry_bytes", DEFAULT_DEADLETTERS.max_entry_bytes),
                max_source_bytes=_int(deadletters, "max_source_bytes", DEFAULT_DEADLETTERS.max_source_bytes),
            ),
        )


def check_keys(table: Mapping[str, Any], valid: Iterable[str], unknown: str) -> None:
    """Refuse the first key of ``table`` that is not ``valid``, naming it and the closest valid one.

    ``unknown`` says what is wrong with a key, with ``{}`` in its place: ``"unknown key streams.{}"``.
    """
    valid = sorted(valid)
    for key in table:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"valid: {', '.join(valid)}"
            raise ConfigError(f"{unknown.format(key)}; {hint}")


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return float(value)


def _flag(table: Mapping[str, Any], dotted: str, default: bool) -> bool:
    """A true/false key: a string such as ``"false"`` is refused, never read as true."""
    value = table.get(dotted.rpartition(".")[2], default)
    if not isinstance(value, bool):
        raise ConfigError(f"{dotted} must be true or false, got {value!r}")
    return value


def _wait_replicas(redis: Mapping[str, Any]) -> int:
    value = redis.get("wait_replicas", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"redis.wait_replicas must be an integer >= 0, got {value!r}")
    return value


def _wait_timeout_ms(redis: Mapping[str, Any], server: Mapping[str, Any]) -> int:
    """WAIT's timeout, which must end before the client's own read timeout gives up on the connection."""
    value = _int(redis, "wait_timeout_ms", 1000)
    read_timeout_ms = float(server.get("redis_timeout_seconds", 2.0)) * 1000
    if redis.get("wait_replicas") and value >= read_timeout_ms:
        raise ConfigError(
            f"redis.wait_timeout_ms ({value}) must be below server.redis_timeout_seconds ({read_timeout_ms:.0f} ms)"
        )
    return value


def _partitions(streams: Mapping[str, Any]) -> int:
    count = _int(streams, "partitions", 1)
    if count > MAX_PARTITIONS:
        raise ConfigError(f"streams.partitions must be at most {MAX_PARTITIONS}, got {count}")
    return count


def _opt_str(table: Mapping[str, Any], where: str) -> str | None:
    value = table.get(where.rsplit(".", 1)[-1])
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value


def resolve_secret(value: Any, environ: Mapping[str, str], where: str) -> Secret:
    """A secret from configuration: a literal, or ``env:NAME`` for an environment variable."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string")
    if value.startswith("env:"):
        name = value[4:]
        if name not in environ or not environ[name]:
            raise ConfigError(f"{where} names environment variable {name}, which is not set")
        return Secret(environ[name])
    return Secret(value)


def _source(name: str, spec: Any, environ: Mapping[str, str], providers: list[str]) -> Source:
    where = f"sources.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"[{where}] must be a table")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"source name {name!r} may hold only letters, digits, '-' and '_'")
    provider = _provider(name, spec, providers)
    module = importlib.import_module(f"receiver.providers.{provider}")
    known = SOURCE_KEYS | SOURCE_WIDE_OPTIONS | getattr(module, "KNOWN_OPTIONS", frozenset())
    article = "an" if provider[0] in "aeiou" else "a"
    check_keys(spec, known, f"{where}.{{}} is not an option of {article} {provider} source")
    raw_secrets = spec.get("secrets", [])
    if isinstance(raw_secrets, str):
        raw_secrets = [raw_secrets]
    secrets = tuple(resolve_secret(value, environ, f"{where}.secrets") for value in raw_secrets)
    verify = spec.get("verify", True)
    if not isinstance(verify, bool):
        raise ConfigError(f"{where}.verify must be true or false")
    if verify and not secrets:
        raise ConfigError(
            f"{where} verifies signatures (the default) but has no secrets; set verify = false to opt out"
        )
    options = {key: value for key, value in spec.items() if key not in SOURCE_KEYS}
    _check_options(module, {key: value for key, value in options.items() if key not in SOURCE_WIDE_OPTIONS}, where)
    return Source(
        name=name,
        provider=provider,
        secrets=secrets,
        verify=verify,
        public_url=spec.get("public_url"),
        timestamp_tolerance_s=_int(spec, "timestamp_tolerance_seconds", 300),
        options=options,
    )


def _provider(name: str, spec: Mapping[str, Any], providers: list[str]) -> str:
    """The source's provider; a wrong one is named as the user wrote it (or as the source's name, when the
    provider was left out and the name is not a provider)."""
    choices = ", ".join(sorted(providers))
    if "provider" not in spec:
        if name in providers:
            return name
        raise ConfigError(
            f'sources.{name} has no provider and its name {name!r} is not one of: {choices}; add provider = "..."'
        )
    provider = spec["provider"]
    if provider in providers:
        return str(provider)
    close = difflib.get_close_matches(str(provider), providers, n=1) if isinstance(provider, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"sources.{name}.provider {provider!r} is not one of: {choices}{hint}")


def _check_options(module: Any, options: Mapping[str, Any], where: str) -> None:
    """A provider module that reads options (a generic source, a preset) may refuse them here, at load time:
    it exposes ``check_options(options, where)``, which raises ConfigError naming the key."""
    check = getattr(module, "check_options", None)
    if check is not None:
        check(options, where)

"""inTandem VoiceCall sink: one VoiceCall record per call, kept in step with the transitions stream.

The first transition of a call creates the record (POST); later ones update it (status, duration,
price). The record's uid is remembered in Redis under ``Keys.sink_record("intandem", external_id)``
together with the last call version sent, so a restarted sink, a redelivered entry or a second
consumer group never creates a second record and never sends an older state over a newer one.

Documented (developers.intandem.tech, VoiceCall create/update; ../shared/providers.md §6): the body
fields, the upper-case enums, ``rate``/``price`` as strings, ``duration`` in seconds, Bearer tokens.
**Assumed** and configurable: the paths (``create_path``, ``update_path`` with ``{uid}``), the update
method (PUT with the full body, as the update page requires every field), the names of the external-id
and source-identifier fields, and where the created record's uid is in the answer (``uid_paths``).
See docs/intandem-sink.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from consumer import Consumer, ConsumerOptions, Transition
from receiver.providers.base import dig, normalized_name, number_or_none
from receiver.settings import ConfigError, Secret, resolve_secret
from sinks.retry import RetryPolicy, send
from statemachine.keys import DEFAULT_PREFIX, Keys
from statemachine.store import as_text

log = logging.getLogger("callstream.sinks.intandem")

NAME = "intandem"

#: Canonical state reached → inTandem status. None: keep the record's status (a completed call was
#: answered; the update brings its duration and price).
STATUSES: dict[str, str | None] = {
    "created": "INCOMING_CALL",
    "queued": "INCOMING_CALL",
    "dialing": "INCOMING_CALL",
    "ringing": "INCOMING_CALL",
    "answered": "ANSWERED_BY_STAFF",
    "completed": None,
    "busy": "MISSED",
    "no_answer": "MISSED",
    "canceled": "MISSED",
    "rejected": "MISSED",
    "failed": "MISSED",
}

#: Annotation name → inTandem status. Annotations not listed (``stale``, ``machine_detection``...)
#: change nothing in inTandem.
ANNOTATIONS: dict[str, str] = {"voicemail": "VOICEMAIL_RECEIVED"}

#: The documented status enum; configured tables may only name these.
VALID_STATUSES = frozenset(
    {
        "INCOMING_CALL",
        "ANSWERED_BY_STAFF",
        "MISSED",
        "ANSWERED_BY_CALLS_PROVIDER",
        "MISSED_CALL_HANDLED",
        "VOICEMAIL_RECEIVED",
    }
)
PROVIDER_ANSWERED = "ANSWERED_BY_CALLS_PROVIDER"

#: Providers' direction words (compared as `normalized_name`) → inTandem direction.
DIRECTIONS: dict[str, str] = {
    "inbound": "INBOUND",
    "incoming": "INBOUND",
    "outbound": "OUTBOUND",
    "outgoing": "OUTBOUND",
    "outbound_api": "OUTBOUND",
    "outbound_dial": "OUTBOUND",
}

UID_FIELDS = ("staff_uid", "client_uid", "business_uid")

#: Where the created record's uid may be in the create answer (the answer's shape is not in our sources).
UID_PATHS = ("data.uid", "uid", "data.voice_call.uid")

#: Where values are looked for in the canonical event (dotted paths, first non-empty wins).
DEFAULT_PATHS: dict[str, tuple[str, ...]] = {
    **{name: (f"extras.variables.{name}", f"raw.variables.{name}") for name in UID_FIELDS},
    "rate": ("extras.rate", "raw.rate"),
    "price": ("extras.price", "extras.total_cost", "raw.price"),
    "duration": ("extras.duration_s", "extras.duration", "raw.duration"),
}
DEFAULT_VALUES: dict[str, Any] = {"rate": "0", "price": "0", "duration": 0}


class SinkError(Exception):
    """A transition that cannot be written to inTandem as it is (left to the consumer group's retries)."""


@dataclass(frozen=True, slots=True)
class IntandemConfig:
    """``[sinks.intandem]`` of the callstream configuration."""

    base_url: str
    token: Secret
    create_path: str = "/platform/v1/voice_calls"
    update_path: str = "/platform/v1/voice_calls/{uid}"
    update_method: str = "PUT"
    external_id_field: str = "external_id"
    source_identifier_field: str = "source_identifier"
    external_id: str = "{call_id}"
    source_identifier: str = "{source}"
    provider: str = "VONAGE"
    default_direction: str = "INBOUND"
    uid_paths: tuple[str, ...] = UID_PATHS
    provider_answered_path: str | None = None
    sources: frozenset[str] | None = None
    paths: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_PATHS))
    defaults: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_VALUES))
    statuses: Mapping[str, str | None] = field(default_factory=lambda: dict(STATUSES))
    annotations: Mapping[str, str] = field(default_factory=lambda: dict(ANNOTATIONS))
    group: str = NAME
    record_ttl_s: int = 8 * 24 * 3600
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], environ: Mapping[str, str]) -> IntandemConfig:
        """Checked configuration; `ConfigError` names the key at fault."""
        where = "sinks.intandem"
        base_url = table.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.base_url must be an http(s) URL")
        texts = {
            name: table[name]
            for name in (
                "create_path",
                "update_path",
                "update_method",
                "external_id_field",
                "source_identifier_field",
                "external_id",
                "source_identifier",
                "provider",
                "default_direction",
                "provider_answered_path",
                "group",
            )
            if name in table
        }
        for name, value in texts.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.{name} must be a non-empty string")
        if "{uid}" not in texts.get("update_path", "{uid}"):
            raise ConfigError(f"{where}.update_path must contain {{uid}}")
        paths = dict(DEFAULT_PATHS)
        for name, value in _mapping(table, "fields", where).items():
            chosen = [value] if isinstance(value, str) else value
            if not isinstance(chosen, list) or not all(isinstance(p, str) and p for p in chosen):
                raise ConfigError(f"{where}.fields.{name} must be a dotted path or a list of them")
            paths[str(name)] = tuple(chosen)
        statuses = {**STATUSES, **_mapping(table, "statuses", where)}
        annotations = {**ANNOTATIONS, **_mapping(table, "annotations", where)}
        for name, status in [*statuses.items(), *annotations.items()]:
            if status is not None and status not in VALID_STATUSES:
                raise ConfigError(f"{where}: {name} maps to {status!r}, not one of {sorted(VALID_STATUSES)}")
        sources = table.get("sources")
        if sources is not None and (not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)):
            raise ConfigError(f"{where}.sources must be a list of source names")
        return cls(
            base_url=base_url.rstrip("/"),
            token=resolve_secret(table.get("token"), environ, f"{where}.token"),
            **texts,
            uid_paths=tuple(table.get("uid_paths", UID_PATHS)),
            sources=frozenset(sources) if sources is not None else None,
            paths=paths,
            defaults={**DEFAULT_VALUES, **_mapping(table, "defaults", where)},
            statuses=statuses,
            annotations=annotations,
            record_ttl_s=_positive(table, "record_ttl_seconds", 8 * 24 * 3600, where),
            retry=RetryPolicy(max_attempts=_positive(table, "max_attempts", 5, where)),
        )


def _mapping(table: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{where}.{key}] must be a table")
    return value


def _positive(table: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}.{key} must be a positive integer")
    return value


# -- the mapping: pure functions ----------------------------------------------------------------------


def status_for(transition: Transition, config: IntandemConfig, previous: str | None) -> str | None:
    """The record's new status, or None when this transition changes nothing in inTandem."""
    if transition.kind == "annotation":
        return config.annotations.get(transition.name)
    if transition.to_state not in config.statuses:
        return None
    status = config.statuses[transition.to_state]
    if status == "ANSWERED_BY_STAFF" and config.provider_answered_path:
        if _first(_event_view(transition), (config.provider_answered_path,)):
            status = PROVIDER_ANSWERED
    if status is None:
        return previous or config.statuses.get("answered") or "ANSWERED_BY_STAFF"
    return status


def _event_view(transition: Transition) -> dict[str, Any]:
    return dataclasses.asdict(transition.event)


def _first(document: Mapping[str, Any], paths: Sequence[str]) -> Any:
    for path in paths:
        value = dig(document, path)
        if value not in (None, "", {}, []):
            return value
    return None


def _names(transition: Transition) -> dict[str, str]:
    return {"call_id": transition.call_id, "source": transition.source, "provider": transition.provider}


def external_id(transition: Transition, config: IntandemConfig) -> str:
    return config.external_id.format_map(_names(transition))


def voicecall_body(
    transition: Transition, config: IntandemConfig, status: str, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """The full VoiceCall body for this transition: new facts over what the record already holds.

    Raises `SinkError` naming the required fields found nowhere (event, earlier body, defaults).
    """
    event = _event_view(transition)
    direction = DIRECTIONS.get(normalized_name(transition.event.direction or ""))
    found: dict[str, Any] = {
        "from_number": transition.event.from_number,
        "to_number": transition.event.to_number,
        "direction": direction,
        **{name: _first(event, paths) for name, paths in config.paths.items()},
    }
    body: dict[str, Any] = {
        **{name: value for name, value in config.defaults.items()},
        "direction": config.default_direction,
        **{name: value for name, value in previous.items() if value not in (None, "")},
        **{name: value for name, value in found.items() if value not in (None, "", {}, [])},
        "status": status,
        "provider": config.provider,
        config.external_id_field: external_id(transition, config),
        config.source_identifier_field: config.source_identifier.format_map(_names(transition)),
    }
    body["rate"], body["price"] = str(body["rate"]), str(body["price"])
    duration = number_or_none(body.get("duration"))
    body["duration"] = duration if duration is not None else 0
    missing = [name for name in (*UID_FIELDS, "from_number", "to_number") if body.get(name) in (None, "")]
    if missing:
        raise SinkError(f"call {transition.call_id}: no value for {', '.join(missing)} (event, earlier or defaults)")
    return body


#: Fields the create page does not list: sent only on update.
UPDATE_ONLY = ("price", "duration")


# -- the sink -----------------------------------------------------------------------------------------


class IntandemSink:
    """The consumer-group handler: create or update the call's VoiceCall record."""

    def __init__(self, redis: Redis, keys: Keys, config: IntandemConfig) -> None:
        self.redis = redis
        self.keys = keys
        self.config = config

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token.reveal()}"}

    async def __call__(self, transition: Transition) -> None:
        config = self.config
        if config.sources is not None and transition.source not in config.sources:
            return
        key = self.keys.sink_record(NAME, external_id(transition, config))
        record = {as_text(k): as_text(v) for k, v in (await self.redis.hgetall(key)).items()}
        if int(record.get("version", 0)) >= transition.version:
            return  # already sent, or older than what was sent
        previous: dict[str, Any] = orjson.loads(record["body"]) if record.get("body") else {}
        status = status_for(transition, config, previous.get("status"))
        if status is None:
            return
        body = voicecall_body(transition, config, status, previous)
        uid = record.get("uid")
        if uid is None:
            uid = await self._create(key, {k: v for k, v in body.items() if k not in UPDATE_ONLY})
            if body["duration"] or body["price"] not in ("0", ""):
                await self._update(uid, body)
        else:
            await self._update(uid, body)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"version": transition.version, "body": orjson.dumps(body)})
            pipe.expire(key, config.record_ttl_s)
            await pipe.execute()

    async def _create(self, key: str, body: dict[str, Any]) -> str:
        config = self.config
        response = await send(
            "POST", config.base_url + config.create_path, headers=self._headers, json=body, policy=config.retry
        )
        if not response.ok:
            raise SinkError(f"create answered HTTP {response.status}: {response.body[:300]!r}")
        uid = _first(response.document or {}, config.uid_paths) if isinstance(response.document, dict) else None
        if not isinstance(uid, str) or not uid:
            raise SinkError(f"create answered HTTP {response.status} without a uid at {list(config.uid_paths)}")
        # Remembered at once: from here on a redelivery updates this record instead of creating one.
        await self.redis.hset(key, "uid", uid)
        await self.redis.expire(key, config.record_ttl_s)
        log.info("created VoiceCall %s for %s", uid, body.get(config.external_id_field))
        return uid

    async def _update(self, uid: str, body: dict[str, Any]) -> None:
        config = self.config
        url = config.base_url + config.update_path.format(uid=uid)
        response = await send(config.update_method, url, headers=self._headers, json=body, policy=config.retry)
        if not response.ok:
            raise SinkError(f"update of {uid} answered HTTP {response.status}: {response.body[:300]!r}")


# -- running it ---------------------------------------------------------------------------------------


def load(path: str | None, environ: Mapping[str, str]) -> tuple[IntandemConfig, str, Keys]:
    """The sink's configuration, Redis URL and keys from the callstream configuration file."""
    path = path or environ.get("CALLSTREAM_CONFIG")
    if not path:
        raise ConfigError("no configuration: pass --config or set CALLSTREAM_CONFIG")
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read configuration {path}: {err}") from err
    table = document.get("sinks", {}).get(NAME)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path} has no [sinks.{NAME}] table")
    redis_url = environ.get("REDIS_URL") or document.get("redis", {}).get("url")
    if not redis_url:
        raise ConfigError("no Redis configured: set REDIS_URL or [redis] url")
    streams = document.get("streams", {})
    keys = Keys(str(streams.get("prefix", DEFAULT_PREFIX)), int(streams.get("partitions", 1)))
    return IntandemConfig.from_table(table, environ), redis_url, keys


async def run(config: IntandemConfig, redis_url: str, keys: Keys, name: str | None = None) -> None:
    """Consume until SIGINT/SIGTERM."""
    redis = Redis.from_url(redis_url)
    consumer = Consumer(
        redis,
        config.group,
        IntandemSink(redis, keys, config),
        keys=keys,
        streams=keys.all_transitions(),
        name=name,
        options=ConsumerOptions(),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, consumer.stop)
    try:
        await consumer.run()
    finally:
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sinks.intandem", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", help="callstream TOML configuration with a [sinks.intandem] table")
    parser.add_argument("--name", help="consumer name in the group (default: <host>-<pid>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, redis_url, keys = load(args.config, os.environ)
    except ConfigError as err:
        print(f"intandem sink: {err}", file=sys.stderr)
        return 2
    asyncio.run(run(config, redis_url, keys, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

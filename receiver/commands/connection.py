"""Options every operator command shares (``--config``, ``--redis-url``, ``--prefix``) and how they resolve.

Precedence: an explicit option, then the configuration (``--config`` or ``$CALLSTREAM_CONFIG``; its
``[redis] url`` yields to ``$REDIS_URL`` as in ``serve``), then ``$CALLSTREAM_PREFIX``, then the defaults.
Exit codes: 0 done, 1 Redis unreachable or the operation failed, 2 bad usage or configuration,
3 the thing asked for does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from receiver import redis_client
from receiver.errors import RedisUnavailable
from receiver.providers import PROVIDERS
from receiver.settings import ConfigError, Settings
from statemachine.errors import StoreUnavailable
from statemachine.keys import DEFAULT_PREFIX, Keys
from statemachine.store import UNAVAILABLE_ERRORS

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX_ENV = "CALLSTREAM_PREFIX"
TIMEOUT_S = 5.0

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

#: Errors meaning Redis could not be reached or answered too late.
REDIS_DOWN: tuple[type[Exception], ...] = (StoreUnavailable, RedisUnavailable, *UNAVAILABLE_ERRORS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared options."""
    parser.add_argument("--config", help="TOML configuration (default: $CALLSTREAM_CONFIG, else built-in)")
    parser.add_argument(
        "--redis-url", help=f"Redis URL (default: $REDIS_URL, else the configuration's, else {DEFAULT_REDIS_URL})"
    )
    parser.add_argument(
        "--prefix", help=f"key prefix (default: the configuration's, else ${PREFIX_ENV}, else {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--partitions", type=int, help="partitions of the transitions stream (default: the configuration's, else 1)"
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command works: the settings (sources, retention), the Redis URL and the key names."""

    settings: Settings
    redis_url: str
    keys: Keys


#: What a command does once connected; returns the exit code.
Work = Callable[[Target, Redis], Awaitable[int]]


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Target:
    """The target the options name. Raises `ConfigError` (bad configuration or prefix)."""
    environ = os.environ if environ is None else environ
    settings = Settings.load(args.config, environ, list(PROVIDERS))
    url = args.redis_url or settings.redis_url or DEFAULT_REDIS_URL
    prefix = args.prefix or (settings.key_prefix if settings.from_file else None) or environ.get(PREFIX_ENV)
    partitions = args.partitions or settings.partitions
    try:
        redis_client.parse(url)
        keys = Keys(prefix or DEFAULT_PREFIX, partitions)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return Target(settings=settings, redis_url=url, keys=keys)


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    return redis_client.redacted(url)


def connect(url: str) -> Redis:
    """A client (one server, Sentinel or Cluster) that gives up quickly when Redis is unreachable."""
    return redis_client.async_client(url, max_connections=8, timeout_s=TIMEOUT_S)


def execute(name: str, args: argparse.Namespace, work: Work) -> int:
    """Resolve the target, run ``work`` with a client, and turn the usual failures into exit codes."""
    try:
        target = resolve(args)
    except ConfigError as err:
        print(f"callstream {name}: {err}", file=sys.stderr)
        return EXIT_USAGE

    async def session() -> int:
        client = connect(target.redis_url)
        try:
            return await work(target, client)
        finally:
            await redis_client.close(client)

    try:
        return asyncio.run(session())
    except REDIS_DOWN as err:
        print(f"callstream {name}: cannot reach Redis at {display_url(target.redis_url)}: {err}", file=sys.stderr)
        return EXIT_FAILED

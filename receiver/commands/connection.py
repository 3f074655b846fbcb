"""Options every operator command shares (``--config``, ``--redis-url``, ``--prefix``, ``--data-dir``) and
how they resolve.

Precedence: an explicit option, then the configuration (``--config`` or ``$CALLSTREAM_CONFIG``; its
``[redis] url`` yields to ``$REDIS_URL`` as in ``serve``), then ``$CALLSTREAM_PREFIX``, then the defaults.
With no Redis named anywhere, a command uses the embedded Redis that a running ``callstream serve``
recorded in the same data directory, else ``redis://127.0.0.1:6379/0``; in both cases it says so on stderr.
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
from pathlib import Path

from redis.asyncio import Redis

from receiver import redis_client
from receiver.embedded import recorded_server, redis_dir
from receiver.providers import PROVIDERS
from receiver.queries import REDIS_DOWN
from receiver.settings import ConfigError, Settings
from statemachine.keys import DEFAULT_PREFIX, Keys

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX_ENV = "CALLSTREAM_PREFIX"
DATA_DIR_ENV = "CALLSTREAM_DATA_DIR"
DEFAULT_DATA_DIR = ".callstream"
TIMEOUT_S = 5.0

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared options."""
    parser.add_argument("--config", help="TOML configuration (default: $CALLSTREAM_CONFIG, else built-in)")
    parser.add_argument(
        "--redis-url",
        help="Redis URL (default: $REDIS_URL, else the configuration's, else the embedded Redis of a running "
        f"callstream serve with the same --data-dir, else {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--prefix", help=f"key prefix (default: the configuration's, else ${PREFIX_ENV}, else {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--partitions", type=int, help="partitions of the transitions stream (default: the configuration's, else 1)"
    )
    add_data_dir_argument(parser, "data directory of the callstream serve whose embedded Redis to use")


def add_data_dir_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--data-dir``, shared by ``serve`` (where its embedded Redis lives) and the operator commands."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
        help=f"{purpose} (default: ${DATA_DIR_ENV}, else ./{DEFAULT_DATA_DIR})",
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command works: the settings (sources, retention), the Redis URL and the key names."""

    settings: Settings
    redis_url: str
    keys: Keys
    #: Why this Redis, when nothing named it (the embedded one found in the data dir, or the default).
    origin: str | None = None


#: What a command does once connected; returns the exit code.
Work = Callable[[Target, Redis], Awaitable[int]]


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Target:
    """The target the options name. Raises `ConfigError` (bad configuration or prefix)."""
    environ = os.environ if environ is None else environ
    settings = Settings.load(args.config, environ, list(PROVIDERS))
    url, origin = redis_url(args.redis_url or settings.redis_url, args.data_dir)
    prefix = args.prefix or (settings.key_prefix if settings.from_file else None) or environ.get(PREFIX_ENV)
    partitions = args.partitions or settings.partitions
    try:
        redis_client.parse(url)
        keys = Keys(prefix or DEFAULT_PREFIX, partitions)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return Target(settings=settings, redis_url=url, keys=keys, origin=origin)


def redis_url(named: str | None, data_dir: Path) -> tuple[str, str | None]:
    """The Redis URL to use and, when nothing named one, why this one (for a note on stderr)."""
    if named:
        return named, None
    return embedded_url(data_dir) or (
        DEFAULT_REDIS_URL,
        f"no --redis-url, REDIS_URL or [redis] url given, and no callstream serve with data dir {data_dir} is running",
    )


def embedded_url(data_dir: Path) -> tuple[str, str] | None:
    """The URL of the embedded Redis a running ``callstream serve`` recorded in ``data_dir``, and a note saying so."""
    found = recorded_server(redis_dir(data_dir))
    if found is None:
        return None
    return found.url, f"the embedded Redis of the callstream serve running with data dir {data_dir} ({found.path})"


def announce(name: str, target: Target) -> None:
    """Say on stderr which Redis a command uses when the user did not name it."""
    if target.origin is not None:
        print(f"callstream {name}: using Redis at {display_url(target.redis_url)}: {target.origin}", file=sys.stderr)


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
    announce(name, target)

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

"""``callstream sweep``: settle or flag stuck calls once, or every N seconds (``--every``).

Run it once from cron, or as one long-running process next to a multi-worker ``serve``; several such
processes share the work safely (a Redis lease per round, and every write is deduplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from dataclasses import replace

import orjson

from receiver.app import make_redis
from receiver.commands import connection
from receiver.providers import PROVIDERS
from receiver.settings import ConfigError, Settings
from receiver.sweeper import REDIS_DOWN, Sweeper, run_periodically
from statemachine.store import CallStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration (default: $CALLSTREAM_CONFIG, else built-in)")
    parser.add_argument("--every", type=float, metavar="SECONDS", help="keep sweeping at this interval instead of once")
    connection.add_data_dir_argument(parser, "data directory of the callstream serve whose embedded Redis to use")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.load(args.config, os.environ, list(PROVIDERS))
        if not settings.redis_url:
            # It writes (settles calls, publishes annotations): never to a Redis it merely guessed.
            found = connection.embedded_url(args.data_dir)
            if found is None:
                raise ConfigError(
                    "no Redis configured: set REDIS_URL or [redis] url, or run it next to a running callstream serve"
                )
            settings = replace(settings, redis_url=found[0])
            print(f"callstream sweep: using Redis at {found[0]}: {found[1]}", file=sys.stderr)
        if args.every is not None and args.every <= 0:
            raise ConfigError("--every must be a positive number of seconds")
    except ConfigError as err:
        print(f"callstream sweep: {err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_sweep(settings, args.every))
    except ConfigError as err:
        print(f"callstream sweep: {err}", file=sys.stderr)
        return 2
    except REDIS_DOWN as err:
        print(f"callstream sweep: Redis is unavailable: {err}", file=sys.stderr)
        return 1


async def _sweep(settings: Settings, every: float | None) -> int:
    redis = make_redis(settings)
    try:
        sweeper = Sweeper(CallStore(redis, settings.keys, settings.retention), settings)
        if every is None:
            report = await sweeper.sweep()
            print(orjson.dumps(report.as_dict()).decode())
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_periodically(sweeper, every, stop)
        return 0
    finally:
        await redis.aclose(close_connection_pool=True)

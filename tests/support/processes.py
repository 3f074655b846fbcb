"""Real processes for fault and concurrency tests: a private redis-server and a uvicorn receiver.

Both bind to 127.0.0.1 on a free port and run in their own process group, so a test can SIGKILL or
SIGTERM exactly the processes it started (a receiver's master and its workers), never anything else.
Only the runtime dependencies are needed here (examples/scale_out_demo.py uses it on a runtime install).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from receiver.commands.replay import send
from receiver.embedded import free_port, server_args, start_server, stop_process

REPO = Path(__file__).resolve().parents[2]


def wait_until(check: object, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``check()`` until it returns true, else fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # noqa: S110 - not up yet; polled again below
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        time.sleep(interval_s)


class RedisServer:
    """A private redis-server (never the shared one) whose data survives restarts in ``data_dir``."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True, appendfsync: str = "always") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = server_args(self.port, self.data_dir, appendonly=self.appendonly, appendfsync=self.appendfsync)
        self.process = start_server(args, self.client(), own_session=True, what=f"redis-server on port {self.port}")
        return self

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed beyond what the append-only policy already wrote."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        stop_process(self.process)


def receiver_config(prefix: str, *, redis_timeout_s: float = 2.0, extra: str = "", server: str = "") -> str:
    """A TOML configuration: every built-in provider at /webhooks/<name>, unverified, under ``prefix``."""
    from receiver.providers import PROVIDERS

    sources = "\n".join(f"[sources.{name}]\nverify = false\n" for name in sorted(PROVIDERS))
    return (
        f'[streams]\nprefix = "{prefix}"\n\n[server]\nredis_timeout_seconds = {redis_timeout_s}\n{server}\n'
        f"{sources}\n{extra}"
    )


class Receiver:
    """``python -m uvicorn receiver.asgi:app --factory`` on a free loopback port."""

    def __init__(
        self,
        work_dir: Path,
        redis_url: str,
        prefix: str,
        *,
        workers: int = 2,
        redis_timeout_s: float = 2.0,
        graceful_s: int = 5,
        extra_config: str = "",
        server_config: str = "",
    ) -> None:
        self.work_dir = work_dir
        self.redis_url = redis_url
        self.workers = workers
        self.graceful_s = graceful_s
        self.port = free_port()
        self.config = work_dir / f"callstream-{self.port}.toml"
        self.config.write_text(
            receiver_config(prefix, redis_timeout_s=redis_timeout_s, extra=extra_config, server=server_config)
        )
        self.log = work_dir / f"uvicorn-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            sys.executable, "-m", "uvicorn", "receiver.asgi:app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--timeout-graceful-shutdown", str(self.graceful_s), "--no-access-log",
        ]  # fmt: skip
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        return args

    def start(self, timeout_s: float = 20.0) -> Receiver:
        env = {**os.environ, "REDIS_URL": self.redis_url, "CALLSTREAM_CONFIG": str(self.config)}
        env.pop("CALLSTREAM_PREFIX", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
            )
        try:
            wait_until(self.answers, timeout_s, f"receiver on port {self.port} answering /healthz")
            if self.workers > 1:
                wait_until(lambda: len(self.worker_pids()) >= self.workers, timeout_s, "all workers started")
        except BaseException:
            self.kill()
            raise
        return self

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"receiver exited; see {self.log}:\n{self.log.read_text()[-2000:]}")
        return send(self.url + "/healthz", None, {}, "GET")[0] == 200

    def worker_pids(self) -> list[int]:
        """The worker processes the uvicorn master started (empty with one worker: the master serves)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []
        return [pid for pid in pids if "spawn_main" in _cmdline(pid)]

    def kill(self) -> None:
        """SIGKILL the master and its workers at once (the process group this object started)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM the master, as a deploy would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM and wait; then SIGKILL whatever is left of the group (workers of a killed master)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(self.graceful_s + 10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class ServedReceiver(Receiver):
    """``callstream serve`` (the command a deployment runs: its own HTTP protocol and limits) on a free port."""

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "receiver.cli", "serve", "--config", str(self.config), "--port", str(self.port)]
        return [*args, "--workers", str(self.workers), "--graceful-timeout", str(self.graceful_s)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

"""``callstream serve`` as a real process, as a user starts it: its output read line by line while it runs."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

CLI = [sys.executable, "-m", "receiver.cli"]
#: Variables that would point a process away from the zero-configuration default.
CONFIG_VARIABLES = ("REDIS_URL", "CALLSTREAM_CONFIG", "CALLSTREAM_DATA_DIR", "CALLSTREAM_PREFIX")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without anything that configures callstream, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_VARIABLES}
    # The package is imported from the checkout whatever the working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")]))
    return {**env, **extra}


class ServeProcess:
    """A ``callstream serve`` (or any command line) in its own process group; stdout and stderr merged."""

    def __init__(
        self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None, command: Sequence[str] = CLI
    ) -> None:
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=dict(env if env is not None else clean_environment()),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")  # end of output

    def wait_for(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        """The first line from now on matching ``pattern``; fails with the output so far otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line == "":
                break
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"{pattern!r} not printed within {timeout_s} s; output:\n{self.output()}")

    def output(self) -> str:
        """Everything printed so far."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line:
                self.seen.append(line)
        return "".join(self.seen)

    def finish(self, timeout_s: float = 30) -> int:
        """Wait for the process to exit by itself; its exit code."""
        code = self.process.wait(timeout_s)
        time.sleep(0.1)  # let the reader thread take the last lines
        return code

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM, as a deploy or Ctrl-C would stop it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish(timeout_s)

    def kill(self) -> None:
        """SIGKILL whatever is left of its process group (after a failed test)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.terminate()
        self.kill()

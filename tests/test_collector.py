"""A serving worker's garbage collector: requests in flight no longer set it off, garbage cycles still go.

Each check runs in a fresh interpreter built the way uvicorn builds a worker (``receiver.asgi:app``), so
the test process's own collector is left alone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.serve import clean_environment

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "[sources.minivoice]\nprovider = 'minivoice'\nverify = false\n"

#: Builds a worker app as uvicorn does, then holds 5,000 dicts at once (the objects of requests in flight)
#: and makes 3,000 reference cycles of garbage, reporting what the collector did.
WORKER = textwrap.dedent(
    """
    import gc, weakref
    from receiver.asgi import app
    app()
    runs = []
    gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
    in_flight = [{"request": n} for n in range(5_000)]
    print("threshold", gc.get_threshold()[0], "frozen", gc.get_freeze_count(), "runs", len(runs))

    class Node:
        pass

    first = Node()
    first.me = first
    alive = weakref.ref(first)
    del first
    for _ in range(3_000):
        node = Node()
        node.me = node
        node.payload = [0] * 4
    del node
    print("cycle_collected", alive() is None)
    """
)


def run_worker(tmp_path: Path, server: str = "") -> dict[str, str]:
    config = tmp_path / "callstream.toml"
    config.write_text(server + SOURCE)
    env = clean_environment(CALLSTREAM_CONFIG=str(config))
    done = subprocess.run(
        [sys.executable, "-c", WORKER], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    return dict(zip(words[::2], words[1::2], strict=True))


def test_requests_in_flight_do_not_set_off_the_collector(tmp_path: Path) -> None:
    """Start-up objects are frozen out of collections, and 5,000 live objects run none (Python's default
    threshold of 700 would have run several, each promoting them towards a full collection)."""
    seen = run_worker(tmp_path)
    assert seen["threshold"] == "20000"
    assert int(seen["frozen"]) > 10_000  # modules, settings and the app, never walked again
    assert seen["runs"] == "0"


def test_garbage_cycles_are_still_collected(tmp_path: Path) -> None:
    """A reference cycle dropped by the code is freed once enough garbage has followed it, with no
    explicit collection: memory held by cycles stays bounded."""
    seen = run_worker(tmp_path, "[server]\ngc_young_threshold = 1000\n")
    assert seen["threshold"] == "1000"
    assert seen["cycle_collected"] == "True"


@pytest.mark.parametrize("value", ["0", "-5", "'many'", "true"])
def test_a_threshold_that_is_not_a_positive_integer_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "callstream.toml"
    config.write_text(f"[server]\ngc_young_threshold = {value}\n" + SOURCE)
    env = clean_environment(CALLSTREAM_CONFIG=str(config))
    done = subprocess.run(
        [sys.executable, "-c", "from receiver.asgi import app; app()"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "gc_young_threshold must be a positive integer" in done.stderr

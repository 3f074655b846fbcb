"""The benchmark compares the receiver with the yardstick as shipped: its copy is the shared file, byte for byte."""

from __future__ import annotations

import hashlib

from bench import procs

#: sha256 of the shared yardstick (`../shared/bench/yardstick_app.py`) as it was shipped.
SHIPPED_SHA256 = "1f6b511bbd547140300c2841d27c24b1e9d0922fc8daee6fb3afb90988460ef5"


def test_the_copy_is_the_shipped_yardstick_byte_for_byte() -> None:
    """An edit to the copy (a pool, a parser, a route) would change the baseline every ratio is taken against."""
    copy = procs.COPIED_YARDSTICK.read_bytes()
    assert hashlib.sha256(copy).hexdigest() == SHIPPED_SHA256
    if procs.SHARED_YARDSTICK.exists():  # next to the repository: the benchmark loads this very file
        assert procs.SHARED_YARDSTICK.read_bytes() == copy


def test_the_benchmark_loads_the_unmodified_yardstick() -> None:
    """uvicorn is pointed at the shared file's directory (else the copy's), module `yardstick_app`."""
    target = procs.app_target("yardstick")
    assert target[-1] == "yardstick_app:app"
    loaded = procs.yardstick_file()
    assert target[:2] == ["--app-dir", str(loaded.parent)]
    assert hashlib.sha256(loaded.read_bytes()).hexdigest() == SHIPPED_SHA256

"""``callstream serve`` says at start-up whether the C speedups it depends on for speed are active."""

from __future__ import annotations

import pytest

from receiver.commands import serve


def test_start_up_line_names_each_speedup(capsys: pytest.CaptureFixture[str]) -> None:
    """With the default dependencies installed, uvloop, httptools and hiredis are all reported on, no warning."""
    serve._report_speedups()
    out, err = capsys.readouterr()
    assert out == "callstream: speedups: uvloop on, httptools on, hiredis on\n"
    assert err == ""

"""The Dockerfile's install step, run for real: only the files it copies, `pip install .` in a fresh venv."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def copied_paths() -> list[str]:
    """Source paths of the Dockerfile's COPY instructions."""
    paths: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"COPY\s+(.+)\s+\S+$", line.strip())
        if match:
            paths.extend(match.group(1).split())
    return paths


@pytest.mark.slow
def test_dockerfile_copy_and_install_step_builds_a_working_command(tmp_path: Path) -> None:
    """What the image copies is enough for `pip install .`, the installed `callstream` runs, and the console's
    templates and assets are installed with it."""
    context = tmp_path / "context"
    context.mkdir()
    for name in copied_paths():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    help_text = subprocess.run(
        [str(venv / "bin" / "callstream"), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "serve" in help_text
    assert "replay" in help_text
    script = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from statemachine.script import apply_step_source as s; print(len(s()))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(script.stdout) > 1000
    # The console's templates and assets are package data: the installed (not editable) package has them.
    console = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from receiver.console import render, routes; import os; render.ENV.get_template('call.html');"
            "print(sorted(os.listdir(routes.STATIC)))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert console.stdout.split() == ["['console.css',", "'live.js']"]

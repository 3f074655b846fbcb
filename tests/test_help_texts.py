"""Every ``--help`` a user can ask for reads as plain text in a terminal: no reStructuredText markup
(````literal````, ```interpreted```, ``:role:``) leaking from docstrings."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
MARKUP = re.compile(r"``|:(?:class|func|meth|mod|attr|data|ref):|(?<![\w`])`[^`\s][^`]*`(?!`)")


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """A parser and every subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_callstream_help_texts_have_no_markup() -> None:
    texts = {parser.prog: parser.format_help() for parser in parsers(build_parser())}
    assert {"callstream", "callstream serve", "callstream deadletter redrive", "callstream calls show"} <= set(texts)
    leaks = {prog: MARKUP.findall(text) for prog, text in texts.items() if MARKUP.search(text)}
    assert leaks == {}


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "sinks.intandem"],
        ["-m", "receiver.commands.openapi"],
        ["examples/scale_out_demo.py"],
        ["examples/print_consumer.py"],
    ],
)
def test_script_help_texts_have_no_markup(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("usage: ")
    assert MARKUP.findall(result.stdout) == []

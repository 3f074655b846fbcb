"""The ``callstream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from receiver import logs
from receiver.commands import calls, deadletter, openapi, replay, serve, stats, sweep, tail

COMMANDS = {
    "serve": (serve, "run the receiver (embedded Redis when REDIS_URL is unset)"),
    "replay": (replay, "send recorded scenarios to a running receiver"),
    "tail": (tail, "follow the transitions stream"),
    "sweep": (sweep, "settle or flag calls stuck in a non-terminal state"),
    "calls": (calls, "show a call's state and history"),
    "deadletter": (deadletter, "list, show or redrive dead-lettered requests"),
    "stats": (stats, "stream lengths, consumer groups' lag and pending, dead-letter lengths"),
    "openapi": (openapi, "print the OpenAPI description of the HTTP surface"),
}


DESCRIPTION = (
    "Receive voice providers' call-status webhooks, run each call through one lifecycle, publish its "
    "transitions to Redis Streams; and the commands to operate it."
)
EPILOG = "Start with: callstream serve (README.md, 'Two commands'). Each command has its own --help."


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (its texts are plain: no markup, they are read in a terminal)."""
    parser = argparse.ArgumentParser(prog="callstream", description=DESCRIPTION, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()
    module, _help = COMMANDS[args.command]
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())

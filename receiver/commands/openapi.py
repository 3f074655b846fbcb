"""Print the OpenAPI description of the HTTP surface (as kept in ``docs/openapi.json``).

python -m receiver.commands.openapi > docs/openapi.json
"""

from __future__ import annotations

import argparse
import sys

from receiver.openapi import build_spec, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", action="append", default=[], help="offer this source name as an example (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(render(build_spec(args.source)))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m receiver.commands.openapi",
        description="Print the OpenAPI description of the HTTP surface, as kept in docs/openapi.json.",
    )
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))

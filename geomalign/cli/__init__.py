"""Command-line interface: ``geomalign <command> ...``.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``; the parser it
adds sets ``func`` to a callable taking the parsed arguments and returning an exit code. Subcommands
parse, call one public library function, write the result and return; no computation happens here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from geomalign._version import __version__

# Modules under geomalign.cli, one per subcommand, in the order --help lists them.
_COMMANDS: tuple[str, ...] = (
    "info", "extract", "analyze", "plot", "demo", "finetune", "intervene", "toy"
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="geomalign",
        description="Representation geometry of vision-language models: "
        "extract hidden states, measure, compare, intervene.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"geomalign {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"geomalign.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in-process and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

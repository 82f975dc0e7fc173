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
from pathlib import Path

from geomalign._version import __version__

# One module under geomalign.cli per subcommand, in the order --help lists them, with its one-line
# summary. A command's module (and the libraries it needs) is imported only when it runs, so that
# --help and light commands such as ``info`` start without loading torch or transformers.
COMMANDS: dict[str, str] = {
    "info": "describe an activation store",
    "extract": "extract per-layer hidden states of a model on image/caption pairs",
    "merge": "join the per-rank stores of a sharded extraction into one store",
    "import": "import activations made elsewhere (NumPy, safetensors, torch, Arrow) into a store",
    "export": "write a view of a store as safetensors or NumPy files",
    "analyze": "per-layer alignment curves, layer maps and ID profiles of a store",
    "plot": "redraw the figures of a results folder or table",
    "demo": "run the whole pipeline on the built-in testbed (a few minutes on a CPU)",
    "finetune": "fine-tune the testbed fully, on a layer window and on other windows",
    "intervene": "causal effect curves (transplant, skip, ablate, knockout) and probes",
    "toy": "build the built-in testbed (tiny base and tuned VLMs) or score checkpoints on it",
}


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Raise FileExistsError (reported by :func:`main`) if ``path`` exists and not ``overwrite``."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first argument that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level argument parser.

    Every subcommand is listed with its summary; only ``command`` (if given) gets its full parser,
    which imports its module.
    """
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
    for name, summary in COMMANDS.items():
        if name == command:
            # a module cannot be named after the keyword "import"
            module = "import_" if name == "import" else name
            importlib.import_module(f"geomalign.cli.{module}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in-process and return its exit code.

    Bad input (a ValueError, TypeError or OSError, such as a missing or malformed store) is
    reported on stderr in one line and gives exit code 1; ``-vv`` shows the traceback instead.
    A ``--device`` option is checked here, before the command runs, for every command that has
    one.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "device", None) is not None:  # before any model loads or data is read
            from geomalign._validation import check_device

            check_device(args.device, "--device")
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as error:  # bad input: what and where, no traceback
        if args.verbose >= 2:
            raise
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"geomalign {command}: error: {error}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

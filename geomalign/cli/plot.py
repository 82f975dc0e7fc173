"""``geomalign plot RESULTS_DIR``: redraw the figures of a saved results table."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.analysis import ResultsTable
from geomalign.cli import COMMANDS
from geomalign.cli._args import names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``plot`` subcommand."""
    parser = subparsers.add_parser(
        "plot",
        help=COMMANDS["plot"],
        description=__doc__.split("\n")[0].replace("``", ""),
    )
    parser.add_argument(
        "results", type=Path, help="a folder written by `geomalign analyze` (or its results.csv)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="figure folder (default: RESULTS_DIR/figures)"
    )
    parser.add_argument(
        "--formats",
        type=names,
        default=["png"],
        help="figure formats, comma-separated: png,pdf,svg (default png)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the table and write its figures."""
    from geomalign.plotting import plot_results  # matplotlib: imported when the command runs

    csv_path = args.results / "results.csv" if args.results.is_dir() else args.results
    out = args.out or csv_path.parent / "figures"
    paths = plot_results(ResultsTable.from_csv(csv_path), out, formats=args.formats)
    print(f"wrote {len(paths)} figures in {out}")  # noqa: T201 - the command's output
    return 0

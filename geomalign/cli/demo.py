"""``geomalign demo [--out DIR]``: base vs tuned testbed VLMs, extracted, analysed, summarised."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.cli import COMMANDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description=__doc__.split("\n")[0].replace("``", ""),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("geomalign-demo"),
        help="output folder (default: geomalign-demo)",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="small testbed and few pairs: a quick check that everything runs",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="testbed cache (default: $GEOMALIGN_CACHE/testbed or ~/.cache/geomalign/testbed)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/BLAS threads (default 1: fastest for the testbed's sizes; "
        "0 keeps the current setting)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of testbed, pairs and analysis")
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="testbeds per role, seeds SEED, SEED+1, ... (default 3; 1: one base, one tuned)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its summary."""
    from geomalign.demo import run_demo  # models and training: imported when the command runs

    result = run_demo(
        args.out,
        small=args.small,
        n_seeds=args.seeds,
        cache_dir=args.cache_dir,
        device=args.device,
        num_threads=args.threads or None,
        random_state=args.seed,
        progress=True,
    )
    print(result.summary, end="")  # noqa: T201 - the command's output
    print(  # noqa: T201
        f"\nwrote {result.table}, {result.out_dir / 'summary.txt'} and "
        f"{len(result.figures)} figures in {result.out_dir / 'figures'}"
    )
    return 0

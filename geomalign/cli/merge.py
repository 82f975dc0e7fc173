"""``geomalign merge IN1 IN2 ... --out OUT``: join the per-rank stores of a sharded extraction.

Every input must hold the same samples, checkpoints (with the same provenance) and views; each
row done in any input is copied into OUT. Rows done in no input stay not done, so OUT can be
resumed with ``geomalign extract``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomalign.cli import COMMANDS, refuse_existing
from geomalign.store import ActivationStore, merge_stores


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``merge`` subcommand."""
    parser = subparsers.add_parser(
        "merge", help=COMMANDS["merge"], description=__doc__.split("\n")[0]
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="the stores to merge")
    parser.add_argument("--out", type=Path, required=True, help="the merged store to create (.h5)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Merge ``args.inputs`` into ``args.out`` and print how many samples each view holds."""
    refuse_existing(args.out, args.overwrite)
    out = merge_stores(args.inputs, out=args.out, overwrite=args.overwrite)
    with ActivationStore(out) as store:
        lines = [f"{len(args.inputs)} stores -> {out} ({store.n_samples} samples)"]
        for view in store.views():
            info = store.view_info(*view)
            status = "complete" if info.complete else f"{info.n_done}/{info.n_samples} samples done"
            lines.append(f"  {'/'.join(view)}: {status}")
    print("\n".join(lines))  # noqa: T201 - the command's output
    return 0

"""``geomalign finetune``: stage-2 fine-tuning of the testbed, full vs a layer window vs others."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomalign.analysis import ResultsTable
from geomalign.cli import COMMANDS, refuse_existing
from geomalign.testbed import TestbedConfig, build_testbed
from geomalign.tuning import RULES, compare_windows, curve_from_table, select_window
from geomalign.tuning.selection import REFERENCE_KINDS

logger = logging.getLogger(__name__)

#: Testbed configurations by preset name.
PRESETS = {"full": TestbedConfig, "small": TestbedConfig.small}


def _window(text: str) -> range:
    start, sep, stop = text.partition(":")
    try:
        window = range(int(start), int(stop))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:STOP (0-based decoder blocks, STOP excluded); got {text!r}"
        ) from None
    if not sep or not len(window):
        raise argparse.ArgumentTypeError(f"expected START:STOP with START < STOP; got {text!r}")
    return window


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``finetune`` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help=COMMANDS["finetune"],
        description=__doc__.split("\n")[0] + " Writes the runs as a results table (CSV) and "
        "prints accuracy and wall time as % of the full run.",
    )
    parser.add_argument("--out", type=Path, required=True, help="results table to write (.csv)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    chosen = parser.add_argument_group("the window (one of --window, --curve)")
    where = chosen.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--window",
        type=_window,
        metavar="START:STOP",
        help="0-based decoder blocks to train, STOP excluded (e.g. 2:4)",
    )
    where.add_argument(
        "--curve",
        type=Path,
        metavar="RESULTS.csv",
        help="a results table (geomalign analyze) holding the per-layer curve "
        "to select the window from",
    )
    chosen.add_argument(
        "--analysis",
        default="id-profile",
        help="rows of --curve to use: analysis name (default id-profile)",
    )
    chosen.add_argument(
        "--checkpoint", default=None, help="rows of --curve to use: checkpoint (needed if several)"
    )
    chosen.add_argument(
        "--view",
        default=None,
        help="rows of --curve to use: view, e.g. image/last (needed if several)",
    )
    chosen.add_argument(
        "--measure",
        default=None,
        help="rows of --curve to use: measure, e.g. id-gride (needed if several)",
    )
    chosen.add_argument("--rule", choices=RULES, default="peak", help="selection rule")
    chosen.add_argument("--width", type=int, default=3, help="window layers for --rule peak")
    chosen.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="fraction of the curve's range for --rule threshold",
    )
    chosen.add_argument(
        "--min-prominence",
        type=float,
        default=0.0,
        help="smallest peak prominence for --rule peak/phase",
    )
    runs = parser.add_argument_group("the runs")
    runs.add_argument(
        "--references",
        nargs="*",
        choices=REFERENCE_KINDS,
        default=list(REFERENCE_KINDS),
        help="windows of the same size to compare with (default: all)",
    )
    runs.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    runs.add_argument("--steps", type=int, default=None, help="steps (default: the testbed's)")
    runs.add_argument("--lr", type=float, default=None, help="learning rate (default: testbed's)")
    runs.add_argument("--projector", action="store_true", help="window runs train the projector")
    runs.add_argument(
        "--lora-rank",
        type=int,
        default=None,
        help="window runs train LoRA adapters of this rank (needs peft)",
    )
    testbed = parser.add_argument_group("the testbed")
    testbed.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="full",
        help="testbed configuration (default full)",
    )
    testbed.add_argument("--cache-dir", type=Path, default=None, help="testbed cache folder")
    testbed.add_argument("--device", default="cpu", help="torch device (default cpu)")
    testbed.add_argument(
        "--seed", type=int, default=0, help="seed of the testbed and of the random reference window"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the comparison, write the table and print the summary."""
    refuse_existing(args.out, args.overwrite)
    testbed = build_testbed(
        PRESETS[args.preset](seed=args.seed), cache_dir=args.cache_dir, device=args.device
    )
    blocks = args.window
    if blocks is None:
        layers, values = curve_from_table(
            ResultsTable.from_csv(args.curve),
            analysis=args.analysis,
            checkpoint=args.checkpoint,
            view=args.view,
            measure=args.measure,
        )
        window = select_window(
            values,
            layers=layers,
            rule=args.rule,
            width=args.width,
            threshold=args.threshold,
            min_prominence=args.min_prominence,
        )
        logger.info(
            "selected layers %d-%d (%s): %s", window.first, window.last, window.rule, window.numbers
        )
        blocks = window.blocks
    comparison = compare_windows(
        testbed,
        blocks,
        references=args.references,
        seeds=args.seeds,
        steps=args.steps,
        lr=args.lr,
        projector=args.projector,
        lora_rank=args.lora_rank,
        random_state=args.seed,
        device=args.device,
    )
    comparison.to_table().to_csv(args.out)
    print(comparison.format_summary())  # noqa: T201 - the command's output
    print(f"wrote {args.out}")  # noqa: T201
    return 0

"""``geomalign finetune``: layer-selective fine-tuning of a checkpoint (or of the testbed).

With ``--model`` and ``--data``: fine-tune a Hugging Face (vision-)language checkpoint on an
instruction file, fully, on a window of decoder blocks or with LoRA on the window, and with
``--compare`` run several kinds with equal steps and write the table and a figure. Without
``--model``: the testbed's stage 2, full vs the window vs other windows. Windows are ``A-B``,
0-based decoder blocks A to B inclusive, or ``auto`` (chosen from ``--from RESULTS.csv``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomalign.cli import COMMANDS, refuse_existing
from geomalign.cli._args import names
from geomalign.testbed import TestbedConfig
from geomalign.tuning.selection import REFERENCE_KINDS, RULES

logger = logging.getLogger(__name__)

#: Testbed configurations by preset name.
PRESETS = {"full": TestbedConfig, "small": TestbedConfig.small}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``finetune`` subcommand."""
    parser = subparsers.add_parser(
        "finetune", help=COMMANDS["finetune"], description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (checkpoint runs: results.csv, finetune.png, run folders) or results "
        "table .csv (testbed)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    chosen = parser.add_argument_group("the window")
    chosen.add_argument(
        "--window",
        required=True,
        help="A-B: 0-based decoder blocks A..B inclusive (e.g. 6-16); 'all' (checkpoints: full "
        "fine-tuning); 'auto': chosen from --from",
    )
    chosen.add_argument(
        "--from", dest="curve", type=Path, metavar="RESULTS.csv", help="table for --window auto"
    )
    chosen.add_argument("--analysis", default="id-profile", help="rows of --from (id-profile)")
    chosen.add_argument("--checkpoint", default=None, help="rows of --from: checkpoint")
    chosen.add_argument("--view", default=None, help="rows of --from: view, e.g. image/last")
    chosen.add_argument("--measure", default=None, help="rows of --from: measure, e.g. id-gride")
    chosen.add_argument("--rule", choices=RULES, default="peak", help="selection rule")
    chosen.add_argument("--width", type=int, default=3, help="window layers for --rule peak")
    chosen.add_argument("--threshold", type=float, default=0.5, help="for --rule threshold")
    chosen.add_argument("--min-prominence", type=float, default=0.0, help="for --rule peak/phase")
    runs = parser.add_argument_group("the runs")
    runs.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    runs.add_argument("--steps", type=int, default=None, help="optimizer steps")
    runs.add_argument("--lr", type=float, default=None, help="peak learning rate")
    runs.add_argument("--projector", action="store_true", help="window runs train the projector")
    runs.add_argument("--lora-rank", type=int, default=None, help="LoRA of this rank on the window")
    runs.add_argument("--device", default=None, help="torch device (checkpoints: 'cpu' or unset)")
    checkpoint = parser.add_argument_group("a checkpoint (omit --model for the testbed)")
    checkpoint.add_argument("--model", default=None, help="checkpoint folder or hub id")
    checkpoint.add_argument("--data", type=Path, help="training rows (LLaVA JSON or JSONL)")
    checkpoint.add_argument("--eval-data", type=Path, help="held-out rows (default: none)")
    checkpoint.add_argument("--image-root", type=Path, help="image folder (default: --data's)")
    checkpoint.add_argument(
        "--compare",
        default=None,
        help="comma-separated kinds with equal steps: full,window,lora-window,early,late,random",
    )
    checkpoint.add_argument("--batch-size", type=int, default=4, help="rows per process per step")
    checkpoint.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation")
    checkpoint.add_argument("--gradient-checkpointing", action="store_true")
    checkpoint.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto")
    checkpoint.add_argument("--max-length", type=int, default=None, help="cut longer rows")
    checkpoint.add_argument("--save-steps", type=int, default=None, help="checkpoint interval")
    checkpoint.add_argument(
        "--resume", action="store_true", help="resume each run from its last checkpoint in --out"
    )
    testbed = parser.add_argument_group("the testbed")
    testbed.add_argument("--preset", choices=sorted(PRESETS), default="full")
    testbed.add_argument("--cache-dir", type=Path, default=None, help="testbed cache folder")
    testbed.add_argument(
        "--references",
        nargs="*",
        choices=REFERENCE_KINDS,
        default=list(REFERENCE_KINDS),
        help="testbed: windows of the same size to compare with (default: all)",
    )
    testbed.add_argument(
        "--seed", type=int, default=0, help="seed of the testbed and of the random window"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the fine-tuning (checkpoint or testbed) and write its results."""
    import os

    resuming = args.model is not None and args.resume
    if int(os.environ.get("RANK", "0")) == 0 and not resuming:  # rank 0 decides for all
        refuse_existing(args.out, args.overwrite)
    return _run_testbed(args) if args.model is None else _run_checkpoint(args)


def _run_checkpoint(args: argparse.Namespace) -> int:
    import os

    from geomalign.tuning import compare_runs, count_blocks, load_instructions
    from geomalign.tuning.window_runs import KINDS

    if args.data is None:
        raise ValueError("--model needs --data (the training rows)")
    kinds = ["window" if args.lora_rank is None else "lora-window"]
    if args.compare is not None:
        kinds = names(args.compare)
        if not kinds or any(k not in KINDS for k in kinds):
            raise ValueError(f"--compare takes kinds among {','.join(KINDS)}; got {args.compare!r}")
    train = load_instructions(args.data, image_root=args.image_root)
    held_out = (
        load_instructions(args.eval_data, image_root=args.image_root) if args.eval_data else []
    )
    if not held_out and args.compare is not None:
        raise ValueError("--compare scores every run: give held-out rows with --eval-data")
    n_blocks = count_blocks(args.model)
    window = window_from_args(args, n_blocks)
    if not isinstance(window, range):  # "all"
        kinds, window = ["full"], range(n_blocks)
    comparison = compare_runs(
        args.model,
        train,
        held_out,
        window=window,
        kinds=kinds,
        seeds=args.seeds,
        output_dir=args.out,
        max_length=args.max_length,
        random_state=args.seed,
        steps=args.steps or 100,
        lr=args.lr or 2e-5,
        batch_size=args.batch_size,
        gradient_accumulation=args.grad_accum,
        gradient_checkpointing=args.gradient_checkpointing,
        precision=args.precision,
        save_steps=args.save_steps,
        resume=args.resume,
        projector=args.projector,
        lora_rank=args.lora_rank or 8,
        device=args.device,
        save_final=True,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        comparison.to_table().to_csv(args.out / "results.csv")
        metric = "exact_match" if held_out else None
        if metric is not None:
            comparison.plot(args.out / "finetune.png", metric)
        print(comparison.format_summary(metric or "exact_match"))  # noqa: T201 - the output
        print(f"wrote {args.out}")  # noqa: T201
    return 0


def _run_testbed(args: argparse.Namespace) -> int:
    from geomalign.testbed import build_testbed
    from geomalign.tuning import compare_windows

    testbed = build_testbed(
        PRESETS[args.preset](seed=args.seed), cache_dir=args.cache_dir, device=args.device or "cpu"
    )
    blocks = window_from_args(args, testbed.config.text_layers)
    if isinstance(blocks, str):  # "all"
        raise ValueError("the testbed comparison always has a full run: give a window A-B")
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
        device=args.device or "cpu",
    )
    comparison.to_table().to_csv(args.out)
    print(comparison.format_summary())  # noqa: T201 - the command's output
    print(f"wrote {args.out}")  # noqa: T201
    return 0


def window_from_args(args: argparse.Namespace, n_blocks: int) -> range | str:
    """The window the options ask for: a range of blocks, or ``"all"``."""
    from geomalign.tuning import parse_window

    if args.window == "all":
        return "all"
    if args.window != "auto":
        if args.curve is not None:
            raise ValueError("--from is for --window auto; drop one of them")
        return parse_window(args.window, n_blocks)
    if args.curve is None:
        raise ValueError("--window auto needs --from RESULTS.csv (a table of geomalign analyze)")
    from geomalign.analysis import ResultsTable
    from geomalign.tuning import curve_from_table, select_window

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
        "selected layers %d-%d = blocks %d-%d (%s): %s",
        window.first,
        window.last,
        window.blocks.start,
        window.blocks.stop - 1,
        window.rule,
        window.numbers,
    )
    if window.blocks.stop > n_blocks:
        raise ValueError(f"--from chose blocks up to {window.blocks.stop - 1} of {n_blocks}")
    return window.blocks

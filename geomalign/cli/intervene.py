"""``geomalign intervene curves|probes ...``: causal effect curves and probe curves.

``curves`` scores a base and a tuned checkpoint under layer transplantation and image-token
interventions (on the built-in testbed with ``--testbed``, or on any LLaVA-style pair with
benchmark tasks from ``--task`` files and a caption task from ``--data``); ``probes`` fits
per-layer linear probes on an activation store.
Each writes a results table (CSV) and a figure into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from geomalign.cli import COMMANDS, refuse_existing
from geomalign.cli._args import names
from geomalign.interventions.effects import ANALYSES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from geomalign.analysis.table import ResultsTable


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in names(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from exc


def _add_calibration(parser: argparse.ArgumentParser, *, permutations: int) -> None:
    parser.add_argument(
        "--permutations",
        type=int,
        default=permutations,
        metavar="N",
        help=f"permutations of the null / sign-flip test (default {permutations})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, resamples, nulls")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace results in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _calibration(args: argparse.Namespace) -> dict[str, object]:
    """The library keywords of the options :func:`_add_calibration` adds."""
    return {
        "n_permutations": args.permutations,
        "random_state": args.seed,
        "progress": not args.no_progress,
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``intervene`` subcommand and its ``curves`` and ``probes`` actions."""
    parser = subparsers.add_parser(
        "intervene",
        help=COMMANDS["intervene"],
        description=__doc__.split("\n")[0],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    curves = actions.add_parser("curves", help="effect curves of a base/tuned checkpoint pair")
    source = curves.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--testbed",
        choices=("small", "full"),
        default=None,
        help="build or reuse the shapes-world testbed and use its held-out QA and caption sets",
    )
    source.add_argument("--base", default=None, help="hub id or folder of the base checkpoint")
    curves.add_argument("--tuned", default=None, help="hub id or folder of the tuned checkpoint")
    curves.add_argument(
        "--data",
        type=Path,
        default=None,
        help="with --base/--tuned: pairs (.jsonl/.csv table or COCO .json) "
        "whose captions make the caption task",
    )
    curves.add_argument("--image-dir", type=Path, default=None, help="image folder of --data")
    curves.add_argument(
        "--template",
        default=None,
        help="--data caption prompt with {image} (default: LLaVA-1.5's short-caption instruction)",
    )
    curves.add_argument(
        "--task",
        dest="task_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="with --base/--tuned, repeatable: a benchmark task: .jsonl/.csv table (open QA, "
        "multiple choice, captioning, text-only), VQAv2 questions .json (with --annotations) or a "
        "COCO-QA split folder; images under --image-dir",
    )
    curves.add_argument("--annotations", type=Path, default=None, help="VQAv2 annotations .json")
    curves.add_argument("--kind", choices=("qa", "choice", "caption"), default=None)
    curves.add_argument(
        "--metric",
        default=None,
        help="scoring rule of the --task files: vqa|exact|relaxed (QA), choice-norm|choice, "
        "cider|loglik (captions); default the first of their kind",
    )
    curves.add_argument(
        "--task-template",
        default=None,
        help="prompt with {question} (and {image}) instead of the processor's chat template",
    )
    curves.add_argument("--instruction", default=None, help="text after each question")
    curves.add_argument("--max-new-tokens", type=int, default=None, help="decoding budget")
    curves.add_argument("--processor", default=None, help="processor (default: the tuned one's)")
    curves.add_argument("--limit", type=int, default=None, help="at most N items per task file")
    curves.add_argument(
        "--subsample", action="store_true", help="with --limit: a random subset seeded by --seed"
    )
    curves.add_argument(
        "--testbed-benchmarks",
        type=names,
        default=[],
        help="--testbed: held-out sets scored by generation, among qa,text-qa,choice,caption",
    )
    curves.add_argument("--cache-dir", type=Path, default=None, help="testbed cache folder")
    curves.add_argument(
        "--testbed-tasks",
        type=names,
        default=None,
        help="--testbed: held-out sets scored teacher-forced, among qa,caption (default both)",
    )
    curves.add_argument(
        "--analyses",
        type=names,
        default=list(ANALYSES),
        help=f"comma-separated, among {','.join(ANALYSES)} (default all)",
    )
    curves.add_argument("--width", type=int, default=2, help="sliding window width (default 2)")
    curves.add_argument("--stride", type=int, default=1, help="sliding window step (default 1)")
    curves.add_argument(
        "--shell",
        choices=("adjacent", "base", "tuned"),
        default="adjacent",
        help="what moves with transplanted blocks (default adjacent)",
    )
    curves.add_argument(
        "--visual-on",
        type=names,
        default=["tuned"],
        help="checkpoints for image-token interventions: base,tuned",
    )
    curves.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="score only the first N held-out images (default all)",
    )
    curves.add_argument("--batch-size", type=int, default=32, help="items per forward pass")
    curves.add_argument("--device", default="cpu", help="e.g. cuda:0 (default cpu)")
    curves.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    curves.add_argument(
        "--resamples",
        type=int,
        default=1000,
        metavar="N",
        help="cluster-bootstrap resamples for CIs (default 1000)",
    )
    _add_calibration(curves, permutations=1000)
    curves.set_defaults(func=run_curves)

    probes = actions.add_parser("probes", help="per-layer linear probes on an activation store")
    probes.add_argument("store", type=Path, help="an activation store (.h5)")
    probes.add_argument("--checkpoint", required=True, help="checkpoint in the store")
    probes.add_argument("--labels", type=names, required=True, help="label columns, e.g. colour_0")
    probes.add_argument(
        "--views",
        type=names,
        default=["text/mean", "image/mean"],
        help="pooled views, comma-separated (default text/mean,image/mean)",
    )
    probes.add_argument("--layers", type=_ints, default=None, help="layers (default all shared)")
    probes.add_argument("--no-transfer", action="store_true", help="skip cross-view transfer")
    probes.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    probes.add_argument("--C", type=float, default=1.0, help="inverse L2 strength (default 1)")
    _add_calibration(probes, permutations=0)
    probes.set_defaults(func=run_probes)


def _write(table: ResultsTable, figure: Figure, out: Path, stem: str) -> int:
    """Write ``table`` to ``<out>/<stem>.csv`` and ``figure`` to ``<out>/<stem>.png``."""
    table_path, figure_path = out / f"{stem}.csv", out / f"{stem}.png"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(table_path)
    figure.savefig(figure_path, dpi=120)
    sys.stdout.write(f"wrote {len(table)} rows to {table_path} and {figure_path}\n")
    return 0


def run_curves(args: argparse.Namespace) -> int:
    """Load the checkpoints and tasks, run the effect curves, write effects.csv and effects.png."""
    from geomalign.interventions.effects import run_effect_curves

    refuse_existing(args.out / "effects.csv", args.overwrite)
    curves = run_effect_curves(
        testbed=args.testbed,
        base=args.base,
        tuned=args.tuned,
        data=args.data,
        image_dir=args.image_dir,
        template=args.template,
        cache_dir=args.cache_dir,
        tasks=args.testbed_tasks,
        benchmarks=args.testbed_benchmarks,
        task_files=args.task_files,
        annotations=args.annotations,
        prompting={
            key: value
            for key, value in (
                ("kind", args.kind),
                ("metric", args.metric),
                ("template", args.task_template),
                ("instruction", args.instruction),
                ("max_new_tokens", args.max_new_tokens),
            )
            if value is not None
        },
        processor=args.processor,
        max_images=args.max_images,
        limit=args.limit,
        subsample=args.subsample,
        analyses=args.analyses,
        width=args.width,
        stride=args.stride,
        shell=args.shell,
        visual_checkpoints=args.visual_on,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        n_resamples=args.resamples,
        **_calibration(args),
    )
    from geomalign.analysis.effect_curves import effects_table
    from geomalign.interventions.plotting import plot_effect_curves

    return _write(effects_table(curves), plot_effect_curves(curves), args.out, "effects")


def run_probes(args: argparse.Namespace) -> int:
    """Fit the probes on the store and write probes.csv and probes.png."""
    from geomalign.interventions.plotting import plot_probe_curves
    from geomalign.interventions.probe_curves import probe_curves

    refuse_existing(args.out / "probes.csv", args.overwrite)
    table = probe_curves(
        args.store,
        args.checkpoint,
        args.labels,
        views=args.views,
        layers=args.layers,
        transfer=not args.no_transfer,
        n_splits=args.folds,
        C=args.C,
        **_calibration(args),  # type: ignore[arg-type]
    )
    return _write(table, plot_probe_curves(table), args.out, "probes")

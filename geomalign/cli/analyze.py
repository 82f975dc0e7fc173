"""``geomalign analyze STORE --measures ... --out DIR``: results table, figures and summary."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from geomalign import stats
from geomalign.analysis import Calibration, ResultsTable, analyze_store, families
from geomalign.cli import COMMANDS, refuse_existing
from geomalign.cli._args import jobs, modality_view, names
from geomalign.store import ActivationStore


def _role(text: str) -> tuple[str, list[str]]:
    role, sep, members = text.partition("=")
    if not sep or not role.strip() or not names(members):
        raise argparse.ArgumentTypeError(
            f"expected ROLE=CHECKPOINT,CHECKPOINT,... (e.g. tuned=tuned-s0,tuned-s1); got {text!r}"
        )
    return role.strip(), names(members)


#: The level at which ``summary.txt`` calls a layer significant.
ALPHA = 0.05


def _draws(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0; got {text!r}")
    return value


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that build a :class:`~geomalign.analysis.Calibration`."""
    group = parser.add_argument_group("calibration")
    group.add_argument(
        "--permutations",
        type=_draws,
        default="auto",
        metavar="N|auto",
        help="permutations of the permutation null (0: no p-values; default auto: enough for "
        f"one layer to pass --correction at p <= {ALPHA} over the store's layers, at least "
        "100: 100 for max-t and auto, 659 for holm or bh over 33 layers)",
    )
    group.add_argument(
        "--correction",
        choices=families.CORRECTIONS,
        default="auto",
        help="correction across the layers of a curve in summary.txt: max-t (family-wise, from "
        "the joint draws of the layers), holm (family-wise), bh (false discovery rate), none, "
        "or auto (default: max-t where the layers were drawn jointly, else holm)",
    )
    group.add_argument(
        "--resamples",
        type=int,
        default=100,
        metavar="N",
        help="bootstrap resamples for CIs (0: no CIs; default 100)",
    )
    group.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level of the CIs (default 0.95)"
    )
    group.add_argument(
        "--max-samples",
        type=int,
        default=2000,
        metavar="N",
        help="subsample size for measures other than streamed linear CKA "
        "(default 2000; 0: all samples)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of subsamples, nulls, bootstrap")


def permutations_for(args: argparse.Namespace, n_layers: int) -> int:
    """``--permutations``, with ``auto`` resolved for curves of ``n_layers`` layers.

    ``auto`` is :func:`geomalign.stats.draws_needed` for the correction over ``n_layers``
    tests at :data:`ALPHA` (one-sided, as permutation p-values are), and at least 100; max-T
    (``max-t``, ``auto``) needs the draws of one test whatever the number of layers.
    """
    if args.permutations != "auto":
        return int(args.permutations)
    tests = n_layers if args.correction in ("holm", "bh") else 1
    return max(100, stats.draws_needed(tests, ALPHA))


def resamples_warning(table: ResultsTable, n_resamples: int, correction: str) -> str:
    """A one-line warning when no tuning-change layer can pass ``correction`` at :data:`ALPHA`.

    Tuning-change p-values are two-sided, from ``n_resamples`` half-samples: the smallest is
    ``2 / (n_resamples + 1)``, and after Holm or BH over L layers L times that; max-T's is
    ``1 / (n_resamples + 1)`` whatever L. Empty when some layer can pass, or the table has no
    tuning-change p-value.
    """
    rows = [r for r in table.select(analysis="tuning-change") if r.p_value is not None]
    if not rows or n_resamples < 1:
        return ""
    method = families.resolve(rows, correction)
    layers = {r.layer for r in rows}
    tests = len(layers) if method in ("holm", "bh") else 1
    alternative = "greater" if method == "max-t" else "two-sided"
    floor = tests * stats.p_value_floor(n_resamples, alternative=alternative)
    if floor <= ALPHA:
        return ""
    need = stats.draws_needed(tests, ALPHA, alternative=alternative)
    return (
        f"warning: with --resamples {n_resamples} the smallest {method}-adjusted "
        f"tuning-change p over {len(layers)} layers is {min(1.0, floor):.2g} > {ALPHA}: no layer "
        f"can be called significant; use --resamples {need} or more (time grows in proportion)"
    )


def calibration_from(args: argparse.Namespace, *, n_layers: int = 1) -> Calibration:
    """The Calibration the parsed options describe, for curves of ``n_layers`` layers."""
    return Calibration(
        n_permutations=permutations_for(args, n_layers),
        n_resamples=args.resamples,
        confidence=args.confidence,
        max_samples=args.max_samples or None,
        random_state=args.seed,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``analyze`` subcommand."""
    parser = subparsers.add_parser(
        "analyze",
        help=COMMANDS["analyze"],
        description=__doc__.split("\n")[0].replace("``", ""),
    )
    parser.add_argument("store", help="an activation store (.h5)")
    parser.add_argument(
        "--measures",
        type=names,
        required=True,
        help="comma-separated registry names, e.g. cka-linear,mutual-knn,ot-sinkhorn,id-gride",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (results.csv, summary.txt, figures/)"
    )
    parser.add_argument(
        "--map-measures",
        type=names,
        default=None,
        help="measures for layer x layer maps (default: the first two-view measure; '' for none)",
    )
    parser.add_argument(
        "--base", default=None, help="reference checkpoint or role (default: the first)"
    )
    parser.add_argument(
        "--role",
        type=_role,
        action="append",
        default=None,
        metavar="ROLE=CKPT,CKPT,...",
        help="several checkpoints (seeds) per role, paired by position across roles; repeat per "
        "role, e.g. --role base=base-s0,base-s1 --role tuned=tuned-s0,tuned-s1: per-seed curves "
        "plus the mean and between-seed range per role",
    )
    for side, what in (("image", "image"), ("text", "caption")):
        parser.add_argument(
            f"--{side}",
            type=modality_view,
            default=(side, None),
            metavar="MODALITY[/POOL]",
            help=f"{what} view (default: {side} with mean or last pooling)",
        )
    parser.add_argument(
        "--min-prominence",
        type=float,
        default=0.0,
        help="smallest ID peak prominence counted as an abstraction phase",
    )
    parser.add_argument(
        "--formats",
        type=names,
        default=["png"],
        help="figure formats, comma-separated: png,pdf,svg (default png)",
    )
    parser.add_argument(
        "--parquet",
        action="store_true",
        help="also write results.parquet (needs pyarrow: pip install 'geomalign[parquet]')",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    parser.add_argument(
        "--device", default=None, help="where the measures compute, e.g. cuda:0 (default cpu)"
    )
    parser.add_argument(
        "--jobs",
        type=jobs,
        default=None,
        help="analyses run at once, each in a worker process sharing the cores; -1: every core "
        "(default 1; the table is the same whatever the number)",
    )
    add_calibration_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Analyse ``args.store`` and write the results into ``args.out``.

    ``results.csv`` is rewritten after each analysis, so an error stops the run with the finished
    analyses saved; the summary and figures follow once all are done.
    """
    from geomalign.report import write_results  # matplotlib: imported when the command runs

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(
            f"--out {args.out} is a file; give a folder for results.csv, summary.txt and figures/."
        )
    results = args.out / "results.csv"
    refuse_existing(results, args.overwrite)
    if args.parquet:  # checked before the run, which may take hours
        if importlib.util.find_spec("pyarrow") is None:
            raise ValueError(
                "--parquet needs pyarrow; install it: pip install 'geomalign[parquet]'."
            )
        refuse_existing(args.out / "results.parquet", args.overwrite)
    args.out.mkdir(parents=True, exist_ok=True)

    def save(name: str, table: ResultsTable) -> None:
        # written whole and renamed, so that results.csv is always a complete table
        partial = table.to_csv(args.out / "results.csv.partial")
        partial.replace(results)

    with ActivationStore(args.store) as store:
        n_layers = max(len(store.view_info(*view).layers) for view in store.views())
    calibration = calibration_from(args, n_layers=n_layers)
    table = analyze_store(
        args.store,
        measures=args.measures,
        map_measures=args.map_measures,
        base=args.base,
        roles=dict(args.role) if args.role else None,
        image=args.image,
        text=args.text,
        calibration=calibration,
        min_prominence=args.min_prominence,
        progress=True,
        on_analysis=save,
        device=args.device,
        n_jobs=args.jobs,
    )
    written = write_results(table, args.out, formats=args.formats, correction=args.correction)
    tables = [written.table]
    if args.parquet:
        tables.append(table.to_parquet(args.out / "results.parquet"))
    print(written.summary.read_text(), end="")  # noqa: T201 - the command's output
    if warning := resamples_warning(table, calibration.n_resamples, args.correction):
        print(warning, file=sys.stderr)  # noqa: T201
    print(  # noqa: T201
        f"wrote {', '.join(map(str, tables))}, {written.summary} and "
        f"{len(written.figures)} figures in {args.out / 'figures'}"
    )
    return 0

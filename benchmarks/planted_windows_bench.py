"""Planted-window recovery: do the analyses find the blocks a tuning changed, and only those?

For each seed, a testbed is built (or reused) and its stage 2 is rerun on a known part only
(:mod:`geomalign.testbed.planted`): an early, a middle and a late window of ``--width`` decoder
blocks, the projector alone (the null variant: no block changes) and everything (full tuning).
Each variant is analysed against the seed's base model (:func:`geomalign.testbed.planted_study`)
and each analysis's reading (:mod:`geomalign.testbed.recovery`) is scored:

- a window variant is *recovered* when the located window has IoU >= 0.5 with the planted one;
- the full variant is recovered when the analysis reports a change at all (a window or a change
  from layer 0, since embeddings and projector change too);
- a *false alarm* is a block window reported for the null variant (its projector changed, so a
  change from layer 0 on, "input", is the right answer for the image-side analyses).

Significance across a curve's layers or a transplant's windows uses the summary's default
correction (``"auto"``: max-T over the tuning-change curve's shared half-samples, Holm over the
transplant windows). The table gives the counts k/n over seeds per variant and analysis;
``--out`` also writes ``table.csv``, ``located.csv`` (every seed's located window),
``recovery.png`` (the table as a figure) and ``seed<N>/results.csv`` (every row the readings
were made from, to read them again under another rule). Run on the small testbed:
``python benchmarks/planted_windows_bench.py --seeds 0 1 2 3 4 --out planted/`` (about 5
CPU-minutes, testbeds and variants built once and cached);
``--replot planted/`` redraws ``recovery.png`` from a ``located.csv`` without running anything.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from geomalign.testbed import (
    PLANTED_KINDS,
    TestbedConfig,
    build_testbed,
    planted_blocks,
    planted_study,
    recovered,
)
from geomalign.testbed.planted_study import ANALYSES


def _verdict(kind: str, planted: range, located) -> bool:
    """Recovery (window and full variants) or false alarm (null variant)."""
    if kind == "null":
        return located.blocks is not None
    if kind == "full":
        return located.changed
    return recovered(planted, located)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", choices=["small", "full"], default="small")
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--resamples", type=int, default=299)
    parser.add_argument("--images", type=int, default=60, help="held-out images scored")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("planted-windows"))
    parser.add_argument(
        "--replot", type=Path, default=None, help="redraw DIR/recovery.png from DIR/located.csv"
    )
    args = parser.parse_args()
    if args.replot is not None:
        with open(args.replot / "located.csv", newline="") as fh:
            _figure(list(csv.DictReader(fh)), args.replot)
        return
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    hits: dict[tuple[str, str], list[bool]] = {}
    rows = []
    for seed in args.seeds:
        config = (
            TestbedConfig.small(seed=seed) if args.preset == "small" else TestbedConfig(seed=seed)
        )
        testbed = build_testbed(config, cache_dir=args.cache_dir, progress=False)
        study = planted_study(
            testbed,
            args.out / f"seed{seed}",
            width=args.width,
            seed=seed,
            n_pairs=args.pairs,
            n_resamples=args.resamples,
            max_images=args.images,
        )
        study.table.to_csv(args.out / f"seed{seed}" / "results.csv")
        for kind in PLANTED_KINDS:
            for analysis in ANALYSES:
                located = study.located[kind][analysis]
                verdict = _verdict(kind, study.planted[kind], located)
                hits.setdefault((kind, analysis), []).append(verdict)
                rows.append(
                    [seed, kind, list(study.planted[kind]), analysis, str(located), verdict]
                )
        print(f"seed {seed}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    n_blocks = config.text_layers
    head = ["analysis", *(f"{k} {_planted(k, n_blocks, args.width)}" for k in PLANTED_KINDS)]
    table = [
        [analysis, *(_rate(hits[kind, analysis]) for kind in PLANTED_KINDS)]
        for analysis in ANALYSES
    ]
    print(
        f"\nPlanted-window recovery: {args.preset} testbed ({n_blocks} blocks), seeds "
        f"{args.seeds}, windows of {args.width} blocks, {args.pairs} held-out pairs, "
        f"{args.resamples} resamples, transplant on the captions of {args.images} images.\n"
        "Cells: recovered k/n (window variants: IoU >= 0.5; full: a change reported); "
        "null column: FALSE ALARMS k/n (a block window reported).\n"
    )
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(len(head))]
    for line in [head, *table]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
    print(f"\n{time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "table.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([head, *table])
    with open(args.out / "located.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seed", "variant", "planted_blocks", "analysis", "located", "verdict"])
        writer.writerows(rows)
    with open(args.out / "located.csv", newline="") as fh:
        _figure(list(csv.DictReader(fh)), args.out)


def _figure(located: list[dict[str, str]], out: Path) -> None:
    """``recovery.png``: per analysis and variant, the share of seeds recovered (the null
    variant: false alarms), with the counts k/n in each cell."""
    import numpy as np
    from matplotlib.figure import Figure

    kinds = list(dict.fromkeys(r["variant"] for r in located))
    analyses = list(dict.fromkeys(r["analysis"] for r in located))
    counts = np.zeros((len(analyses), len(kinds), 2), dtype=int)
    for r in located:
        cell = counts[analyses.index(r["analysis"]), kinds.index(r["variant"])]
        cell += [r["verdict"] == "True", 1]
    rate = counts[..., 0] / np.maximum(counts[..., 1], 1)
    good = np.where([k == "null" for k in kinds], 1 - rate, rate)  # green = the right answer
    fig = Figure(figsize=(1.6 * len(kinds) + 3, 0.5 * len(analyses) + 1.4))
    ax = fig.subplots()
    ax.imshow(good, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", alpha=0.55)
    for (i, j), _ in np.ndenumerate(good):
        ax.text(j, i, f"{counts[i, j, 0]}/{counts[i, j, 1]}", ha="center", va="center")
    planted = {r["variant"]: r["planted_blocks"] for r in located}
    ax.set_xticks(
        range(len(kinds)),
        [f"{k}\nfalse alarms" if k == "null" else f"{k}\nblocks {planted[k][1:-1]}" for k in kinds],
        fontsize=8,
    )
    ax.set_yticks(range(len(analyses)), analyses, fontsize=8)
    seeds = len({r["seed"] for r in located})
    ax.set_title(
        f"planted-window recovery over {seeds} seeds (window: IoU >= 0.5; full: a change "
        "found; null: a block window reported)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out / "recovery.png", dpi=120)


def _planted(kind: str, n_blocks: int, width: int) -> str:
    blocks = planted_blocks(kind, n_blocks, width=width)
    if kind == "null":
        return "(no block; false alarms)"
    return f"(blocks {blocks.start}-{blocks.stop - 1})"


def _rate(verdicts: list[bool]) -> str:
    return f"{sum(verdicts)}/{len(verdicts)}"


if __name__ == "__main__":
    main()

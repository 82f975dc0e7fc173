"""Selective fine-tuning on the testbed: full stage 2 vs the ID-selected window vs early/late.

The seed study fine-tuned only layers 6-16 of a 32-layer 7B LLaVA and kept ~99 % of full
fine-tuning quality at ~86 % of its training time. This script asks the same question on the
testbed (6 decoder blocks), end to end:

1. build (or reuse) the testbed;
2. extract the stage-1 (base) checkpoint on held-out shapes pairs (image-only prompt, last prompt
   token, as in the seed study), take its intrinsic-dimension profile (GRIDE) over the block
   outputs (layers 1..L: at layer 0 every sample's last token is the same embedding) and choose a
   window of ``--width`` layers around its peak (:func:`geomalign.tuning.select_window`);
3. fine-tune the base checkpoint on the stage-2 data, for each seed: everything (projector, LLM),
   the selected window only, and the early, late and a random window of the same size, same
   steps;
4. print held-out accuracy, wall time and CPU time as % of the full run (mean ± std over seeds).

Wall times are measured on whatever the machine is doing meanwhile; the load average is printed
before and after. Torch runs on ``--threads`` threads (default 1): on a shared machine one thread
per process keeps the runs' times comparable, where several threads stall on each other.

Run: ``.venv/bin/python benchmarks/selective_finetune_bench.py [--small] [--seeds 0 1 2 3 4]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from geomalign.analysis import id_profile
from geomalign.data.shapes import make_shapes
from geomalign.extract import extract
from geomalign.testbed import TestbedConfig, build_testbed
from geomalign.tuning import compare_windows, select_window

# Offset of the seed of the profiled pairs from the testbed's world seed (pairs never trained on).
HELD_OUT_SEED_OFFSET = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="the small testbed preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=2, help="layers in the selected window")
    parser.add_argument("--pairs", type=int, default=500, help="held-out pairs for the profile")
    parser.add_argument("--view", default="image/last", help="view whose ID profile selects")
    parser.add_argument("--cache-dir", type=Path, default=None, help="testbed cache")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("geomalign").setLevel(logging.WARNING)
    logging.getLogger("geomalign.tuning").setLevel(logging.INFO)

    load_before = os.getloadavg()
    config = TestbedConfig.small() if args.small else TestbedConfig()
    start = time.perf_counter()
    testbed = build_testbed(config, cache_dir=args.cache_dir)
    print(
        f"testbed {'small' if args.small else 'full'} ({testbed.root}), ready in "
        f"{time.perf_counter() - start:.0f} s; base qa_accuracy "
        f"{testbed.metrics['base']['qa_accuracy']:.3f}, tuned "
        f"{testbed.metrics['tuned']['qa_accuracy']:.3f}"
    )

    modality, pooling = args.view.split("/")
    world = make_shapes(
        args.pairs, random_state=config.seed + HELD_OUT_SEED_OFFSET, image_size=config.image_size
    )
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "base.h5"
        extract(
            testbed.base,
            world.pairs,
            store,
            checkpoint_name="base",
            poolings=(pooling,),
            modalities=(modality,),
            batch_size=64,
            progress=False,
        )
        profile = id_profile(
            store,
            ("base", modality, pooling),
            measure="id-gride",
            layers=range(1, config.text_layers + 1),
        )
    layers = [row.layer for row in profile]
    values = [row.value for row in profile]
    window = select_window(values, layers=layers, rule="peak", width=args.width)
    print(f"ID profile of base {args.view} (GRIDE, {args.pairs} held-out pairs):")
    print(
        "  "
        + "  ".join(f"L{layer}: {value:.2f}" for layer, value in zip(layers, values, strict=True))
    )
    numbers = ", ".join(f"{k}={v:.2f}" for k, v in window.numbers.items())
    print(
        f"selected layers {window.first}-{window.last} = blocks "
        f"[{window.blocks.start}, {window.blocks.stop}) of {config.text_layers} ({numbers})"
    )

    start = time.perf_counter()
    comparison = compare_windows(
        testbed,
        window.blocks,
        references=("early", "late", "random"),
        seeds=args.seeds,
        progress=False,
    )
    elapsed = time.perf_counter() - start
    print(
        f"\n{len(comparison.runs)} stage-2 runs of {comparison.runs[0].steps} steps in "
        f"{elapsed:.0f} s"
    )
    for metric in ("qa_accuracy", "caption_token_accuracy"):
        print()
        print(comparison.format_summary(metric))
    print("\nper run (seed, name, wall s, CPU s, qa_accuracy, caption_token_accuracy):")
    for run in comparison.runs:
        print(
            f"  {run.seed} {run.name:<9} {run.wall_time:7.1f} {run.cpu_time:7.1f} "
            f"{run.metrics['qa_accuracy']:.3f} {run.metrics['caption_token_accuracy']:.3f}"
        )
    load_after = os.getloadavg()
    print(
        f"\nload average (1, 5, 15 min) before: {load_before[0]:.1f} {load_before[1]:.1f} "
        f"{load_before[2]:.1f}; after: {load_after[0]:.1f} {load_after[1]:.1f} "
        f"{load_after[2]:.1f} on {os.cpu_count()} cores; torch threads: {args.threads}"
    )


if __name__ == "__main__":
    main()

"""Selective fine-tuning: what a window run costs against a full run, and where the saving is.

Two parts (``--part testbed|llava|both``, default both).

**llava**: a mid-size LLaVA built from a configuration (12 decoder blocks of width 256, a 2-layer
CLIP tower, 64 image tokens per image) trained with :func:`geomalign.tuning.finetune` (the
Hugging Face ``Trainer``) for the same steps on the same random batches: full fine-tuning, the
middle window (blocks 4-7), the same window without the graph stop, both again with gradient
checkpointing, and LoRA on the window. Each case prints wall and CPU time, time in optimizer
steps, tokens/s, trainable share and optimizer-state bytes; medians of ``--repeats`` alternating
rounds. The saving splits into (a) the backward pass stopping at the window's first block (the
time of forward + backward, i.e. wall minus optimizer time) and (b) fewer optimizer states and
updates (the optimizer time and bytes).

**testbed**: full stage 2 vs the ID-selected window vs early/late, as below.

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

Run: ``.venv/bin/python benchmarks/selective_finetune_bench.py [--part llava] [--small]
[--seeds 0 1 2 3 4]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from geomalign.analysis import id_profile
from geomalign.data.shapes import make_shapes
from geomalign.extract import extract
from geomalign.testbed import TestbedConfig, build_testbed
from geomalign.tuning import compare_windows, finetune, select_window

# The mid-size LLaVA: decoder blocks, width, vocabulary, image side and patch (64 image tokens).
LLAVA_BLOCKS, LLAVA_WIDTH, VOCAB, IMAGE, PATCH = 12, 256, 512, 32, 4
WINDOW = range(4, 8)


def mid_llava(seed: int = 0) -> LlavaForConditionalGeneration:
    """A LLaVA-1.5-shaped model of about 8 M parameters, random weights."""
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE,
        patch_size=PATCH,
    )
    text = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=LLAVA_WIDTH,
        intermediate_size=2 * LLAVA_WIDTH,
        num_hidden_layers=LLAVA_BLOCKS,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=VOCAB - 1,
        image_seq_length=(IMAGE // PATCH) ** 2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config)


class RandomConversations(torch.utils.data.Dataset):
    """Rows of 64 image tokens, a 32-token prompt and a 32-token scored response."""

    def __init__(self, n: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        n_image = (IMAGE // PATCH) ** 2
        self.text = torch.randint(1, VOCAB - 1, (n, 64), generator=generator)
        self.images = torch.randn(n, 3, IMAGE, IMAGE, generator=generator)
        self.n_image = n_image

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.cat(
            [self.text[i, :1], torch.full((self.n_image,), VOCAB - 1), self.text[i, 1:]]
        )
        labels = torch.full_like(ids, -100)
        labels[-32:] = ids[-32:]
        return {"input_ids": ids, "labels": labels, "pixel_values": self.images[i : i + 1]}


def llava_part(steps: int, repeats: int, batch_size: int) -> None:
    cases = {
        "full": {"blocks": "all"},
        "window": {"blocks": WINDOW},
        "window, no stop": {"blocks": WINDOW, "stop_gradient": False},
        "full + ckpt": {"blocks": "all", "gradient_checkpointing": True},
        "window + ckpt": {"blocks": WINDOW, "gradient_checkpointing": True},
        "window + ckpt, no stop": {
            "blocks": WINDOW,
            "gradient_checkpointing": True,
            "stop_gradient": False,
        },
        "lora-window r=16": {"blocks": WINDOW, "method": "lora", "lora_rank": 16},
    }
    data = RandomConversations(64)
    times: dict[str, list] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            for name, options in cases.items():
                result = finetune(
                    mid_llava(),
                    data,
                    output_dir=Path(folder) / "run",
                    steps=steps,
                    lr=1e-4,
                    batch_size=batch_size,
                    device="cpu",
                    **options,
                )
                times[name].append(result)
    n_params = sum(p.numel() for p in mid_llava().parameters())
    print(
        f"\nmid-size LLaVA: {n_params / 1e6:.1f} M parameters, {LLAVA_BLOCKS} blocks of width "
        f"{LLAVA_WIDTH}, window = blocks {WINDOW.start}-{WINDOW.stop - 1}; {steps} steps of "
        f"{batch_size} rows x 128 tokens; medians of {repeats}"
    )
    print(
        f"{'case':<24} {'wall s':>7} {'% full':>7} {'CPU s':>7} {'fwd+bwd s':>10} "
        f"{'optim s':>8} {'tok/s':>7} {'trainable':>9} {'optim MiB':>9}"
    )
    reference = float(np.median([r.costs.wall_time for r in times["full"]]))
    for name, results in times.items():
        wall = float(np.median([r.costs.wall_time for r in results]))
        optim = float(np.median([r.optimizer_time for r in results]))
        cpu = float(np.median([r.costs.cpu_time for r in results]))
        tokens = float(np.median([r.tokens_per_second for r in results]))
        last = results[-1]
        print(
            f"{name:<24} {wall:>7.2f} {100 * wall / reference:>7.1f} {cpu:>7.2f} "
            f"{wall - optim:>10.2f} {optim:>8.2f} {tokens:>7.0f} "
            f"{100 * last.trainable.fraction:>8.1f}% "
            f"{last.state['optimizer_state_bytes'] / 2**20:>9.1f}"
        )


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
    parser.add_argument("--part", choices=("testbed", "llava", "both"), default="both")
    parser.add_argument("--steps", type=int, default=20, help="llava part: steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="llava part: rounds")
    parser.add_argument("--batch-size", type=int, default=4, help="llava part: rows per step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("geomalign").setLevel(logging.WARNING)
    if args.part in ("llava", "both"):
        llava_part(args.steps, args.repeats, args.batch_size)
    if args.part == "llava":
        return
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

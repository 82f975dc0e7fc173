"""Replicate the study's geometry and causal figures on LLaVA-1.5-7B and its stage-1 base.

What it runs, in order (every step writes into ``--out``):

1. extraction: COCO image/caption pairs through the tuned model (``llava-hf/llava-1.5-7b-hf``)
   and the stage-1 base (Vicuna-7B-v1.5 + CLIP + the pre-trained projector, assembled by
   :func:`geomalign.extract.load_llava_stage1`), mean and last-token pooling, every layer;
2. geometry: ``analyze_store`` (linear CKA, mutual k-NN) with its figures, and the study's
   neighbourhood overlap (k = 30, last token, base vs tuned text states) per layer, printed
   beside the study's values;
3. causal: the two-part split (tuned blocks ``[0, s)`` + base blocks ``[s, L)``), its reverse and
   the attention knock-out of image tokens, on COCO-QA image questions and on the same questions
   asked about the caption without the image (exact match of the greedy answer), with CIs
   clustered by image and figures; the study's split accuracies are printed beside ours.

On a GPU with hub access (about 16 GB in float16), with COCO 2014 val images, the COCO-QA test
split and COCO captions::

    python examples/replicate_study.py --coco /data/coco --coco-qa /data/cocoqa/test \\
        --out study/ --samples 2500 --qa-items 1000

``--dry-run`` runs every step on the built-in testbed instead (tiny checkpoints built on the
CPU in seconds; its COCO-QA-layout folder written from the shapes world), end to end.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from geomalign import metrics
from geomalign.analysis import Calibration, analyze_store, effects_table
from geomalign.data import load_coco_captions, make_shapes
from geomalign.extract import extract, load_adapter, load_llava_stage1
from geomalign.interventions import (
    Benchmark,
    intervention_effects,
    load_coco_qa,
    plot_effect_curves,
    prompt_task,
)
from geomalign.report import write_results
from geomalign.store import ActivationStore

# The study's numbers (from its repository's result files; see the README's replication notes).
STUDY_OVERLAP = {1: 0.539, 2: 0.542, 14: 0.190, 31: 0.368, 32: 0.341}
STUDY_SPLIT = {1: 0.498, 31: 0.678}  # image questions, tuned blocks 0..split, base after
STUDY_TUNED, STUDY_BASE = 0.664, 0.418


def _dry_run_inputs(out: Path, args: argparse.Namespace) -> tuple:
    """Testbed checkpoints, shapes pairs and a COCO-QA-layout folder made from them."""
    from geomalign.testbed import TestbedConfig, build_testbed

    config = TestbedConfig(
        n_train=48, n_test=16, vision_hidden_size=16, vision_heads=2, text_hidden_size=16,
        text_heads=2, text_intermediate_size=32, batch_size=16, lm_steps=2, vision_steps=2,
        stage1_steps=2, stage2_steps=2,
    )  # fmt: skip
    testbed = build_testbed(config, cache_dir=out / "testbed-cache")
    world = make_shapes(args.samples, random_state=1, image_size=config.image_size)
    folder, images = out / "coco-qa" / "test", out / "coco-qa" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    numbers = {sample: k for k, sample in enumerate(world.pairs.ids)}
    for k in range(len(world)):
        world.pairs.image(k).save(images / f"COCO_val2014_{k:012d}.jpg")
    questions = world.questions[: args.qa_items]
    for name, values in (
        ("questions", [q.question for q in questions]),
        ("answers", [q.answer for q in questions]),
        ("img_ids", [str(numbers[q.sample_id]) for q in questions]),
    ):
        (folder / f"{name}.txt").write_text("\n".join(values) + "\n", encoding="utf-8")
    captions = {k: world.pairs.captions[k] for k in range(len(world))}
    return (
        load_adapter(testbed.tuned),
        load_adapter(testbed.base),
        world.pairs,
        folder,
        images,
        captions,
    )


def _inputs(args: argparse.Namespace) -> tuple:
    pairs = load_coco_captions(
        args.coco / "annotations" / "captions_val2014.json", args.coco / "val2014"
    )
    if 0 < args.samples < len(pairs):
        draw = np.random.default_rng(args.seed).choice(len(pairs), args.samples, replace=False)
        pairs = pairs.subset(np.sort(draw))
    options = {"dtype": args.dtype, "device": args.device}
    tuned = load_adapter(args.tuned, **options)
    base = load_llava_stage1(reference=args.tuned, **options)
    everything = load_coco_captions(  # a caption of every image, for the text-only questions
        args.coco / "annotations" / "captions_val2014.json", args.coco / "val2014"
    )
    captions = {int(i): c for i, c in zip(everything.ids, everything.captions, strict=True)}
    return tuned, base, pairs, args.coco_qa, args.coco / "val2014", captions


def _geometry(store: Path, out: Path, n_resamples: int) -> None:
    calibration = Calibration(n_permutations=n_resamples, n_resamples=n_resamples)
    table = analyze_store(store, measures=["cka-linear", "mutual-knn"], base="base",
                          calibration=calibration)  # fmt: skip
    written = write_results(table, out / "geometry")
    print(f"geometry: {len(table)} rows, {len(written.figures)} figures in {out / 'geometry'}")
    print("neighbourhood overlap base vs tuned (text, last token, k=30): layer, ours, study")
    with ActivationStore(store) as acts:
        for layer in acts.view_info("tuned", "text", "last").layers[1:]:
            base = acts.read("base", "text", "last", layer=layer)
            tuned = acts.read("tuned", "text", "last", layer=layer)
            ours = metrics.mutual_knn(base, tuned, k=min(30, len(base) - 2))
            study = STUDY_OVERLAP.get(layer)
            print(f"  {layer:3d}  {ours:.3f}  {'' if study is None else f'{study:.3f}'}")


def _text_questions(questions: Benchmark, captions: dict[int, str]) -> Benchmark:
    """The image questions asked about a caption of their image, without the image."""
    keep = [k for k, g in enumerate(questions.groups) if int(g.split()[-1]) in captions]
    asked = questions.subset(keep)
    contexts = [captions[int(g.split()[-1])].rstrip(". ") for g in asked.groups]
    return dataclasses.replace(
        asked,
        name="coco-qa-text",
        questions=tuple(f"{c}. {q}" for c, q in zip(contexts, asked.questions, strict=True)),
        load_image=None,
    )


def _causal(tuned, base, inputs: tuple, out: Path, args: argparse.Namespace) -> None:
    folder, images, captions = inputs
    questions = load_coco_qa(folder, images, name="coco-qa")
    questions = questions.sample(args.qa_items, random_state=args.seed)
    options = {"metric": "exact", "max_new_tokens": args.max_new_tokens}
    tasks = [
        prompt_task(questions, tuned.processor, **options),
        prompt_task(_text_questions(questions, captions), tuned.processor, **options),
    ]
    curves = intervention_effects(
        base.model, tuned.model, tasks,
        analyses=["transplant-cumulative", "transplant-reverse", "knockout"],
        width=args.width, n_resamples=args.resamples, n_permutations=args.resamples,
        random_state=args.seed, batch_size=args.batch_size, progress=True,
    )  # fmt: skip
    (out / "causal").mkdir(parents=True, exist_ok=True)
    effects_table(curves).to_csv(out / "causal" / "effects.csv")
    plot_effect_curves(curves).savefig(out / "causal" / "effects.png", dpi=120)
    split_curve = next(
        c for c in curves
        if c.analysis == "transplant-cumulative" and c.measure == "coco-qa-exact"
    )  # fmt: skip
    refs = dict(split_curve.references)
    print(f"image questions: tuned {refs['tuned'].value:.3f} (study {STUDY_TUNED}), "
          f"base {refs['base'].value:.3f} (study, connector only: {STUDY_BASE})")  # fmt: skip
    print("two-part split, tuned blocks 0..split then base: split, ours [95% CI], study")
    for window in split_curve.windows:
        if window.last_layer is None:
            continue
        split = window.last_layer - 1  # the study copies blocks 0..split inclusive
        study = STUDY_SPLIT.get(split)
        score = window.score
        print(f"  {split:3d}  {score.value:.3f} [{score.ci_low:.3f}, {score.ci_high:.3f}]"
              f"  {'' if study is None else study}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the testbed instead of LLaVA")
    parser.add_argument("--coco", type=Path, help="COCO folder with val2014/ and annotations/")
    parser.add_argument("--coco-qa", type=Path, help="COCO-QA split folder (test/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=2500, help="COCO pairs extracted")
    parser.add_argument("--qa-items", type=int, default=1000, help="COCO-QA questions scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=4, help="knock-out window width")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float16" if torch.cuda.is_available() else "float32")
    parser.add_argument("--tuned", default="llava-hf/llava-1.5-7b-hf")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.dry_run:  # seconds on a CPU, every step
        args.samples, args.qa_items = min(args.samples, 24), min(args.qa_items, 24)
        args.resamples, args.width, args.max_new_tokens = min(args.resamples, 50), 2, 4
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        tuned, base, pairs, *inputs = _dry_run_inputs(out, args)
    elif args.coco is None or args.coco_qa is None:
        parser.error("--coco and --coco-qa are required (or --dry-run)")
    else:
        tuned, base, pairs, *inputs = _inputs(args)
    store = out / "acts.h5"
    for name, adapter in (("tuned", tuned), ("base", base)):
        extract(adapter, pairs, store, checkpoint_name=name, poolings=["mean", "last"],
                layers="all", batch_size=args.batch_size)  # fmt: skip
    _geometry(store, out, args.resamples)
    _causal(tuned, base, tuple(inputs), out, args)


if __name__ == "__main__":
    main()

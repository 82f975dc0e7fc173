"""Extract LLaVA-1.5-7B and its stage-1 base on COCO captions into one activation store.

The tuned model is the transformers port ``llava-hf/llava-1.5-7b-hf``. Its stage-1 base (before
visual instruction tuning) has no such port: the stage-1 release
``liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5`` holds only the trained projector
(``mm_projector.bin``), so :func:`geomalign.extract.load_llava_stage1` assembles the base LLM
(``lmsys/vicuna-7b-v1.5``), the vision tower (``openai/clip-vit-large-patch14-336``) and that
projector into a ``LlavaForConditionalGeneration`` laid out like the tuned port, sharing its
processor. Both checkpoints then see the same prompts and land in one store as ``tuned`` and
``base``, ready for ``geomalign analyze``.

Needs a CUDA GPU with about 16 GB (weights in float16, one model at a time), hub access, and COCO
(e.g. ``val2017/`` and ``annotations/captions_val2017.json`` from cocodataset.org)::

    python examples/extract_llava.py --coco /data/coco --out llava15.h5 --samples 2500
    geomalign info llava15.h5

The run resumes if interrupted: start the same command again. Every source is an option, so the
same script runs on local copies (folders written by ``save_pretrained``) too.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from geomalign.data import load_coco_captions
from geomalign.extract import extract, load_adapter, load_llava_stage1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--coco", type=Path, required=True, help="folder with val2017/, annotations/"
    )
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--out", type=Path, default=Path("llava15.h5"))
    parser.add_argument("--samples", type=int, default=2500, help="images drawn (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image draw")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--tuned", default="llava-hf/llava-1.5-7b-hf")
    parser.add_argument("--llm", default="lmsys/vicuna-7b-v1.5")
    parser.add_argument("--vision", default="openai/clip-vit-large-patch14-336")
    parser.add_argument(
        "--projector", default="liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    pairs = load_coco_captions(
        args.coco / "annotations" / f"captions_{args.split}.json",
        args.coco / args.split,
        captions="first",
    )
    if 0 < args.samples < len(pairs):
        draw = np.random.default_rng(args.seed).choice(len(pairs), args.samples, replace=False)
        pairs = pairs.subset(np.sort(draw))

    options = {
        "poolings": ["mean", "last"],  # mean over image / caption tokens; last prompt token
        "layers": "all",  # embedding output + the 32 decoder layers
        "batch_size": args.batch_size,
        "store_dtype": "float16",
    }
    tuned = load_adapter(args.tuned, dtype=args.dtype, device=args.device)
    result = extract(tuned, pairs, args.out, checkpoint_name="tuned", **options)
    logging.info("tuned: %d samples run into %s", result.n_encoded, result.store_path)
    del tuned
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    base = load_llava_stage1(
        args.llm,
        args.vision,
        args.projector,
        reference=args.tuned,
        dtype=args.dtype,
        device=args.device,
    )
    result = extract(base, pairs, args.out, checkpoint_name="base", **options)
    logging.info("base: %d samples run into %s", result.n_encoded, result.store_path)


if __name__ == "__main__":
    main()

"""Extraction overhead over a bare forward pass, on a tiny and a mid-size LLaVA built from configs.

For each config the same batches (image-only and caption-only prompts of the synthetic shapes
world) go through

* ``encode``: the adapter's preprocessing alone (processor / tokenizer),
* ``forward``: a bare ``model(**inputs, output_hidden_states=True)`` on the pre-encoded batches,
* ``extract``: :func:`geomalign.extract.extract` end to end (preprocessing, forward pass keeping
  every layer, mean + last pooling, float32 writes to a fresh HDF5 store).

Each timing is the best of ``--repeats`` interleaved runs (the machine may be shared). The
overhead is ``extract / (encode + forward) - 1``: what extraction costs beyond preparing the
inputs and running the model. Run: ``python benchmarks/extract_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from geomalign.data.shapes import make_shapes
from geomalign.extract import VLMAdapter, extract

CONFIGS = {
    # name: (text width, text layers, vision width, vision layers, image side, patch)
    "tiny": (64, 3, 32, 2, 32, 8),
    "mid": (512, 8, 256, 4, 112, 14),
}


def build(name: str, captions: list[str]) -> VLMAdapter:
    width, layers, v_width, v_layers, side, patch = CONFIGS[name]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(
        [*captions, "USER: ASSISTANT:"],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=v_width,
            intermediate_size=4 * v_width,
            num_hidden_layers=v_layers,
            num_attention_heads=4,
            image_size=side,
            patch_size=patch,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=width,
            intermediate_size=int(2.7 * width),
            num_hidden_layers=layers,
            num_attention_heads=8,
            num_key_value_heads=8,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return VLMAdapter(LlavaForConditionalGeneration(config).eval(), processor, name=name)


def time_encode(adapter, pairs, batch_size):
    start = time.perf_counter()
    batches = []
    for lo in range(0, len(pairs), batch_size):
        idx = range(lo, min(lo + batch_size, len(pairs)))
        batches.append(adapter.encode("image", [pairs.image(i) for i in idx]))
        batches.append(adapter.encode("text", [pairs.captions[i] for i in idx]))
    return time.perf_counter() - start, batches


def time_forward(adapter, batches):
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            adapter.model(**batch.inputs, output_hidden_states=True)
    return time.perf_counter() - start


def time_extract(adapter, pairs, batch_size, folder):
    start = time.perf_counter()
    extract(
        adapter,
        pairs,
        Path(folder) / "acts.h5",
        checkpoint_name="m",
        poolings=["mean", "last"],
        batch_size=batch_size,
        overwrite=True,
        progress=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny config only, 32 samples")
    args = parser.parse_args()
    names = ["tiny"] if args.quick else list(CONFIGS)
    pairs = make_shapes(32 if args.quick else args.samples, random_state=0).pairs
    header = (
        f"{'config':<6} {'samples':>7} {'layers':>6} {'encode s':>9} {'forward s':>9} "
        f"{'extract s':>9} {'extract/(enc+fwd)':>17} {'overhead':>8}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch size {args.batch_size}, best of {args.repeats}, image + text views"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            adapter = build(name, pairs.captions)
            time_extract(adapter, pairs.subset(range(args.batch_size)), args.batch_size, folder)
            encode, forward, full = [], [], []
            for _ in range(args.repeats):
                seconds, batches = time_encode(adapter, pairs, args.batch_size)
                encode.append(seconds)
                forward.append(time_forward(adapter, batches))
                full.append(time_extract(adapter, pairs, args.batch_size, folder))
            enc, fwd, ext = min(encode), min(forward), min(full)
            ratio = ext / (enc + fwd)
            print(
                f"{name:<6} {len(pairs):>7} {adapter.n_layers:>6} {enc:>9.3f} {fwd:>9.3f} "
                f"{ext:>9.3f} {ratio:>17.3f} {100 * (ratio - 1):>7.1f}%"
            )


if __name__ == "__main__":
    main()

"""Tiny random LLaVA models (CLIP vision tower + Llama decoder, width 64) and scoring items."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from _tiny_models import tiny_llava_config
from transformers import LlavaForConditionalGeneration

from geomalign.analysis.table import ResultsTable
from geomalign.cli import main
from geomalign.interventions import make_task

IMAGE_TOKEN = 49
PAD = 0
N_LAYERS = 4
N_IMAGE_TOKENS = 4  # (16 // 8) ** 2 patches, CLS dropped


@functools.cache
def _built(seed: int, attn: str) -> LlavaForConditionalGeneration:
    config = tiny_llava_config(
        text_hidden_size=64,
        text_heads=4,
        vision_hidden_size=32,
        vocab_size=IMAGE_TOKEN + 1,
        image_size=16,
        patch_size=8,
        n_blocks=N_LAYERS,
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # norms start at 1 everywhere: make them differ between seeds
        for name, param in model.model.language_model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    torch.manual_seed(0)  # every seed shares one vision tower, as base and tuned LLaVA do
    shared = LlavaForConditionalGeneration(config).model.vision_tower
    model.model.vision_tower.load_state_dict(shared.state_dict())
    return model


def tiny_llava(seed: int, *, attn: str = "sdpa") -> LlavaForConditionalGeneration:
    """A fresh copy of the random tiny LLaVA of ``seed`` (all seeds share the vision tower)."""
    return copy.deepcopy(_built(seed, attn))


def make_items(n: int = 6, *, metric: str = "loglik", seed: int = 0):
    """Items: [BOS, 5, <image> x4, 6..] prompts, random 3-token targets, random images."""
    gen = torch.Generator().manual_seed(seed)
    prompts, targets = [], []
    for row in range(n):
        extra = torch.randint(1, 40, (row % 3,), generator=gen).tolist()
        prompts.append([1, 5, *[IMAGE_TOKEN] * N_IMAGE_TOKENS, 6, *extra])
        targets.append(torch.randint(1, 40, (1 + row % 3,), generator=gen).tolist())
    pixels = torch.randn(n, 3, 16, 16, generator=gen)
    return make_task("toy", prompts, targets, pixels, metric=metric, pad_token_id=PAD)


@pytest.fixture
def items():
    return make_items()


def run_intervene(argv, out, stem):
    """Run ``geomalign intervene`` writing into ``out``; check its outputs and its refusal to
    overwrite them; return the table it wrote and the full argument list."""
    argv = [*argv, "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert (out / f"{stem}.png").stat().st_size > 10_000
    assert main(argv) == 1  # refuses to overwrite
    return ResultsTable.from_csv(out / f"{stem}.csv"), argv


def forward_logits(model, task):
    """Logits of the whole batch, padding included."""
    with torch.no_grad():
        return model(
            input_ids=task.input_ids,
            attention_mask=task.attention_mask,
            pixel_values=task.pixel_values,
        ).logits


_WORDS = (
    "user : assistant provide a one - sentence caption for the provided image . "
    "red green blue circle square triangle small large on left right"
).split()


def tiny_processor():
    """A LLaVA processor matching :func:`tiny_llava`: word-level tokenizer, 16-pixel images."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPImageProcessorPil, LlavaProcessor, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    words = list(dict.fromkeys(_WORDS))
    filler = [f"w{i}" for i in range(IMAGE_TOKEN - len(specials) - len(words))]
    vocab = {token: i for i, token in enumerate([*specials, *words, *filler, "<image>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    backend.add_special_tokens([*specials, "<image>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    side = {"height": 16, "width": 16}
    return LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size=side, crop_size=side, do_center_crop=False),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )

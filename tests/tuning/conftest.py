"""Tiny random LLaVA models, a synthetic training set for them, and a tiny built testbed."""

from __future__ import annotations

import pytest
import torch
from _tiny_models import (
    INSTRUCT_CORPUS,
    TINY_TESTBED,
    tiny_instruct_llava,
    tiny_llava_config,
    tiny_tokenizer,
    write_instruction_set,
)
from transformers import LlavaForConditionalGeneration

from geomalign.testbed import Examples, build_testbed
from geomalign.tuning import load_instructions

IMAGE_TOKEN = 39
N_LAYERS = 4
N_IMAGE_TOKENS = 5  # (8 // 4) ** 2 patches + CLS
VOCAB = 40


def make_llava(seed: int = 0) -> LlavaForConditionalGeneration:
    """A random LLaVA: 1-layer CLIP tower, MLP projector, 4-block Llama of width 16."""
    config = tiny_llava_config(
        text_hidden_size=16,
        text_heads=2,
        vision_hidden_size=16,
        vocab_size=VOCAB,
        image_size=8,
        patch_size=4,
        n_blocks=N_LAYERS,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config)


@pytest.fixture
def llava() -> LlavaForConditionalGeneration:
    return make_llava()


@pytest.fixture(scope="session")
def examples() -> Examples:
    """16 random image + prompt + response sequences; the last 3 tokens are scored."""
    generator = torch.Generator().manual_seed(0)
    n, length = 16, 12
    text = torch.randint(1, IMAGE_TOKEN, (n, length - N_IMAGE_TOKENS), generator=generator)
    input_ids = torch.cat(
        [text[:, :1], torch.full((n, N_IMAGE_TOKENS), IMAGE_TOKEN), text[:, 1:]], dim=1
    )
    labels = torch.full_like(input_ids, -100)
    labels[:, -3:] = input_ids[:, -3:]
    return Examples(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        labels=labels,
        tags=("qa",) * n,
        image_index=torch.arange(n) % 4,
        pixel_values=torch.randn(4, 3, 8, 8, generator=generator),
    )


@pytest.fixture(scope="session")
def tiny_testbed(tmp_path_factory):
    return build_testbed(TINY_TESTBED, cache_dir=tmp_path_factory.mktemp("testbed"), progress=False)


@pytest.fixture(scope="session")
def instruct_tokenizer():
    """A byte-level BPE for the colour conversations (``<image>`` is id 4)."""
    return tiny_tokenizer(INSTRUCT_CORPUS)


@pytest.fixture(scope="session")
def instruct_file(tmp_path_factory):
    """12 LLaVA conversations (half of them two rounds) about flat-colour images."""
    return write_instruction_set(tmp_path_factory.mktemp("instruct"))


@pytest.fixture(scope="session")
def instruct_rows(instruct_file):
    return load_instructions(instruct_file)


@pytest.fixture(scope="session")
def instruct_llava_dir(instruct_tokenizer, tmp_path_factory):
    """A tiny LLaVA-1.5 (2-layer CLIP tower, 4 decoder blocks) + processor, saved."""
    model, processor = tiny_instruct_llava(instruct_tokenizer)
    folder = tmp_path_factory.mktemp("instruct-llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def instruct_llava(instruct_tokenizer):
    """A fresh tiny LLaVA-1.5 (same weights every time) and its processor."""
    return tiny_instruct_llava(instruct_tokenizer)

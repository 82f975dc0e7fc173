"""Tiny random LLaVA models, a synthetic training set for them, and a tiny built testbed."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from geomalign.testbed import Examples, TestbedConfig, build_testbed

IMAGE_TOKEN = 39
N_LAYERS = 4
N_IMAGE_TOKENS = 5  # (8 // 4) ** 2 patches + CLS
VOCAB = 40


def make_llava(seed: int = 0) -> LlavaForConditionalGeneration:
    """A random LLaVA: 1-layer CLIP tower, MLP projector, 4-block Llama of width 16."""
    text = LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=N_LAYERS,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
    )
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=8, patch_size=4,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
        image_seq_length=N_IMAGE_TOKENS, vision_feature_layer=-1,
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
    input_ids = torch.cat([text[:, :1], torch.full((n, N_IMAGE_TOKENS), IMAGE_TOKEN),
                           text[:, 1:]], dim=1)
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


#: A testbed far smaller than the "small" preset: it trains nothing useful, but builds real
#: checkpoints in a few seconds, which is all the comparison runner's tests need.
TINY_TESTBED = TestbedConfig(
    n_train=48, n_test=16, vision_hidden_size=16, vision_heads=2, text_hidden_size=16,
    text_heads=2, text_intermediate_size=32, batch_size=16, lm_steps=2, vision_steps=2,
    stage1_steps=2, stage2_steps=2,
)


@pytest.fixture(scope="session")
def tiny_testbed(tmp_path_factory):
    return build_testbed(TINY_TESTBED, cache_dir=tmp_path_factory.mktemp("testbed"),
                         progress=False)

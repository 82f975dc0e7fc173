"""Tiny random model configurations shared by the intervention, tuning and testbed tests.

Built from configs, offline: a Llama decoder, a LLaVA joining it to a one-layer CLIP tower, and
a testbed configuration that builds real checkpoints in seconds.
"""

from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

from geomalign.testbed import TestbedConfig


def tiny_llama_config(
    *, hidden_size: int = 16, n_layers: int = 4, n_heads: int = 2, vocab_size: int = 40
) -> LlamaConfig:
    """A Llama decoder with an MLP twice its width, 2 key/value heads and padding id 0."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )


def tiny_llava_config(
    *,
    text_hidden_size: int,
    text_heads: int,
    vision_hidden_size: int,
    vocab_size: int,
    image_size: int,
    patch_size: int,
    n_layers: int = 4,
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "default",
) -> LlavaConfig:
    """A LLaVA: one-layer CLIP tower, MLP projector, :func:`tiny_llama_config` decoder.

    The image token is the last id of the vocabulary; an image gives one token per patch, plus
    one for the CLS token with ``vision_feature_select_strategy="full"``.
    """
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=2 * vision_hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = tiny_llama_config(
        hidden_size=text_hidden_size, n_layers=n_layers, n_heads=text_heads, vocab_size=vocab_size
    )
    n_image_tokens = (image_size // patch_size) ** 2 + (vision_feature_select_strategy == "full")
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=vocab_size - 1,
        image_seq_length=n_image_tokens,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
    )


#: A testbed far smaller than the "small" preset: it trains nothing useful, but builds real
#: checkpoints in a few seconds.
TINY_TESTBED = TestbedConfig(
    n_train=48,
    n_test=16,
    vision_hidden_size=16,
    vision_heads=2,
    text_hidden_size=16,
    text_heads=2,
    text_intermediate_size=32,
    batch_size=16,
    lm_steps=2,
    vision_steps=2,
    stage1_steps=2,
    stage2_steps=2,
)

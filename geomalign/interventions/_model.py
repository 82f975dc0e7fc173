"""Locate the parts of a Hugging Face LLaVA-style model that only interventions act on.

Nothing here is specific to one architecture: the image placeholder token comes from the model
config, the attention module of a decoder block from its ``self_attn`` attribute. The decoder
blocks themselves are found by :mod:`geomalign._model_parts`.
"""

from __future__ import annotations

from torch import nn


def image_token_id(model: nn.Module, override: int | None = None) -> int:
    """Return the id of the image placeholder token, from ``override`` or the model config."""
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int):
            raise TypeError(f"image_token_id must be an int; got {type(override).__name__}.")
        return override
    config = getattr(model, "config", None)
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(
        f"{type(model).__name__}'s config has no image_token_id / image_token_index; pass "
        "image_token_id= explicitly."
    )


def attention_module(layer: nn.Module, index: int) -> nn.Module:
    """Return the self-attention module of decoder block ``layer`` (block number ``index``)."""
    attn = getattr(layer, "self_attn", None)
    if isinstance(attn, nn.Module):
        return attn
    for module in layer.modules():
        if module is not layer and type(module).__name__.endswith("Attention"):
            return module
    raise TypeError(
        f"decoder block {index} ({type(layer).__name__}) has no `self_attn` and no submodule "
        "whose class name ends in 'Attention'."
    )

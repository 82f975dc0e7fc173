"""Locate the parts of a Hugging Face LLaVA-style model that interventions act on.

Nothing here is specific to one architecture: the decoder layers come from ``get_decoder()`` where
transformers exposes it (falling back to the usual attribute paths), the image placeholder token
from the model config, the attention module of a layer from its ``self_attn`` attribute.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

# Attribute paths tried, in order, when ``get_decoder()`` does not lead to the decoder layers.
_LAYER_PATHS = (
    "language_model.layers",
    "model.language_model.layers",
    "model.layers",
    "layers",
)


def _get_path(module: nn.Module, path: str) -> object | None:
    obj: object = module
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def decoder_model(model: nn.Module) -> nn.Module:
    """Return the text decoder module that owns the decoder layers (e.g. ``LlamaModel``).

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face vision-language (or text) model.

    Returns
    -------
    decoder : torch.nn.Module
        The module whose ``layers`` attribute is the stack of decoder blocks.

    Raises
    ------
    TypeError
        If no decoder with a ``layers`` ModuleList can be found.
    """
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        decoder = get_decoder()
        if isinstance(getattr(decoder, "layers", None), nn.ModuleList):
            return decoder
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList):
            owner = _get_path(model, path.rpartition(".")[0]) if "." in path else model
            return owner  # type: ignore[return-value]
    raise TypeError(
        f"could not find the decoder layers of {type(model).__name__}: get_decoder() gave no "
        f"module with a `layers` ModuleList and none of {list(_LAYER_PATHS)} exists."
    )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """Return the decoder blocks of ``model`` in execution order (block ``i`` is ``layers[i]``)."""
    return decoder_model(model).layers  # type: ignore[return-value]


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


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def check_window(layers: object, n_layers: int, *, name: str = "layers") -> list[int]:
    """Return the decoder block indices of a window as a sorted list of distinct ints.

    Parameters
    ----------
    layers : range or sequence of int
        0-based block indices; ``range(a, b)`` is the window ``[a, b)``. May be empty.
    n_layers : int
        Number of decoder blocks of the model.
    name : str, default="layers"
        Argument name used in error messages.
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(
            f"{name} must be a range or a sequence of block indices; got {type(layers).__name__}."
        )
    blocks = []
    for value in layers:  # type: ignore[attr-defined]
        if isinstance(value, bool):
            raise TypeError(f"{name} must hold ints; got {value!r}.")
        try:
            index = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must hold ints; got {value!r}.") from None
        if not 0 <= index < n_layers:
            raise ValueError(
                f"{name} holds block {index}, outside the model's {n_layers} decoder blocks "
                f"(valid: 0..{n_layers - 1})."
            )
        blocks.append(index)
    return sorted(set(blocks))

"""Find the parts of a Hugging Face (vision-)language model, and check windows of decoder blocks.

Nothing here is specific to one architecture: the decoder blocks come from ``get_decoder()`` where
transformers exposes it (falling back to the usual attribute paths), the projector from its
attribute names in the LLaVA family (``multi_modal_projector``) and its relatives.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch
from torch import nn

# Attribute paths tried, in order, when ``get_decoder()`` does not lead to the decoder blocks.
_BLOCK_PATHS = (
    "language_model.layers",
    "model.language_model.layers",
    "model.layers",
    "layers",
)

#: Attribute paths tried, in order, for the vision-language projector.
PROJECTOR_PATHS = (
    "model.multi_modal_projector",
    "multi_modal_projector",
    "model.mm_projector",
    "mm_projector",
    "model.connector",
    "connector",
)


#: Label of the tokens a loss ignores (prompt, padding), as in Hugging Face models.
IGNORE_INDEX = -100


def _get_path(module: nn.Module, path: str) -> object | None:
    obj: object = module
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def find_module(model: nn.Module, paths: Sequence[str]) -> nn.Module | None:
    """Return the module at the first dotted attribute path of ``paths`` that holds one, or None."""
    for path in paths:
        module = _get_path(model, path)
        if isinstance(module, nn.Module):
            return module
    return None


def projector_module(model: nn.Module) -> nn.Module:
    """Return the vision-language projector of ``model``; ValueError if it has none."""
    module = find_module(model, PROJECTOR_PATHS)
    if module is None:
        raise ValueError(
            f"projector=True but {type(model).__name__} has none of {list(PROJECTOR_PATHS)}."
        )
    return module


def decoder_model(model: nn.Module) -> nn.Module:
    """Return the text decoder module that owns the decoder blocks (e.g. ``LlamaModel``).

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
    for path in _BLOCK_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList):
            owner = _get_path(model, path.rpartition(".")[0]) if "." in path else model
            return owner  # type: ignore[return-value]
    raise TypeError(
        f"could not find the decoder blocks of {type(model).__name__}: get_decoder() gave no "
        f"module with a `layers` ModuleList and none of {list(_BLOCK_PATHS)} exists."
    )


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """Return the decoder blocks of ``model`` in execution order (block ``i`` is ``layers[i]``)."""
    return decoder_model(model).layers  # type: ignore[return-value]


def input_embeddings(model: nn.Module) -> nn.Module | None:
    """The model's input embedding module (``get_input_embeddings()``); None without one."""
    return _module_from(model, "get_input_embeddings")


def output_embeddings(model: nn.Module) -> nn.Module | None:
    """The model's output head (``get_output_embeddings()``); None without one."""
    return _module_from(model, "get_output_embeddings")


def _module_from(model: nn.Module, getter: str) -> nn.Module | None:
    method = getattr(model, getter, None)
    module = method() if callable(method) else None
    return module if isinstance(module, nn.Module) else None


def check_window(blocks: object, n_blocks: int, *, name: str = "blocks") -> list[int]:
    """Return the decoder block indices of a window as a sorted list of distinct ints.

    Parameters
    ----------
    blocks : range or sequence of int
        0-based block indices; ``range(a, b)`` is the window ``[a, b)``. May be empty.
    n_blocks : int
        Number of decoder blocks of the model.
    name : str, default="blocks"
        Argument name used in error messages.
    """
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
        raise TypeError(
            f"{name} must be a range or a sequence of block indices; got {type(blocks).__name__}."
        )
    chosen = []
    for value in blocks:
        if isinstance(value, bool):
            raise TypeError(f"{name} must hold ints; got {value!r}.")
        try:
            index = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must hold ints; got {value!r}.") from None
        if not 0 <= index < n_blocks:
            raise ValueError(
                f"{name} holds block {index}, outside the model's {n_blocks} decoder blocks "
                f"(valid: 0..{n_blocks - 1})."
            )
        chosen.append(index)
    return sorted(set(chosen))


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    raise TypeError(f"{type(model).__name__} has no floating-point parameters.")

"""What a fine-tuning run trains: everything, a window of decoder blocks, or LoRA on a window.

Window notation on the command line and in :func:`parse_window`: ``A-B`` is decoder blocks ``A``
to ``B`` **inclusive, 0-based** (``6-16`` is the 11 blocks 6, 7, ..., 16; in the store's layer
numbers these blocks produce layers 7..17); ``A`` alone is one block.

Frozen blocks below the window should cost a forward pass only. Autograd already records no
graph where no input requires a gradient, but gradient checkpointing in transformers (and peft's
preparation for it) marks the embedding output as requiring one, which builds and back-propagates
the graph through every block below the window. :func:`prepare_window` therefore detaches the
hidden state entering the window's first block whenever nothing below it trains (no projector,
embeddings or lower block), so the backward pass stops there in every configuration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from geomalign._model_parts import check_window, decoder_blocks
from geomalign.tuning.freezing import TrainableParameters, set_trainable, trainable_parameters
from geomalign.tuning.lora import lora_window

__all__ = ["METHODS", "PreparedModel", "parse_window", "prepare_window"]

#: How a window trains: its full weights, or LoRA adapters on its linear layers.
METHODS = ("weights", "lora")

_WINDOW = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_window(text: str, n_blocks: int | None = None) -> range:
    """Parse ``"A-B"`` (0-based decoder blocks ``A..B`` inclusive) or ``"A"`` into a range.

    Parameters
    ----------
    text : str
        The window, e.g. ``"6-16"``.
    n_blocks : int, default=None
        Blocks of the model, to check the window against.

    Returns
    -------
    range
        ``range(A, B + 1)``.

    Examples
    --------
    >>> parse_window("6-16")
    range(6, 17)
    """
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(
            f"a window is A-B (0-based decoder blocks A to B inclusive) or A; got {text!r}"
        )
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise ValueError(f"window {text!r} ends before it starts")
    if n_blocks is not None and last >= n_blocks:
        raise ValueError(
            f"window {text!r} reaches block {last}; the model has {n_blocks} decoder blocks "
            f"(0..{n_blocks - 1})"
        )
    return range(first, last + 1)


@dataclass
class PreparedModel:
    """A model set up for a run, with what trains and where the backward pass stops.

    Attributes
    ----------
    model : torch.nn.Module
        The model to train (a peft wrapper for LoRA).
    trainable : TrainableParameters
        What trains, per part.
    blocks : tuple of int
        Decoder blocks that train (every block for a full run).
    stop_below : int or None
        Block whose input is detached (the backward pass stops there), or None.
    """

    model: nn.Module
    trainable: TrainableParameters
    blocks: tuple[int, ...]
    stop_below: int | None
    _handle: Any = None

    def remove_stop(self) -> None:
        """Remove the hook that detaches the window's input (the model then trains as built)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle, self.stop_below = None, None


def prepare_window(
    model: nn.Module,
    blocks: Sequence[int] | range | Literal["all"],
    *,
    method: Literal["weights", "lora"] = "weights",
    projector: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    stop_gradient: bool = True,
    random_state: int = 0,
) -> PreparedModel:
    """Freeze a (vision-)language model for a run: full fine-tuning, a block window, LoRA.

    - ``blocks="all"`` (method ``"weights"``): LLaVA's stage 2, everything but the vision tower
      trains (projector, embeddings, every block, final norm and output head);
    - a window with ``method="weights"``: only the window's blocks train (and the projector
      with ``projector=True``); the vision tower, embeddings, other blocks and head are frozen;
    - a window with ``method="lora"``: LoRA adapters on the linear layers of the language
      model's window blocks only (never the vision tower's blocks of the same indices), through
      :func:`~geomalign.tuning.lora_window`; ``blocks="all"`` puts them on every block.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face vision-language (or text) model, changed in place.
    blocks : sequence of int, range or "all"
        0-based decoder blocks (contiguous or not) or ``"all"``.
    method : {"weights", "lora"}, default="weights"
    projector : bool, default=False
        Window runs also train the projector (always trained in a full run).
    lora_rank, lora_alpha : int, float
        LoRA rank and scaling numerator.
    stop_gradient : bool, default=True
        Detach the hidden state entering the lowest trained block when nothing below it trains.
    random_state : int, default=0
        Seed of the LoRA initialisation.

    Returns
    -------
    PreparedModel
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    decoder = decoder_blocks(model)
    every = isinstance(blocks, str) and blocks == "all"
    if isinstance(blocks, str) and not every:
        raise ValueError(f"blocks must be 'all' or block indices; got {blocks!r}")
    n_blocks = len(decoder)
    chosen = list(range(n_blocks)) if every else check_window(blocks, n_blocks, name="blocks")
    if not chosen:
        raise ValueError("blocks is empty: nothing would train")
    if method == "lora":
        model = lora_window(
            model,
            chosen,
            rank=lora_rank,
            alpha=lora_alpha,
            projector=projector,
            random_state=random_state,
        )
        trainable = trainable_parameters(model)
    elif every:
        trainable = set_trainable(model, blocks="all", projector=True, embeddings=True, head=True)
    else:
        trainable = set_trainable(model, blocks=chosen, projector=projector)
    prepared = PreparedModel(model, trainable, tuple(chosen), None)
    below = {part for part in ("vision", "projector", "embeddings") if _trains(trainable, part)}
    if stop_gradient and not below and chosen[0] > 0:
        prepared._handle = decoder[chosen[0]].register_forward_pre_hook(
            _detach_hidden_state, with_kwargs=True
        )
        prepared.stop_below = chosen[0]
    return prepared


def _trains(report: TrainableParameters, part: str) -> bool:
    return report.by_part.get(part, (0, 0))[0] > 0


def _detach_hidden_state(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Forward pre-hook: the block's input hidden state, cut from the graph below it."""
    if args and isinstance(args[0], torch.Tensor):
        return (args[0].detach(), *args[1:]), kwargs
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach()}
    return None

"""Choose which parts of a Hugging Face vision-language model train, and count what trains.

The parts are found generically: the decoder blocks through ``get_decoder()`` (or the usual
attribute paths), the input and output embeddings through ``get_input_embeddings()`` and
``get_output_embeddings()``, the projector and the vision tower by their attribute names in the
LLaVA family (``multi_modal_projector``, ``vision_tower``) and its relatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from geomalign._model_parts import (
    PROJECTOR_PATHS,
    check_window,
    decoder_blocks,
    decoder_model,
    find_module,
    input_embeddings,
    output_embeddings,
    projector_module,
)

__all__ = ["PARTS", "TrainableParameters", "set_trainable", "trainable_parameters"]

#: Parts of a model in the order reports list them; ``"head"`` is the final norm of the
#: decoder plus the output embeddings, ``"other"`` whatever no other part holds.
PARTS = ("vision", "projector", "embeddings", "blocks", "head", "other")

# Attribute paths tried, in order, for the vision tower.
_VISION_PATHS = ("model.vision_tower", "vision_tower", "model.vision_model", "vision_model")


@dataclass(frozen=True)
class TrainableParameters:
    """Which parameters of a model train.

    Attributes
    ----------
    n_trainable, n_total : int
        Parameters (scalars) with ``requires_grad=True``, and all parameters; a parameter
        shared by two modules (tied embeddings) counts once.
    by_part : dict of str to (int, int)
        ``(trainable, total)`` per part of :data:`PARTS`, for the parts the model has.
    blocks : tuple of int
        Decoder blocks (0-based) with at least one trainable parameter.
    """

    n_trainable: int
    n_total: int
    by_part: dict[str, tuple[int, int]]
    blocks: tuple[int, ...]

    @property
    def fraction(self) -> float:
        """Share of the parameters that train."""
        return self.n_trainable / self.n_total if self.n_total else 0.0


def trainable_parameters(model: nn.Module) -> TrainableParameters:
    """Count the trainable parameters of ``model``, per part and per decoder block.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face (vision-)language model, possibly wrapped by peft; adapter weights count
        in the part that holds them (LoRA weights of a block are that block's).

    Returns
    -------
    TrainableParameters
    """
    get_base_model = getattr(model, "get_base_model", None)  # a peft wrapper
    owners = _owners(get_base_model() if callable(get_base_model) else model)
    by_part = {part: [0, 0] for part in PARTS}
    per_block: dict[int, int] = {}
    for param in model.parameters():
        part, block = owners.get(id(param), ("other", None))
        by_part[part][1] += param.numel()
        if param.requires_grad:
            by_part[part][0] += param.numel()
            if block is not None:
                per_block[block] = per_block.get(block, 0) + param.numel()
    present = {part: (n[0], n[1]) for part, n in by_part.items() if n[1]}
    return TrainableParameters(
        n_trainable=sum(n[0] for n in present.values()),
        n_total=sum(n[1] for n in present.values()),
        by_part=present,
        blocks=tuple(sorted(per_block)),
    )


def set_trainable(
    model: nn.Module,
    *,
    blocks: Sequence[int] | range | Literal["all"],
    projector: bool = False,
    embeddings: bool = False,
    head: bool = False,
) -> TrainableParameters:
    """Freeze ``model`` except some decoder blocks (and, if asked, projector, embeddings, head).

    Every parameter is first frozen (``requires_grad=False``), then the chosen parts are
    unfrozen, so the call decides alone what trains. The vision tower always stays frozen, as in
    LLaVA's stage 2. Full stage-2 tuning is ``blocks="all", projector=True, embeddings=True,
    head=True``; window-only tuning is ``blocks=window.blocks``.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face vision-language (or text) model, changed in place.
    blocks : sequence of int, range or "all"
        0-based decoder blocks to train; may be empty.
    projector : bool, default=False
        Also train the vision-language projector (an error if the model has none).
    embeddings : bool, default=False
        Also train the input token embeddings.
    head : bool, default=False
        Also train the decoder's final norm and the output embeddings (``lm_head``). With tied
        embeddings this trains the input embeddings too.

    Returns
    -------
    TrainableParameters
        What trains now.

    Examples
    --------
    >>> report = set_trainable(model, blocks=range(2, 5))  # doctest: +SKIP
    >>> report.blocks  # doctest: +SKIP
    (2, 3, 4)
    """
    decoder = decoder_blocks(model)
    chosen = (
        list(range(len(decoder)))
        if isinstance(blocks, str) and blocks == "all"
        else check_window(blocks, len(decoder), name="blocks")
    )
    parts: list[nn.Module] = [decoder[i] for i in chosen]
    if projector:
        parts.append(projector_module(model))
    if embeddings:
        module = input_embeddings(model)
        if module is None:
            raise ValueError(
                f"embeddings=True but {type(model).__name__} has no input embeddings to train."
            )
        parts.append(module)
    if head:
        parts.extend(_head_modules(model))
    model.requires_grad_(False)
    for module in parts:
        module.requires_grad_(True)
    return trainable_parameters(model)


def _head_modules(model: nn.Module) -> list[nn.Module]:
    modules = []
    norm = getattr(decoder_model(model), "norm", None)
    if isinstance(norm, nn.Module):
        modules.append(norm)
    output = output_embeddings(model)
    if output is not None:
        modules.append(output)
    return modules


def _owners(model: nn.Module) -> dict[int, tuple[str, int | None]]:
    """Map ``id(parameter)`` to its part and, for block parameters, its block index."""
    owners: dict[int, tuple[str, int | None]] = {}

    def claim(module: nn.Module | None, part: str, block: int | None = None) -> None:
        if module is None:
            return
        for param in module.parameters():
            owners.setdefault(id(param), (part, block))

    for index, block in enumerate(decoder_blocks(model)):
        claim(block, "blocks", index)
    claim(find_module(model, PROJECTOR_PATHS), "projector")
    claim(find_module(model, _VISION_PATHS), "vision")
    claim(input_embeddings(model), "embeddings")
    for module in _head_modules(model):
        claim(module, "head")
    return owners

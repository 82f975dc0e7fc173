"""LoRA adapters restricted to a window of decoder blocks, through peft (an optional dependency)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from geomalign._model_parts import check_window, decoder_blocks, projector_module

__all__ = ["lora_window"]

_MISSING_PEFT = (
    "LoRA needs the optional dependency peft: pip install 'geomalign[lora]' (or pip install peft)."
)


def lora_window(
    model: nn.Module,
    blocks: Sequence[int] | range,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
    projector: bool = False,
    random_state: int = 0,
) -> nn.Module:
    """Wrap ``model`` with LoRA adapters on the linear layers of the given decoder blocks only.

    Uses peft's ``layers_to_transform`` with ``layers_pattern`` set to the path of the decoder
    blocks inside ``model``, so that equally named linear layers elsewhere (the vision tower's
    ``q_proj``, say) get no adapter. Every other weight is frozen; only the adapters train (and
    the projector, fully, when ``projector=True``).

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face vision-language (or text) model; peft modifies it in place.
    blocks : sequence of int or range
        0-based decoder blocks that get adapters; at least one.
    rank : int, default=8
        LoRA rank ``r``.
    alpha : float, default=16.0
        LoRA scaling numerator (the update is scaled by ``alpha / rank``).
    dropout : float, default=0.0
        Dropout on the adapter input.
    target_modules : sequence of str, default=None
        Names, relative to a block, of the linear layers to adapt (e.g. ``"self_attn.q_proj"``);
        None means every ``nn.Linear`` of the first chosen block.
    projector : bool, default=False
        Also train the projector fully (peft ``modules_to_save``, so that it is saved with the
        adapters). peft trains a copy and keeps the original frozen, so parameter totals then
        count the projector twice.
    random_state : int, default=0
        Seed of the adapters' initialisation; the global torch RNG is left untouched.

    Returns
    -------
    peft.PeftModel
        The wrapped model; :func:`~geomalign.tuning.trainable_parameters` reports what trains.

    Raises
    ------
    ImportError
        If peft is not installed.
    """
    try:
        import peft
    except ImportError as error:
        raise ImportError(_MISSING_PEFT) from error
    decoder = decoder_blocks(model)
    chosen = check_window(blocks, len(decoder), name="blocks")
    if not chosen:
        raise ValueError("blocks is empty: LoRA needs at least one decoder block to adapt.")
    for value, name in ((rank, "rank"), (alpha, "alpha")):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a positive number; got {value!r}.")
    if isinstance(rank, float) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"rank must be an int and dropout in [0, 1); got {rank!r}, {dropout!r}.")
    first = decoder[chosen[0]]
    linear_names = [name for name, module in first.named_modules() if isinstance(module, nn.Linear)]
    if target_modules is None:
        targets = linear_names
    else:
        if isinstance(target_modules, str):
            raise TypeError(
                f"target_modules must be a sequence of names; got the string {target_modules!r}."
            )
        targets = list(target_modules)
        unknown = [t for t in targets if t not in linear_names]
        if unknown or not targets:
            raise ValueError(
                f"target_modules must name linear layers of a decoder block, among "
                f"{linear_names}; got {targets}."
            )
    if not targets:
        raise ValueError(f"decoder block {chosen[0]} has no nn.Linear layer to adapt.")
    blocks_path = next(name for name, module in model.named_modules() if module is decoder)
    modules_to_save = None
    if projector:
        module = projector_module(model)
        modules_to_save = [next(n for n, m in model.named_modules() if m is module)]
    config = peft.LoraConfig(
        r=int(rank),
        # peft annotates lora_alpha as int, but only divides by it (alpha / r): floats work
        lora_alpha=float(alpha),  # type: ignore[arg-type]
        lora_dropout=float(dropout),
        target_modules=targets,
        layers_to_transform=chosen,
        layers_pattern=re.escape(blocks_path),
        modules_to_save=modules_to_save,
    )
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # peft reads transformers' deprecated alias `is_gradient_checkpointing`: not ours to fix.
        warnings.filterwarnings(
            "ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning
        )
        torch.manual_seed(random_state)
        return peft.get_peft_model(model, config)

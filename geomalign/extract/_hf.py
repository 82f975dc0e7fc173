"""Shared pieces of the Hugging Face adapters: the selective forward pass and model facts."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel

from geomalign.extract._base import EncodedBatch, dtype_name, to_device


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    raise TypeError(f"{type(model).__name__} has no floating-point parameters.")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def source_name(model_id: str | os.PathLike) -> str:
    """A hub id as given; a local folder or file as its absolute path."""
    path = Path(model_id)
    return str(path.resolve()) if path.exists() else str(model_id)


def model_name(model: PreTrainedModel, name: str | None) -> str:
    """The given name, else the id or path the model was loaded from, else its class name."""
    return name or getattr(model, "name_or_path", "") or type(model).__name__


def hf_provenance(
    model: PreTrainedModel, name: str | None, revision: str | None
) -> dict[str, str | int | float]:
    """Provenance entries shared by the Hugging Face adapters."""
    facts: dict[str, str | int | float] = {
        "model": model_name(model, name),
        "architecture": type(model).__name__,
        "dtype": dtype_name(model_dtype(model)),
    }
    if revision is not None:
        facts["revision"] = revision
    return facts


def selected_hidden_states(
    model: PreTrainedModel, batch: EncodedBatch, layers: Sequence[int], n_layers: int
) -> list[torch.Tensor]:
    """Run the model's trunk (no output head, no KV cache) and keep the hidden states of ``layers``.

    transformers records hidden states through hooks and keeps only the indices passed as
    ``output_hidden_states``; models that take only a flag return all of them, and the requested
    ones are picked here.
    """
    trunk = model.base_model
    inputs = to_device(batch.inputs, model_device(model), model_dtype(model))
    params = inspect.signature(trunk.forward).parameters
    if "use_cache" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        inputs["use_cache"] = False
    out = trunk(**inputs, output_hidden_states=list(layers))
    states = out.hidden_states
    if states is None or len(states) != n_layers:
        raise ValueError(
            f"{type(model).__name__} returned {0 if states is None else len(states)} hidden "
            f"states; expected {n_layers} (embedding output + one per block)."
        )
    return [states[layer] for layer in layers]

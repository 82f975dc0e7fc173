"""What the Hugging Face adapters share: a base class with the selective forward pass."""

from __future__ import annotations

import abc
import inspect
import os
from pathlib import Path

import torch
from transformers import PreTrainedModel

from geomalign.extract._base import (
    Adapter,
    EncodedBatch,
    dtype_name,
    resolve_device,
    resolve_dtype,
    to_device,
)


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


class HFAdapter(Adapter):
    """A transformers model whose trunk (``model.base_model``) reports per-layer hidden states.

    Holds what the text and vision-language adapters share: the model, its text config (layer
    count and width), provenance and the forward pass. Subclasses add encoding and say which
    prompt template(s) they record.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Put in eval mode.
    name : str or None
        Model id or path recorded as provenance; the path the model was loaded from when None.
    revision : str or None
        Hub revision recorded as provenance.
    """

    def __init__(self, model: PreTrainedModel, *, name: str | None, revision: str | None) -> None:
        if not isinstance(model, PreTrainedModel):
            raise TypeError(
                f"model must be a transformers PreTrainedModel; got {type(model).__name__} "
                "(wrap other modules with ModuleAdapter)."
            )
        self.model = model.eval()
        self.name = name
        self.revision = revision
        self._config = model.config.get_text_config()

    @classmethod
    def _load(
        cls,
        model_class: type,
        companion_class: type,
        model_id: str | os.PathLike,
        *,
        revision: str | None,
        dtype: str | torch.dtype,
        device: str | torch.device | None,
        **options: str,
    ) -> HFAdapter:
        """Load the model and its tokenizer or processor from the hub or a local folder.

        ``device`` defaults to CUDA when present; ``options`` go to the constructor.
        """
        model = model_class.from_pretrained(model_id, revision=revision, dtype=resolve_dtype(dtype))
        companion = companion_class.from_pretrained(model_id, revision=revision)
        return cls(
            model.to(resolve_device(device)),
            companion,
            name=source_name(model_id),
            revision=revision,
            **options,
        )

    @property
    def n_layers(self) -> int:
        return int(self._config.num_hidden_layers) + 1

    @property
    def hidden_size(self) -> int:
        return int(self._config.hidden_size)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @abc.abstractmethod
    def _template_record(self) -> str:
        """The prompt template(s) as recorded in the provenance."""

    def provenance(self) -> dict[str, str | int | float]:
        facts: dict[str, str | int | float] = {
            "model": model_name(self.model, self.name),
            "architecture": type(self.model).__name__,
            "dtype": dtype_name(model_dtype(self.model)),
        }
        if self.revision is not None:
            facts["revision"] = self.revision
        facts["template"] = self._template_record()
        return facts

    def _forward(self, batch: EncodedBatch, layers: list[int]) -> list[torch.Tensor]:
        """Run the trunk (no output head, no KV cache) and keep the hidden states of ``layers``.

        transformers records hidden states through hooks and keeps only the indices passed as
        ``output_hidden_states``; models that take only a flag return all of them, and the
        requested ones are picked here.
        """
        trunk = self.model.base_model
        inputs = to_device(batch.inputs, self.device, model_dtype(self.model))
        params = inspect.signature(trunk.forward).parameters
        if "use_cache" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            inputs["use_cache"] = False
        out = trunk(**inputs, output_hidden_states=list(layers))
        states = out.hidden_states
        if states is None or len(states) != self.n_layers:
            raise ValueError(
                f"{type(self.model).__name__} returned {0 if states is None else len(states)} "
                f"hidden states; expected {self.n_layers} (embedding output + one per block)."
            )
        return [states[layer] for layer in layers]

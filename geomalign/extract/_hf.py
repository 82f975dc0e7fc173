"""What the Hugging Face adapters share: a base class with the selective forward pass."""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel

from geomalign._model_parts import decoder_blocks, model_device, model_dtype
from geomalign.extract._base import (
    Adapter,
    EncodedBatch,
    dtype_name,
    resolve_device,
    resolve_dtype,
    to_device,
)


class Pretrained(Protocol):
    """What loads from the hub or a folder: a transformers Auto class (model or processor)."""

    def from_pretrained(
        self, model_id: str | os.PathLike[str], /, *args: Any, **kwargs: Any
    ) -> Any: ...


def load_pretrained(
    model_class: Pretrained,
    companion_class: Pretrained,
    model_id: str | os.PathLike[str],
    *,
    revision: str | None,
    dtype: str | torch.dtype,
    device: str | torch.device | None,
) -> tuple[PreTrainedModel, Any]:
    """A model (on ``device``; CUDA when present for None) and its tokenizer or processor."""
    model = model_class.from_pretrained(model_id, revision=revision, dtype=resolve_dtype(dtype))
    companion = companion_class.from_pretrained(model_id, revision=revision)
    return model.to(resolve_device(device)), companion


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

        The states follow transformers' ``hidden_states`` convention: layer 0 is the input of
        the first decoder block, layer ``l`` the output of block ``l - 1``, and the last layer the
        trunk's ``last_hidden_state`` (after the final norm where the model has one). They are
        taken by forward hooks on the decoder blocks, so only the requested layers are kept, and
        the pass stops after the last block needed when the last layer is not requested. A model
        whose blocks cannot be found returns all states (``output_hidden_states=True``) and the
        requested ones are picked.
        """
        trunk = self.model.base_model
        inputs: dict[str, object] = {
            **to_device(batch.inputs, self.device, model_dtype(self.model))
        }
        params = inspect.signature(trunk.forward).parameters
        if "use_cache" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            inputs["use_cache"] = False
        try:
            blocks = decoder_blocks(self.model)
        except TypeError:
            blocks = None
        if blocks is None or len(blocks) != self.n_layers - 1:
            return self._forward_all_states(trunk, inputs, layers)
        recorder = _BlockRecorder(blocks, layers)
        with recorder:
            try:
                out = trunk(**inputs)
            except _EnoughLayers:
                out = None
        if out is not None and self.n_layers - 1 in layers:
            recorder.states[self.n_layers - 1] = out.last_hidden_state
        missing = [layer for layer in layers if layer not in recorder.states]
        if missing:
            raise ValueError(
                f"{type(self.model).__name__}: the forward pass produced no hidden states for "
                f"layers {missing} (a decoder block did not run)."
            )
        return [recorder.states[layer] for layer in layers]

    def _forward_all_states(
        self, trunk: torch.nn.Module, inputs: dict[str, object], layers: list[int]
    ) -> list[torch.Tensor]:
        states = trunk(**inputs, output_hidden_states=True).hidden_states
        if states is None or len(states) != self.n_layers:
            raise ValueError(
                f"{type(self.model).__name__} returned {0 if states is None else len(states)} "
                f"hidden states; expected {self.n_layers} (embedding output + one per block)."
            )
        return [states[layer] for layer in layers]


class _EnoughLayers(Exception):
    """Raised by a hook to end a forward pass once every requested layer is recorded."""


class _BlockRecorder:
    """Forward hooks on decoder blocks recording the hidden states of chosen layers.

    Layer 0 is the first positional (or ``hidden_states``) input of block 0 and layer ``l`` the
    first output of block ``l - 1``; the last layer (the trunk's normed output) is left to the
    caller. Once the highest requested layer below the last is recorded, the hook raises
    :class:`_EnoughLayers` unless the last layer is requested too. A block that runs twice in
    one pass (a model that reuses its blocks) makes its layer ambiguous and raises. The hooks
    exist only inside the ``with`` block.
    """

    def __init__(self, blocks: torch.nn.ModuleList, layers: Sequence[int]) -> None:
        first: dict[int, int] = {}
        for index, block in enumerate(blocks):
            earlier = first.setdefault(id(block), index)
            if earlier != index:
                raise ValueError(
                    f"decoder blocks {earlier} and {index} are one module, so their layers are "
                    "ambiguous (models that run a block more than once are not supported)."
                )
        self.blocks = blocks
        self.layers = set(layers)
        self.states: dict[int, torch.Tensor] = {}
        last = len(blocks)
        self._stop_at = None if last in self.layers else max(self.layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _BlockRecorder:
        if 0 in self.layers:
            self._handles.append(
                self.blocks[0].register_forward_pre_hook(self._record_input, with_kwargs=True)
            )
        for index, block in enumerate(self.blocks[:-1]):
            if index + 1 in self.layers:
                self._handles.append(block.register_forward_hook(self._output_hook(index + 1)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _keep(self, layer: int, state: object) -> None:
        if isinstance(state, tuple | list):
            state = state[0]
        block = max(layer - 1, 0)
        if not isinstance(state, torch.Tensor):
            raise TypeError(
                f"decoder block {block} gave a {type(state).__name__} where the "
                "hidden states (a tensor) were expected."
            )
        if layer in self.states:
            raise ValueError(
                f"decoder block {block} ran more than once in one forward pass, so layer {layer} "
                "is ambiguous (models that run a block more than once are not supported)."
            )
        self.states[layer] = state
        if layer == self._stop_at:
            raise _EnoughLayers

    def _record_input(
        self, module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        self._keep(0, args[0] if args else kwargs["hidden_states"])

    def _output_hook(self, layer: int) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple[object, ...], output: object) -> None:
            self._keep(layer, output)

        return hook

"""Any ``torch.nn.Module``: hidden states taken from given layer modules by forward hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from geomalign._model_parts import model_device, model_dtype
from geomalign.extract._base import MODALITIES, Adapter, EncodedBatch, dtype_name, to_device

__all__ = ["ModuleAdapter"]


class ModuleAdapter(Adapter):
    """A model whose hidden states are the outputs of a list of its modules.

    Forward hooks are registered on the requested layer modules only for the duration of one
    forward pass and are removed afterwards, also when the pass raises.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(**batch.inputs)``. Put in eval mode.
    layers : sequence of torch.nn.Module
        The modules whose outputs are layers ``0, 1, ...``; by convention the embedding module
        first, then every block. A module's output is its first element when it returns a tuple
        (or a ``ModelOutput``); each must be a tensor of shape (batch, seq, hidden_size) and each
        module must run exactly once per forward pass.
    encode : callable
        ``encode(modality, items)`` returns an :class:`EncodedBatch` (for text,
        ``lambda m, captions: encode_captions(tokenizer, captions)`` does).
    hidden_size : int
        Width of the layer outputs.
    modalities : sequence of str, default=("text",)
        Views ``encode`` supports, among "image" and "text".
    name : str, default=None
        Model name recorded as provenance; the model's class name when None.
    provenance : mapping, default=None
        Further provenance entries (``revision``, ``template``, ...).

    Examples
    --------
    >>> bert = transformers.AutoModel.from_pretrained(path)  # doctest: +SKIP
    >>> adapter = ModuleAdapter(bert, [bert.embeddings, *bert.encoder.layer],
    ...     lambda m, c: encode_captions(tokenizer, c), hidden_size=384)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[nn.Module],
        encode: Callable[[str, Sequence[object]], EncodedBatch],
        *,
        hidden_size: int,
        modalities: Sequence[str] = ("text",),
        name: str | None = None,
        provenance: Mapping[str, str | int | float] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        layers = list(layers)
        if not layers:
            raise ValueError("layers must list at least one module.")
        own = {id(m) for m in model.modules()}
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Module) or id(layer) not in own:
                raise ValueError(f"layers[{i}] ({type(layer).__name__}) is not a module of model.")
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ValueError(f"modalities must be among {list(MODALITIES)}; got {modalities}.")
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive int; got {hidden_size!r}.")
        self.model = model.eval()
        self.layers = layers
        self._encode = encode
        self._hidden_size = hidden_size
        self.modalities = tuple(modalities)
        self.name = name or type(model).__name__
        self.extra = dict(provenance or {})

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def provenance(self) -> dict[str, str | int | float]:
        return {
            "model": self.name,
            "architecture": type(self.model).__name__,
            "dtype": dtype_name(model_dtype(self.model)),
            **self.extra,
        }

    def encode(self, modality: str, items: Sequence[object]) -> EncodedBatch:
        self.check_modality(modality)
        batch = self._encode(modality, items)
        if not isinstance(batch, EncodedBatch):
            raise TypeError(f"encode must return an EncodedBatch; got {type(batch).__name__}.")
        return batch

    def _forward(self, batch: EncodedBatch, layers: list[int]) -> list[torch.Tensor]:
        captured: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

        def recorder(layer: int) -> Callable:
            def hook(module: nn.Module, args: tuple, output: torch.Tensor | tuple) -> None:
                captured[layer].append(output if isinstance(output, torch.Tensor) else output[0])

            return hook

        handles = [self.layers[layer].register_forward_hook(recorder(layer)) for layer in layers]
        try:
            self.model(**to_device(batch.inputs, self.device, model_dtype(self.model)))
        finally:
            for handle in handles:
                handle.remove()
        states = []
        for layer in layers:
            if len(captured[layer]) != 1:
                raise ValueError(
                    f"layer {layer} ({type(self.layers[layer]).__name__}) ran "
                    f"{len(captured[layer])} times in one forward pass; each layer module must "
                    "run exactly once."
                )
            if not isinstance(captured[layer][0], torch.Tensor):
                raise ValueError(
                    f"layer {layer} ({type(self.layers[layer]).__name__}) returned "
                    f"{type(captured[layer][0]).__name__}, not a tensor of hidden states."
                )
            states.append(captured[layer][0])
        return states

"""What every model adapter provides: encoded batches and the hidden states of chosen layers."""

from __future__ import annotations

import abc
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["Adapter", "EncodedBatch", "resolve_device", "resolve_dtype"]

MODALITIES = ("image", "text", "joint")

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class EncodedBatch:
    """Model inputs for a batch of samples, and which token positions belong to what.

    Parameters
    ----------
    inputs : mapping of str to torch.Tensor
        Keyword arguments of the model's forward pass (on any device; adapters move them).
    attention_mask : torch.Tensor of shape (batch, seq), bool
        True at real tokens, False at padding.
    region : torch.Tensor of shape (batch, seq), bool
        True at the tokens of the sample's content: the image tokens of an image prompt or the
        caption tokens of a caption prompt. Mean, random and token ("none") pooling use them.
    truncated : mapping of int to str, default={}
        Batch rows whose caption was cut to fit the model's context, with a note saying how
        much was kept (the runner warns, or refuses, naming the sample).
    regions : mapping of str to torch.Tensor, default={}
        Named parts of the region, each (batch, seq) bool, for a prompt holding several kinds of
        content: the joint image + caption prompt has ``"image"`` and ``"text"``. Region poolings
        of such a batch pool each part into a view of its own.
    """

    inputs: Mapping[str, torch.Tensor]
    attention_mask: torch.Tensor
    region: torch.Tensor
    truncated: Mapping[int, str] = field(default_factory=dict)
    regions: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.attention_mask.ndim != 2 or self.region.shape != self.attention_mask.shape:
            raise ValueError(
                "EncodedBatch.attention_mask and .region must both have shape (batch, seq); got "
                f"{tuple(self.attention_mask.shape)} and {tuple(self.region.shape)}."
            )
        object.__setattr__(self, "attention_mask", self.attention_mask.bool())
        object.__setattr__(self, "region", self.region.bool())
        if (self.region & ~self.attention_mask).any():
            raise ValueError("EncodedBatch.region marks padding positions as content tokens.")
        for name, part in self.regions.items():
            if part.shape != self.region.shape or (part.bool() & ~self.region).any():
                raise ValueError(
                    f"EncodedBatch.regions[{name!r}] must be a (batch, seq) part of the region."
                )

    def __len__(self) -> int:
        return int(self.attention_mask.shape[0])


class Adapter(abc.ABC):
    """A model seen as a stack of layers that turn an encoded batch into hidden states.

    Layer 0 is the embedding output (the input of the first block) and layer ``l`` the output of
    block ``l``, so a model with ``L`` blocks has ``n_layers = L + 1``.

    Subclasses set :attr:`modalities` and implement :meth:`encode`, :meth:`_forward` and the
    properties; :meth:`hidden_states` validates the layers and runs under
    ``torch.inference_mode``.
    """

    #: The views this adapter encodes by default, a subset of ("image", "text").
    modalities: tuple[str, ...] = ()
    #: Further views it encodes when asked for, e.g. ("joint",): image and caption in one prompt.
    optional_modalities: tuple[str, ...] = ()

    @property
    @abc.abstractmethod
    def n_layers(self) -> int:
        """Number of hidden-state layers, embedding output included."""

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device the model runs on."""

    @abc.abstractmethod
    def provenance(self) -> dict[str, str | int | float]:
        """Provenance recorded with the checkpoint: ``model``, ``revision``, ``dtype``, ..."""

    @abc.abstractmethod
    def encode(self, modality: str, items: Sequence[object]) -> EncodedBatch:
        """Encode a batch: images for ``"image"``, caption strings for ``"text"``."""

    @abc.abstractmethod
    def _forward(self, batch: EncodedBatch, layers: list[int]) -> list[torch.Tensor]:
        """Run the model; return the hidden states of ``layers``, each (batch, seq, dim)."""

    def hidden_states(self, batch: EncodedBatch, layers: Sequence[int]) -> list[torch.Tensor]:
        """Return the hidden states of ``layers`` for ``batch``, each of shape (batch, seq, dim).

        Only the requested layers are kept while the model runs.
        """
        layers = self.check_layers(layers)
        with torch.inference_mode():
            states = self._forward(batch, layers)
        expected = (len(batch), batch.attention_mask.shape[1], self.hidden_size)
        for layer, state in zip(layers, states, strict=True):
            if tuple(state.shape) != expected:
                raise ValueError(
                    f"{type(self).__name__}: layer {layer} has hidden states of shape "
                    f"{tuple(state.shape)}; expected (batch, seq, hidden_size) = {expected}."
                )
        return states

    def check_layers(self, layers: str | Sequence[int]) -> list[int]:
        """Resolve ``"all"`` or a sequence of layer numbers (negative counts from the end)."""
        if isinstance(layers, str):
            if layers != "all":
                raise ValueError(f"layers must be 'all' or a sequence of ints; got {layers!r}.")
            return list(range(self.n_layers))
        resolved: list[int] = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
                raise TypeError(f"layers must hold ints; got {layer!r} in {list(layers)}.")
            layer = int(layer)
            if not -self.n_layers <= layer < self.n_layers:
                raise ValueError(
                    f"layer {layer} is out of range for a model with {self.n_layers} layers "
                    f"(0 = embedding output, 1..{self.n_layers - 1} = blocks)."
                )
            resolved.append(layer % self.n_layers)
        if not resolved or len(set(resolved)) != len(resolved):
            raise ValueError(f"layers must be distinct and non-empty; got {list(layers)}.")
        return resolved

    def check_modality(self, modality: str) -> None:
        """Raise ValueError unless this adapter encodes ``modality``."""
        known = [*self.modalities, *self.optional_modalities]
        if modality not in known:
            raise ValueError(f"{type(self).__name__} encodes modalities {known}; got {modality!r}.")

    def regions(self, modality: str) -> tuple[str, ...]:
        """Names of the region's parts in ``modality``'s batches (see ``EncodedBatch.regions``).

        Region poolings write one view per part, named ``"{modality}-{part}"``; no parts: one
        view named ``modality``.
        """
        return ()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or CUDA when present and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A floating torch dtype from its name or itself."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be one of {list(_DTYPES)}; got {dtype!r}.")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def to_device(
    inputs: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Move tensors to ``device``; floating ones (pixel values) also take the model's dtype."""
    return {
        key: value.to(device, dtype) if value.is_floating_point() else value.to(device)
        for key, value in inputs.items()
    }


def fill_template(template: str, placeholder: str, value: str) -> tuple[str, int]:
    """Put ``value`` at the template's single ``placeholder``; return the text and its start."""
    start = template.index(placeholder)
    return template[:start] + value + template[start + len(placeholder) :], start


def check_template(template: str, placeholder: str, forbidden: str | None, name: str) -> str:
    """Raise ValueError unless ``template`` holds ``placeholder`` exactly once (and no other)."""
    if not isinstance(template, str) or template.count(placeholder) != 1:
        raise ValueError(f"{name} must contain {placeholder!r} exactly once; got {template!r}.")
    if forbidden is not None and forbidden in template:
        raise ValueError(f"{name} must not contain {forbidden!r}; got {template!r}.")
    return template

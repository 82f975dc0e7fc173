"""Layer transplantation: hybrids of a base and a tuned checkpoint, made in place.

A :class:`LayerTransplant` keeps one model (the base) on its device and a copy of the weights that
differ between the two checkpoints on ``storage_device``. :meth:`LayerTransplant.set` turns the
model into the hybrid whose decoder blocks in a window come from the tuned checkpoint, by copying
tensors into the existing parameters; no model is reloaded or rebuilt between hybrids, and only the
parts whose source changes are copied.

What moves besides the decoder blocks is set by ``shell``:

- ``"adjacent"`` (default): the *input side* (everything before the first block: vision tower,
  projector, token embeddings) comes from the tuned checkpoint exactly when block 0 does, and the
  *output side* (the decoder's final norm and the output head) exactly when the last block does.
  The cumulative hybrid ``[0, L)`` is then the tuned model and ``[0, 0)`` the base model, so the
  curve runs between the two real checkpoints; the first and last windows also carry the parts
  tuned next to them (in LLaVA's stage 2 the projector).
- ``"base"``: only decoder blocks move; the rest stays the base model's (a pure layer effect, but
  the full transplant is not the tuned model: it keeps the stage-1 projector).
- ``"tuned"``: the rest always comes from the tuned checkpoint (tuned shell, base blocks outside
  the window).

A weight shared between the input embeddings and the output head (tied embeddings) belongs to the
input side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from geomalign._model_parts import (
    check_window,
    decoder_blocks,
    decoder_model,
    input_embeddings,
    output_embeddings,
)

__all__ = ["LayerTransplant", "block_windows"]

_SHELLS = ("adjacent", "base", "tuned")


def block_windows(
    n_blocks: int,
    *,
    mode: Literal["cumulative", "reverse", "sliding"] = "cumulative",
    width: int | None = None,
    stride: int = 1,
) -> list[range]:
    """Windows of decoder blocks for an effect curve.

    Parameters
    ----------
    n_blocks : int
        Number of decoder blocks.
    mode : {"cumulative", "reverse", "sliding"}, default="cumulative"
        ``"cumulative"``: ``range(0, s)`` for ``s = 0 .. n_blocks`` -- transplanted into the base,
        the two-part split "tuned blocks [0, s) + base blocks [s, L)"; ``"reverse"``:
        ``range(s, n_blocks)`` for ``s = n_blocks .. 0`` -- the split "base blocks [0, s) + tuned
        blocks [s, L)"; ``"sliding"``: ``range(s, s + width)`` for ``s = 0, stride, ...`` while the
        window fits.
    width : int, optional
        Window width, required for ``"sliding"``.
    stride : int, default=1
        Step between window starts for ``"sliding"``.

    Returns
    -------
    windows : list of range

    Examples
    --------
    >>> block_windows(4, mode="sliding", width=2, stride=1)
    [range(0, 2), range(1, 3), range(2, 4)]
    >>> block_windows(2, mode="reverse")
    [range(2, 2), range(1, 2), range(0, 2)]
    """
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive int; got {n_blocks!r}.")
    if mode == "cumulative":
        if width is not None:
            raise ValueError("width applies to mode='sliding' only; got width with 'cumulative'.")
        return [range(0, end) for end in range(n_blocks + 1)]
    if mode == "reverse":
        if width is not None:
            raise ValueError("width applies to mode='sliding' only; got width with 'reverse'.")
        return [range(start, n_blocks) for start in range(n_blocks, -1, -1)]
    if mode != "sliding":
        raise ValueError(f"mode must be 'cumulative', 'reverse' or 'sliding'; got {mode!r}.")
    if width is None or isinstance(width, bool) or not 1 <= width <= n_blocks:
        raise ValueError(
            f"width must be an int in [1, {n_blocks}] for mode='sliding'; got {width!r}."
        )
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int; got {stride!r}.")
    return [range(start, start + width) for start in range(0, n_blocks - width + 1, stride)]


def _prefix_of(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise TypeError(f"{type(target).__name__} is not a submodule of {type(model).__name__}.")


def _part_names(model: nn.Module) -> dict[str, str]:
    """Map each state-dict key of ``model`` to its part: "block:<i>", "input" or "output"."""
    decoder = decoder_model(model)
    blocks_prefix = _prefix_of(model, decoder_blocks(model)) + "."
    output_prefixes = []
    head = output_embeddings(model)
    if head is not None:
        output_prefixes.append(_prefix_of(model, head) + ".")
    decoder_prefix = _prefix_of(model, decoder)
    embeddings = input_embeddings(decoder)
    for name, child in decoder.named_children():
        if child is decoder.layers or child is embeddings:
            continue
        if any(True for _ in child.parameters()):  # the final norm; rotary tables have no weights
            output_prefixes.append(f"{decoder_prefix}.{name}." if decoder_prefix else f"{name}.")
    state = model.state_dict(keep_vars=True)
    parts: dict[str, str] = {}
    for key in state:
        if key.startswith(blocks_prefix):
            parts[key] = "block:" + key[len(blocks_prefix) :].split(".", 1)[0]
        elif any(key.startswith(prefix) for prefix in output_prefixes):
            parts[key] = "output"
        else:
            parts[key] = "input"
    # A tensor reachable under several keys (tied embeddings) belongs to the input side if any of
    # its keys does, so that one tensor is never copied from two sources.
    input_tensors = {id(state[key]) for key, part in parts.items() if part == "input"}
    return {
        key: "input" if id(state[key]) in input_tensors else part for key, part in parts.items()
    }


class LayerTransplant:
    """Turn a base model, in place, into hybrids with decoder blocks from a tuned checkpoint.

    Parameters
    ----------
    base : torch.nn.Module
        The base model; it is modified in place by :meth:`set` and restored by :meth:`restore` (or
        on leaving a ``with`` block).
    tuned : torch.nn.Module or mapping of str to torch.Tensor
        The tuned model (or its state dict) with the same architecture. Only the tensors that differ
        from the base are kept (on ``storage_device``), so ``tuned`` can be freed afterwards.
    shell : {"adjacent", "base", "tuned"}, default="adjacent"
        What moves besides the decoder blocks; see the module docstring.
    storage_device : str or torch.device, default="cpu"
        Where the copies of the differing tensors of both checkpoints are kept.

    Attributes
    ----------
    n_blocks : int
        Number of decoder blocks.
    differing_parts : list of str
        Parts whose weights differ between the checkpoints (``"input"``, ``"block:<i>"``,
        ``"output"``).

    Examples
    --------
    >>> with LayerTransplant(base, tuned) as hybrid:  # doctest: +SKIP
    ...     hybrid.set(range(0, 4))
    ...     logits = base(**batch).logits
    """

    def __init__(
        self,
        base: nn.Module,
        tuned: nn.Module | Mapping[str, torch.Tensor],
        *,
        shell: Literal["adjacent", "base", "tuned"] = "adjacent",
        storage_device: str | torch.device = "cpu",
    ) -> None:
        if shell not in _SHELLS:
            raise ValueError(f"shell must be one of {list(_SHELLS)}; got {shell!r}.")
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be a torch.nn.Module; got {type(base).__name__}.")
        tuned_state: Mapping[str, torch.Tensor]
        if isinstance(tuned, nn.Module):
            tuned_state = tuned.state_dict()
        elif isinstance(tuned, Mapping):
            tuned_state = tuned
        else:
            raise TypeError(
                f"tuned must be a torch.nn.Module or a state dict; got {type(tuned).__name__}."
            )
        self.shell = shell
        self._model = base
        self._live = base.state_dict(keep_vars=True)
        parts = _part_names(base)
        missing = sorted(set(self._live) - set(tuned_state))
        extra = sorted(set(tuned_state) - set(self._live))
        if missing or extra:
            raise ValueError(
                "base and tuned must have the same state-dict keys; tuned lacks "
                f"{missing[:5]} and has extra {extra[:5]}."
            )
        self.n_blocks = len(decoder_blocks(base))
        self._base: dict[str, torch.Tensor] = {}
        self._tuned: dict[str, torch.Tensor] = {}
        self._keys: dict[str, list[str]] = {}
        with torch.no_grad():
            for key, live in self._live.items():
                other = tuned_state[key]
                if other.shape != live.shape:
                    raise ValueError(
                        f"tensor {key!r} has shape {tuple(live.shape)} in base but "
                        f"{tuple(other.shape)} in tuned; the checkpoints must share an "
                        "architecture."
                    )
                if torch.equal(live.detach().cpu(), other.detach().cpu()):
                    continue
                self._base[key] = live.detach().to(storage_device, copy=True)
                self._tuned[key] = other.detach().to(storage_device, copy=True)
                self._keys.setdefault(parts[key], []).append(key)
        self.differing_parts = sorted(self._keys, key=_part_order)
        self._current = dict.fromkeys(self._keys, "base")

    def _sources(self, blocks: Sequence[int]) -> dict[str, str]:
        chosen = set(blocks)
        sources = {f"block:{i}": "tuned" if i in chosen else "base" for i in range(self.n_blocks)}
        if self.shell == "adjacent":
            sources["input"] = "tuned" if 0 in chosen else "base"
            sources["output"] = "tuned" if self.n_blocks - 1 in chosen else "base"
        else:
            sources["input"] = sources["output"] = self.shell
        return sources

    def set(self, blocks: Sequence[int]) -> None:
        """Make the model the hybrid whose decoder blocks in ``blocks`` come from the tuned model.

        Parameters
        ----------
        blocks : range or sequence of int
            0-based decoder block indices, e.g. ``range(0, l)`` or ``range(s, s + w)``; empty gives
            the base model (with ``shell="adjacent"`` or ``"base"``).
        """
        self._apply(self._sources(check_window(blocks, self.n_blocks, name="blocks")))

    def set_checkpoint(self, which: Literal["base", "tuned"]) -> None:
        """Make the model exactly one of the two checkpoints, whatever the ``shell``."""
        if which not in ("base", "tuned"):
            raise ValueError(f"which must be 'base' or 'tuned'; got {which!r}.")
        self._apply(dict.fromkeys(self._keys, which))

    def restore(self) -> None:
        """Give the model back its base weights."""
        self.set_checkpoint("base")

    def _apply(self, sources: Mapping[str, str]) -> None:
        with torch.no_grad():
            for part, source in sources.items():
                if part not in self._keys or self._current[part] == source:
                    continue
                weights = self._tuned if source == "tuned" else self._base
                for key in self._keys[part]:
                    self._live[key].copy_(weights[key])
                self._current[part] = source

    def __enter__(self) -> LayerTransplant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _part_order(part: str) -> tuple[int, int]:
    if part == "input":
        return (0, 0)
    if part == "output":
        return (2, 0)
    return (1, int(part.split(":", 1)[1]))

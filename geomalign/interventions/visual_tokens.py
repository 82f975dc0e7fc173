"""Interventions on the image tokens of a LLaVA-style model, through forward hooks.

Three context managers change what the decoder does with the image-token positions (the positions
whose input id is the image placeholder token) while they are active:

- :func:`skip_visual_tokens` -- image tokens bypass blocks ``[0, k)``: their hidden state passes
  through those blocks unchanged, so visual features enter the residual stream at block ``k``;
- :func:`ablate_visual_tokens` -- at the input of every block of a window, the image-token hidden
  states are replaced by their per-sample mean or by zeros;
- :func:`knockout_visual_attention` -- in every block of a window, non-image (text) positions cannot
  attend to image positions.

Every hook is removed when the ``with`` block exits, also when it exits by an exception. The image
positions are read from the ``input_ids`` of each forward call and, in incremental decoding with a
key/value cache, appended to those of the calls that filled the cache, so every intervention acts
on every decoding step of ``model.generate``: skip and ablation change the image states when the
prompt is encoded (the cached keys and values of the image positions are the intervened ones), and
the knockout masks the cached image keys for each new query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import torch
from torch import nn

from geomalign._model_parts import check_window, decoder_blocks
from geomalign.interventions._model import attention_module, image_token_id

__all__ = ["ablate_visual_tokens", "knockout_visual_attention", "skip_visual_tokens"]


class _ImagePositions:
    """Holds the boolean image-position masks of the forward call in progress.

    ``mask`` (batch, seq) covers the positions of the call; ``keys`` (batch, cached + seq) also
    the positions already in its key/value cache, accumulated over the calls of one decoding.
    """

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        self.mask: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None

    def capture(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(input_ids, torch.Tensor):
            raise ValueError(
                "visual-token interventions need `input_ids` in the forward call to find the "
                "image positions; got inputs_embeds only."
            )
        self.mask = input_ids == self.token_id
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # renamed in transformers 5
        get_length = getattr(cache, "get_seq_length", None)
        cached = int(get_length()) if callable(get_length) else 0
        if cached == 0:
            self.keys = self.mask
        elif self.keys is not None and self.keys.shape == (self.mask.shape[0], cached):
            self.keys = torch.cat([self.keys, self.mask], dim=1)
        else:
            self.keys = None  # a cache filled outside this intervention: positions unknown

    def for_hidden(self, hidden: torch.Tensor, where: str) -> torch.Tensor:
        """The mask, checked against ``hidden`` of shape (batch, seq, dim)."""
        if self.mask is None or self.mask.shape != hidden.shape[:2]:
            got = None if self.mask is None else tuple(self.mask.shape)
            raise ValueError(
                f"{where}: hidden states of shape {tuple(hidden.shape)} do not match the image "
                f"positions {got} of the forward call; visual-token interventions need the "
                "`input_ids` of the model's own forward call."
            )
        return self.mask.to(hidden.device)


def _hidden_in(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict[str, Any], hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@contextmanager
def _hooked(
    model: nn.Module,
    token_id: int | None,
    register: Callable[[_ImagePositions, nn.ModuleList, ExitStack], None],
) -> Iterator[None]:
    """Register the image-position tracker and the hooks ``register`` adds; always remove them."""
    positions = _ImagePositions(image_token_id(model, token_id))
    decoder = decoder_blocks(model)
    with ExitStack() as stack:
        handle = model.register_forward_pre_hook(positions.capture, with_kwargs=True)
        stack.callback(handle.remove)
        register(positions, decoder, stack)
        yield


@contextmanager
def skip_visual_tokens(
    model: nn.Module, k: int, *, image_token_id: int | None = None
) -> Iterator[None]:
    """Let image tokens bypass decoder blocks ``[0, k)``.

    Inside the ``with`` block, the output of each block ``i < k`` at the image positions is replaced
    by that block's input there, so the image-token hidden state entering block ``k`` is the
    projected visual feature itself. Text positions still attend to the (unchanged) image states in
    the skipped blocks; combine with :func:`knockout_visual_attention` to hide them as well.

    Parameters
    ----------
    model : torch.nn.Module
        A LLaVA-style model whose forward takes ``input_ids`` with image placeholder tokens.
    k : int
        Number of leading blocks the image tokens skip, ``0 <= k <= n_blocks``; ``k=0`` changes
        nothing.
    image_token_id : int, optional
        Id of the image placeholder token; default: from the model config.

    Examples
    --------
    >>> with skip_visual_tokens(model, 4):  # doctest: +SKIP
    ...     logits = model(**batch).logits
    """
    n_blocks = len(decoder_blocks(model))
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n_blocks:
        raise ValueError(f"k must be an int in [0, {n_blocks}] (the model's blocks); got {k!r}.")

    def register(positions: _ImagePositions, decoder: nn.ModuleList, stack: ExitStack) -> None:
        for index in range(k):
            where = f"decoder block {index}"

            def hook(module, args, kwargs, output, where=where):
                hidden_in = _hidden_in(args, kwargs)
                hidden_out = output[0] if isinstance(output, tuple) else output
                mask = positions.for_hidden(hidden_in, where).unsqueeze(-1)
                kept = torch.where(mask, hidden_in, hidden_out)
                return (kept, *output[1:]) if isinstance(output, tuple) else kept

            handle = decoder[index].register_forward_hook(hook, with_kwargs=True)
            stack.callback(handle.remove)

    with _hooked(model, image_token_id, register):
        yield


@contextmanager
def ablate_visual_tokens(
    model: nn.Module,
    blocks: Sequence[int],
    *,
    fill: Literal["mean", "zero"] = "mean",
    image_token_id: int | None = None,
) -> Iterator[None]:
    """Replace the image-token hidden states at the input of every block in ``blocks``.

    Parameters
    ----------
    model : torch.nn.Module
        A LLaVA-style model whose forward takes ``input_ids`` with image placeholder tokens.
    blocks : range or sequence of int
        0-based decoder blocks; ``range(a, b)`` ablates the inputs of blocks ``a..b-1``. Empty
        changes nothing.
    fill : {"mean", "zero"}, default="mean"
        ``"mean"``: each image-token state becomes the mean of the image-token states of the same
        sample at that block (removes which-patch-is-where information, keeps the image's average);
        ``"zero"``: the states are set to zero (removes the image altogether from that block on,
        except what text positions read from it in earlier blocks).

    Notes
    -----
    Blocks after the window see image-token states recomputed from the ablated ones; the window
    marks where the replacement is imposed, not where its effect ends.
    """
    if fill not in ("mean", "zero"):
        raise ValueError(f"fill must be 'mean' or 'zero'; got {fill!r}.")
    chosen = check_window(blocks, len(decoder_blocks(model)))

    def register(positions: _ImagePositions, decoder: nn.ModuleList, stack: ExitStack) -> None:
        for index in chosen:
            where = f"decoder block {index}"

            def hook(module, args, kwargs, where=where):
                hidden = _hidden_in(args, kwargs)
                mask = positions.for_hidden(hidden, where).unsqueeze(-1)
                if fill == "zero":
                    replaced = hidden.masked_fill(mask, 0.0)
                else:
                    weights = mask.to(hidden.dtype)
                    mean = (hidden * weights).sum(1, keepdim=True) / weights.sum(
                        1, keepdim=True
                    ).clamp(min=1.0)
                    replaced = torch.where(mask, mean, hidden)
                return _with_hidden(args, kwargs, replaced)

            handle = decoder[index].register_forward_pre_hook(hook, with_kwargs=True)
            stack.callback(handle.remove)

    with _hooked(model, image_token_id, register):
        yield


def _knocked_out_mask(
    mask: object, image: torch.Tensor, where: str, keys: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention mask with every (text query, image key) pair forbidden.

    ``image`` (batch, query) marks the image positions among the queries, ``keys`` (batch, key)
    among the keys (default: the queries themselves, a call without a cache); the queries are
    the last positions of the keys.
    """
    keys = image if keys is None else keys
    n_query, n_key = image.shape[1], keys.shape[1]
    blocked = (~image)[:, None, :, None] & keys[:, None, None, :]  # (batch, 1, query, key)
    if mask is None:  # SDPA without padding: the causal pattern is implicit
        causal = torch.ones(n_query, n_key, dtype=torch.bool, device=image.device)
        causal = causal.tril(diagonal=n_key - n_query)
        return causal[None, None] & ~blocked
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4:
        got = (
            f"shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        )
        raise TypeError(
            f"{where}: attention knockout needs a 4-D attention mask (eager or sdpa attention); "
            f"got {got}. Load the model with attn_implementation='sdpa' or 'eager'."
        )
    if mask.shape[-2] != n_query or mask.shape[-1] < n_key:
        raise ValueError(
            f"{where}: attention mask of shape {tuple(mask.shape)} does not match the {n_query} "
            f"queries and {n_key} keys of the forward call."
        )
    if mask.shape[-1] > n_key:  # a static cache longer than the sequence: its tail is masked
        pad = torch.zeros(*blocked.shape[:3], mask.shape[-1] - n_key, dtype=torch.bool)
        blocked = torch.cat([blocked, pad.to(blocked.device)], dim=-1)
    if mask.dtype == torch.bool:
        return mask & ~blocked
    return mask.masked_fill(blocked, torch.finfo(mask.dtype).min)


@contextmanager
def knockout_visual_attention(
    model: nn.Module, blocks: Sequence[int], *, image_token_id: int | None = None
) -> Iterator[None]:
    """Forbid text positions to attend to image positions in the decoder blocks ``blocks``.

    The attention mask handed to each block's attention module is replaced by one in which every
    (non-image query, image key) pair is masked, on top of the causal and padding pattern. Image
    positions keep attending to each other and to earlier text. In decoding with a key/value cache
    (``model.generate`` inside the ``with`` block) each new token is a text query, so it sees no
    cached image key in these blocks.

    Parameters
    ----------
    model : torch.nn.Module
        A LLaVA-style model using ``eager`` or ``sdpa`` attention (flash and flex attention take no
        4-D mask and are refused with a TypeError at the first forward call).
    blocks : range or sequence of int
        0-based decoder blocks; empty changes nothing.
    image_token_id : int, optional
        Id of the image placeholder token; default: from the model config.
    """
    all_blocks = decoder_blocks(model)
    chosen = check_window(blocks, len(all_blocks))
    attention = {index: attention_module(all_blocks[index], index) for index in chosen}

    def register(positions: _ImagePositions, decoder: nn.ModuleList, stack: ExitStack) -> None:
        for index, module in attention.items():
            where = f"attention of decoder block {index}"

            def hook(module, args, kwargs, where=where):
                hidden = _hidden_in(args, kwargs)
                image = positions.for_hidden(hidden, where)
                if positions.keys is None:
                    raise ValueError(
                        f"{where}: the forward call continues a key/value cache filled outside "
                        "the knockout, whose image positions are unknown; start the decoding "
                        "inside the `with` block."
                    )
                if "attention_mask" not in kwargs:
                    raise TypeError(
                        f"{where}: the attention module got no `attention_mask` keyword."
                    )
                keys = positions.keys.to(image.device)
                new = _knocked_out_mask(kwargs["attention_mask"], image, where, keys)
                return args, {**kwargs, "attention_mask": new}

            handle = module.register_forward_pre_hook(hook, with_kwargs=True)
            stack.callback(handle.remove)

    with _hooked(model, image_token_id, register):
        yield

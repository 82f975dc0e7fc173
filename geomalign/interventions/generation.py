"""Batched greedy decoding and continuation log-likelihoods, independent of the batch size.

Each item is encoded on its own by the model's processor (so an item's tokens, image-token count
and pixel values never depend on its batch mates), then batches are padded: on the left for
generation, so every prompt ends at the last column and the new tokens line up; on the right for
teacher-forced log-likelihoods. Attention masks cover the padding and position ids count only the
real tokens (``cumsum(mask) - 1``), so a padded item is computed as it would be alone.

Decoding is ``model.generate`` (greedy, KV cache), so layer transplants (weights) and the
visual-token hooks of :mod:`~geomalign.interventions.visual_tokens` act on every decoding step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from geomalign._model_parts import model_device

__all__ = [
    "Encoded",
    "batches",
    "collate",
    "continuation_logprobs",
    "encode_prompts",
    "greedy_generate",
]


@dataclass(frozen=True)
class Encoded:
    """One item's prompt as the model takes it: token ids and its vision inputs (batch dim 1)."""

    ids: tuple[int, ...]
    vision: dict[str, torch.Tensor]


def tokenizer_of(processor: Any) -> Any:
    """The tokenizer of a processor (or the tokenizer itself)."""
    return getattr(processor, "tokenizer", processor)


def encode_prompts(
    processor: Any, prompts: Sequence[str], images: Sequence[Image.Image] | None
) -> list[Encoded]:
    """Encode each prompt (with its image) on its own; ``images`` None for text-only prompts."""
    out = []
    for k, prompt in enumerate(prompts):
        if images is None:
            ids = tokenizer_of(processor)(prompt, return_tensors="pt")["input_ids"][0]
            out.append(Encoded(tuple(ids.tolist()), {}))
            continue
        encoded = processor(images=[images[k]], text=[prompt], return_tensors="pt")
        vision = {
            key: value
            for key, value in encoded.items()
            if key not in ("input_ids", "attention_mask") and isinstance(value, torch.Tensor)
        }
        out.append(Encoded(tuple(encoded["input_ids"][0].tolist()), vision))
    return out


def _stack_vision(rows: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate per-item vision tensors; zero-pad dims that differ (LLaVA-NeXT patch counts,
    which the model reads back from ``image_sizes``)."""
    if not rows or not rows[0]:
        return {}
    out = {}
    for key in rows[0]:
        tensors = [r[key] for r in rows]
        shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].ndim)]
        padded = []
        for t in tensors:
            if list(t.shape) != shape:
                grown = t.new_zeros([t.shape[0], *shape[1:]])
                grown[tuple(slice(0, s) for s in t.shape)] = t
                t = grown
            padded.append(t)
        out[key] = torch.cat(padded, dim=0)
    return out


def collate(
    sequences: Sequence[Sequence[int]],
    vision: Sequence[dict[str, torch.Tensor]],
    *,
    side: Literal["left", "right"],
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """Pad token sequences into a batch with attention mask and position ids."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), int(pad_token_id), dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        cols = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        input_ids[row, cols] = torch.as_tensor(list(seq), dtype=torch.long)
        attention[row, cols] = 1
    positions = (attention.cumsum(1) - 1).clamp(min=0)
    batch = {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}
    return {**batch, **_stack_vision(vision)}


def _to_model(batch: dict[str, torch.Tensor], model: nn.Module, device: torch.device) -> dict:
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return {
        key: value.to(device=device, dtype=dtype)
        if value.is_floating_point() and dtype is not None
        else value.to(device)
        for key, value in batch.items()
    }


def batches(n: int, batch_size: int, *, progress: bool, label: str) -> Iterator[slice]:
    """Consecutive slices of ``batch_size`` rows of ``n``, with a progress bar in items/s."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    # disable=None: a bar on a terminal only
    with tqdm(total=n, desc=label, unit="item", disable=None if progress else True) as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield slice(start, stop)
            bar.update(stop - start)


def greedy_generate(
    model: nn.Module,
    encoded: Sequence[Encoded],
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None,
    pad_token_id: int,
    suppress_token_ids: Sequence[int] = (),
    device: str | torch.device | None = None,
) -> list[list[int]]:
    """Greedy continuations of one batch of encoded prompts (new token ids, up to the end token).

    Parameters
    ----------
    model : torch.nn.Module
        A generative Hugging Face model (``generate``), vision-language or text-only.
    encoded : sequence of Encoded
        Prompts from :func:`encode_prompts`, left-padded into one batch.
    max_new_tokens : int
        Most tokens generated per item.
    eos_token_id : int or sequence of int, optional
        Token(s) that end an answer (not returned).
    pad_token_id : int
        Left-padding id.
    suppress_token_ids : sequence of int, default=()
        Tokens never generated (the image placeholder: a generated one would be taken for an
        image position).
    device : str or torch.device, optional
        Where the batch goes; default the model's device.

    Returns
    -------
    list of list of int
    """
    from transformers import GenerationConfig

    device = torch.device(device) if device is not None else model_device(model)
    stops = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or ())
    config = GenerationConfig(
        max_new_tokens=int(max_new_tokens),
        do_sample=False,
        num_beams=1,
        eos_token_id=sorted(stops) or None,
        pad_token_id=int(pad_token_id),
        suppress_tokens=[int(t) for t in suppress_token_ids] or None,
    )
    batch = collate(
        [e.ids for e in encoded],
        [e.vision for e in encoded],
        side="left",
        pad_token_id=pad_token_id,
    )
    batch.pop("position_ids")  # generate derives them from the mask at every step
    inputs = _to_model(batch, model, device)
    with torch.inference_mode():
        sequences = model.generate(**inputs, generation_config=config)  # type: ignore[operator]
    out = []
    for tokens in sequences[:, inputs["input_ids"].shape[1] :].tolist():
        end = next((k for k, t in enumerate(tokens) if t in stops), len(tokens))
        out.append(tokens[:end])
    return out


def continuation_logprobs(
    model: nn.Module,
    encoded: Sequence[Encoded],
    continuations: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Summed log-probability (nats) of each continuation after its prompt, one batch.

    Row ``k`` scores ``continuations[k]`` after ``encoded[k]`` by teacher forcing (repeat a
    prompt to score several continuations of it). Log-softmax in float32, sums in float64,
    whatever the weight dtype.

    Returns
    -------
    numpy.ndarray of shape (n_rows,), float64
    """
    if len(encoded) != len(continuations):
        raise ValueError(
            f"got {len(encoded)} prompts but {len(continuations)} continuations; need one each."
        )
    if any(len(c) == 0 for c in continuations):
        raise ValueError("every continuation must hold at least one token.")
    device = torch.device(device) if device is not None else model_device(model)
    sequences = [(*p.ids, *c) for p, c in zip(encoded, continuations, strict=True)]
    batch = collate(sequences, [p.vision for p in encoded], side="right", pad_token_id=pad_token_id)
    out = np.empty(len(encoded))
    with torch.inference_mode():
        logits = model(**_to_model(batch, model, device), use_cache=False).logits
        for row, (prompt, cont) in enumerate(zip(encoded, continuations, strict=True)):
            start = len(prompt.ids)
            picked = logits[row, start - 1 : start - 1 + len(cont)].float()
            wanted = torch.as_tensor(list(cont), device=picked.device)
            logp = torch.log_softmax(picked, dim=-1).gather(1, wanted[:, None])
            out[row] = float(logp.double().sum())
    return out

"""Pooling token hidden states into one row per sample (or keeping the tokens)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from geomalign.extract._base import Adapter, EncodedBatch

#: Pooling names: mean over the region's tokens, the prompt's last token, its first token (an
#: encoder's CLS), one seeded random token of the region, or every region token ("none", a token
#: view).
POOLINGS = ("mean", "last", "first", "random", "none")
#: Poolings that read the region (the others read only the attention mask).
REGION_POOLINGS = ("mean", "random", "none")


class ViewKey(NamedTuple):
    """A view a modality's forward pass fills: its store modality, pooling and region part."""

    modality: str
    pooling: str
    part: str | None


def view_keys(adapter: Adapter, modality: str, poolings: Sequence[str]) -> list[ViewKey]:
    """The views of ``modality`` under ``poolings``, all filled from one forward pass.

    A region pooling of a modality whose region has parts (the joint prompt's image and caption
    tokens) gives one view per part, ``"{modality}-{part}"``; other poolings, and modalities
    without parts, give one view named ``modality``.
    """
    parts = adapter.regions(modality)
    keys: list[ViewKey] = []
    for pooling in poolings:
        if parts and pooling in REGION_POOLINGS:
            keys.extend(ViewKey(f"{modality}-{part}", pooling, part) for part in parts)
        else:
            keys.append(ViewKey(modality, pooling, None))
    return keys


def with_part(batch: EncodedBatch, part: str | None) -> EncodedBatch:
    """The batch with its region narrowed to one named part (itself for None)."""
    if part is None:
        return batch
    return dataclasses.replace(batch, region=batch.regions[part], regions={})


def sample_seed(random_state: int, sample_id: str) -> int:
    """A seed fixed by ``random_state`` and the sample id alone (not by batch or order)."""
    digest = hashlib.blake2b(f"{random_state}\0{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def token_positions(
    batch: EncodedBatch, pooling: str, rows: torch.Tensor, seeds: Sequence[int] | None
) -> torch.Tensor | None:
    """The one position per row that "last", "first" or "random" pools; None for other poolings."""
    if pooling == "last":
        # cumsum peaks first at the last real token, whatever the padding side
        return batch.attention_mask[rows].long().cumsum(1).argmax(1)
    if pooling == "first":
        return batch.attention_mask[rows].long().argmax(1)  # the first real token
    if pooling == "random":
        region = batch.region[rows]
        picked = []
        for i, seed in enumerate(seeds or ()):
            candidates = torch.nonzero(region[i]).flatten()
            picked.append(candidates[np.random.default_rng(seed).integers(candidates.numel())])
        return torch.stack(picked)
    return None


def pool(
    states: Sequence[torch.Tensor],
    batch: EncodedBatch,
    pooling: str,
    rows: torch.Tensor,
    *,
    seeds: Sequence[int] | None = None,
) -> torch.Tensor:
    """Pool the hidden states of batch rows ``rows`` (each region non-empty).

    Parameters
    ----------
    states : sequence of torch.Tensor
        One (batch, seq, dim) tensor per layer.
    batch : EncodedBatch
        The batch the states belong to.
    pooling : str
        One of :data:`POOLINGS`.
    rows : torch.Tensor of int
        Batch rows to pool, in output order.
    seeds : sequence of int, default=None
        One seed per row of ``rows`` (see :func:`sample_seed`); needed for "random".

    Returns
    -------
    torch.Tensor of shape (n_layers, n_out, dim), float32
        ``n_out = len(rows)``, or for "none" the rows' region tokens, concatenated in row order.
    """
    device = states[0].device
    rows = rows.to(device)
    if pooling == "mean":
        weights = batch.region.to(device)[rows].float()
        weights = weights / weights.sum(1, keepdim=True)
        out = [torch.bmm(weights[:, None, :], h[rows].float())[:, 0] for h in states]
    elif pooling == "none":
        region = batch.region.to(device)[rows]
        out = [h[rows][region].float() for h in states]
    elif pooling in ("last", "first", "random"):
        picked = token_positions(batch, pooling, rows.cpu(), seeds)
        assert picked is not None  # one position per row for these poolings
        positions = picked.to(device)
        out = [h[rows, positions].float() for h in states]
    else:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}; got {pooling!r}.")
    return torch.stack(out)

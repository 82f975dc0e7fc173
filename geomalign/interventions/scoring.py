"""Task scores of a vision-language model, per item, by teacher forcing.

A :class:`TaskData` holds tokenised items: a prompt with the image placeholder tokens followed by a
target (a reference caption or an answer). :func:`score_items` runs the model over them in batches
and returns one score per item:

- ``metric="loglik"``: mean log-probability (nats per token) of the target tokens given the image
  and the prompt -- the caption log-likelihood;
- ``metric="exact-match"``: 1 if the greedy (argmax) prediction at every target position is the
  target token, else 0 -- answer accuracy under greedy decoding, from one forward pass (greedy
  generation reproduces the target exactly when, and only when, every teacher-forced argmax does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from geomalign._model_parts import IGNORE_INDEX, model_device

__all__ = ["TaskData", "make_task", "score_items", "task_from_labels"]

_METRICS = ("loglik", "exact-match")


@dataclass(frozen=True)
class TaskData:
    """Tokenised scoring items, right-padded to a common length.

    Parameters
    ----------
    name : str
        Task name used in result tables, e.g. ``"caption"`` or ``"qa"``.
    metric : {"loglik", "exact-match"}
        How :func:`score_items` scores an item.
    input_ids : torch.Tensor of shape (n_items, seq_len), int64
        Prompt (with image placeholder tokens) followed by the target, then padding.
    attention_mask : torch.Tensor of shape (n_items, seq_len)
        1 on real tokens, 0 on padding.
    target_mask : torch.Tensor of shape (n_items, seq_len), bool
        True at the positions of the target tokens (never position 0, never padding).
    pixel_values : torch.Tensor of shape (n_images, channels, height, width)
        Preprocessed images: one per item, or shared through ``image_index``.
    item_ids : tuple of str
        One id per item (e.g. ``"shapes-000012/q3"``), for reports.
    groups : tuple of str, optional
        Cluster of each item (e.g. the image it asks about); confidence intervals and tests
        resample whole clusters. Default: the item's image when ``image_index`` is given, else
        every item is its own cluster.
    image_index : torch.Tensor of shape (n_items,), int64, optional
        Row of ``pixel_values`` each item shows (several questions about one image share it);
        default: row ``i`` for item ``i``.
    """

    name: str
    metric: Literal["loglik", "exact-match"]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_mask: torch.Tensor
    pixel_values: torch.Tensor
    item_ids: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    image_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.metric not in _METRICS:
            raise ValueError(
                f"TaskData.metric must be one of {list(_METRICS)}; got {self.metric!r}."
            )
        for field in ("input_ids", "attention_mask", "target_mask", "pixel_values"):
            if not isinstance(getattr(self, field), torch.Tensor):
                raise TypeError(
                    f"TaskData.{field} must be a torch.Tensor; got {type(getattr(self, field))}."
                )
        if self.input_ids.ndim != 2 or self.input_ids.dtype != torch.long:
            raise ValueError(
                "TaskData.input_ids must be an int64 tensor of shape (n_items, seq_len); got "
                f"dtype {self.input_ids.dtype}, shape {tuple(self.input_ids.shape)}."
            )
        shape = tuple(self.input_ids.shape)
        for field in ("attention_mask", "target_mask"):
            if tuple(getattr(self, field).shape) != shape:
                raise ValueError(
                    f"TaskData.{field} must have the shape of input_ids {shape}; got "
                    f"{tuple(getattr(self, field).shape)}."
                )
        n_images = self.pixel_values.shape[0]
        if self.image_index is None and n_images != shape[0]:
            raise ValueError(
                f"TaskData.pixel_values must hold one image per item ({shape[0]}) when no "
                f"image_index is given; got {n_images}."
            )
        if self.image_index is not None and (
            tuple(self.image_index.shape) != shape[:1]
            or self.image_index.dtype != torch.long
            or bool(((self.image_index < 0) | (self.image_index >= n_images)).any())
        ):
            raise ValueError(
                f"TaskData.image_index must be an int64 tensor of shape ({shape[0]},) with rows "
                f"of pixel_values (0..{n_images - 1}); got dtype {self.image_index.dtype}, "
                f"shape {tuple(self.image_index.shape)}."
            )
        if len(self.item_ids) != shape[0]:
            raise ValueError(
                f"TaskData.item_ids must hold {shape[0]} ids; got {len(self.item_ids)}."
            )
        if self.groups is not None and len(self.groups) != shape[0]:
            raise ValueError(
                f"TaskData.groups must hold {shape[0]} entries; got {len(self.groups)}."
            )
        target = self.target_mask.bool()
        bad = (target.sum(1) == 0) | target[:, 0] | (target & (self.attention_mask == 0)).any(1)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"TaskData item {self.item_ids[first]!r} (row {first}): the target must be at "
                "least one attended token after position 0."
            )

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def subset(self, indices: Sequence[int]) -> TaskData:
        """The items at ``indices``, in that order."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return TaskData(
            name=self.name,
            metric=self.metric,
            input_ids=self.input_ids[index],
            attention_mask=self.attention_mask[index],
            target_mask=self.target_mask[index],
            pixel_values=self.pixel_values
            if self.image_index is not None
            else self.pixel_values[index],
            item_ids=tuple(self.item_ids[i] for i in index.tolist()),
            groups=None if self.groups is None else tuple(self.groups[i] for i in index.tolist()),
            image_index=None if self.image_index is None else self.image_index[index],
        )

    def cluster_labels(self) -> tuple[str, ...]:
        """The cluster of each item: ``groups``, else its image, else the item itself."""
        if self.groups is not None:
            return self.groups
        if self.image_index is not None:
            return tuple(f"image {i}" for i in self.image_index.tolist())
        return self.item_ids

    def images(self, rows: slice) -> torch.Tensor:
        """Pixel values of the items in ``rows``."""
        if self.image_index is None:
            return self.pixel_values[rows]
        return self.pixel_values[self.image_index[rows]]


def make_task(
    name: str,
    prompts: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    pixel_values: torch.Tensor,
    *,
    metric: Literal["loglik", "exact-match"],
    pad_token_id: int,
    item_ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> TaskData:
    """Build a :class:`TaskData` from token ids of prompts and targets.

    Parameters
    ----------
    name : str
        Task name, e.g. ``"caption"``.
    prompts : sequence of sequence of int
        Token ids of each prompt, image placeholder tokens included.
    targets : sequence of sequence of int
        Token ids of each target (non-empty), appended to its prompt.
    pixel_values : torch.Tensor of shape (n_items, channels, height, width)
        Preprocessed image of each item.
    metric : {"loglik", "exact-match"}
        Scoring rule, see :func:`score_items`.
    pad_token_id : int
        Id used for right padding (never scored).
    item_ids : sequence of str, optional
        Item ids; default ``"0"``, ``"1"``, ...
    groups : sequence of str, optional
        Cluster of each item (e.g. its image id), see :class:`TaskData`.

    Returns
    -------
    TaskData
    """
    if len(prompts) != len(targets):
        raise ValueError(f"got {len(prompts)} prompts but {len(targets)} targets; need one each.")
    if not prompts:
        raise ValueError("need at least one item; got no prompts.")
    for row, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
        if len(prompt) == 0 or len(target) == 0:
            raise ValueError(f"item {row}: prompt and target must be non-empty token sequences.")
    length = max(len(p) + len(t) for p, t in zip(prompts, targets, strict=True))
    n = len(prompts)
    input_ids = torch.full((n, length), int(pad_token_id), dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    target_mask = torch.zeros((n, length), dtype=torch.bool)
    for row, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
        tokens = [*prompt, *target]
        input_ids[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        attention[row, : len(tokens)] = 1
        target_mask[row, len(prompt) : len(tokens)] = True
    ids = tuple(str(i) for i in (item_ids if item_ids is not None else range(n)))
    clusters = None if groups is None else tuple(str(g) for g in groups)
    return TaskData(name, metric, input_ids, attention, target_mask, pixel_values, ids, clusters)


def task_from_labels(
    name: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    pixel_values: torch.Tensor,
    *,
    metric: Literal["loglik", "exact-match"],
    image_index: torch.Tensor | None = None,
    item_ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> TaskData:
    """Build a :class:`TaskData` from training-style tensors whose ``labels`` mark the target.

    ``labels`` follows the Hugging Face convention: the token id at scored positions and ``-100``
    elsewhere, so a supervised fine-tuning set (such as the testbed's evaluation sets) scores
    exactly the tokens it was trained to produce.

    Parameters
    ----------
    name : str
        Task name, e.g. ``"qa"``.
    input_ids, attention_mask, labels : torch.Tensor of shape (n_items, seq_len)
        Token ids, padding mask and labels (``-100`` outside the target).
    pixel_values : torch.Tensor of shape (n_images, channels, height, width)
        Preprocessed images.
    metric : {"loglik", "exact-match"}
        Scoring rule, see :func:`score_items`.
    image_index : torch.Tensor of shape (n_items,), optional
        Row of ``pixel_values`` per item; default one image per item.
    item_ids, groups : sequence of str, optional
        See :class:`TaskData`.

    Returns
    -------
    TaskData
    """
    if not isinstance(labels, torch.Tensor) or not isinstance(input_ids, torch.Tensor):
        raise TypeError("input_ids and labels must be torch tensors.")
    if labels.shape != input_ids.shape:
        raise ValueError(
            f"labels must have the shape of input_ids {tuple(input_ids.shape)}; got "
            f"{tuple(labels.shape)}."
        )
    scored = labels != IGNORE_INDEX
    mismatched = scored & (labels != input_ids)
    if bool(mismatched.any()):
        row = int(torch.nonzero(mismatched)[0, 0])
        raise ValueError(
            f"labels of item {row} differ from input_ids at scored positions; labels must hold "
            "the input ids themselves (unshifted) or -100."
        )
    n = input_ids.shape[0]
    ids = tuple(str(i) for i in (item_ids if item_ids is not None else range(n)))
    return TaskData(
        name=name,
        metric=metric,
        input_ids=input_ids.long(),
        attention_mask=attention_mask,
        target_mask=scored,
        pixel_values=pixel_values,
        item_ids=ids,
        groups=None if groups is None else tuple(str(g) for g in groups),
        image_index=None if image_index is None else torch.as_tensor(image_index, dtype=torch.long),
    )


def score_items(
    model: nn.Module,
    task: TaskData,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Score every item of ``task`` with ``model`` (teacher forcing, no gradient).

    Parameters
    ----------
    model : torch.nn.Module
        A vision-language model taking ``input_ids``, ``attention_mask`` and ``pixel_values`` and
        returning ``logits``; run in eval mode (its mode is restored afterwards).
    task : TaskData
        The items.
    batch_size : int, default=32
        Items per forward pass.
    device : str or torch.device, optional
        Where the batches go; default: the device of the model's parameters.

    Returns
    -------
    scores : numpy.ndarray of shape (n_items,), float64
        Mean target log-probability in nats per token (``"loglik"``) or 0/1 (``"exact-match"``).
    """
    if not isinstance(task, TaskData):
        raise TypeError(f"task must be a TaskData; got {type(task).__name__}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    scores = np.empty(len(task), dtype=np.float64)
    try:
        with torch.inference_mode():
            for start in range(0, len(task), batch_size):
                stop = min(start + batch_size, len(task))
                scores[start:stop] = _score_batch(model, task, slice(start, stop), device)
    finally:
        model.train(was_training)
    return scores


def _score_batch(model: nn.Module, task: TaskData, rows: slice, device: torch.device) -> np.ndarray:
    attention = task.attention_mask[rows]
    width = int(attention.sum(1).max())  # drop columns that are padding in every row
    input_ids = task.input_ids[rows, :width].to(device)
    attention = attention[:, :width].to(device)
    target = task.target_mask[rows, :width].to(device)
    pixel_values = task.images(rows).to(device)
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point():
        pixel_values = pixel_values.to(param.dtype)
    logits = model(
        input_ids=input_ids, attention_mask=attention, pixel_values=pixel_values, use_cache=False
    ).logits
    # Position t predicts token t + 1: score the targets from the logits one position earlier.
    scored = target[:, 1:]
    batch_idx, pos_idx = torch.nonzero(scored, as_tuple=True)
    picked = logits[batch_idx, pos_idx].float()
    wanted = input_ids[:, 1:][batch_idx, pos_idx]
    n_rows = input_ids.shape[0]
    counts = torch.zeros(n_rows, device=device).index_add_(
        0, batch_idx, torch.ones_like(pos_idx, dtype=torch.float32)
    )
    if task.metric == "loglik":
        logp = torch.log_softmax(picked, dim=-1).gather(1, wanted[:, None]).squeeze(1).double()
        total = torch.zeros(n_rows, dtype=torch.float64, device=device).index_add_(
            0, batch_idx, logp
        )
        return (total / counts.double()).cpu().numpy()
    hits = (picked.argmax(-1) == wanted).float()
    correct = torch.zeros(n_rows, device=device).index_add_(0, batch_idx, hits)
    return (correct == counts).double().cpu().numpy()

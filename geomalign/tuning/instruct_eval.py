"""Score a model on held-out instruction data: response loss and exact match of the last answer.

``response_loss`` is the mean cross-entropy over the response tokens of every conversation (the
tokens a fine-tuning run is trained on); ``exact_match`` is the share of conversations whose last
answer, generated greedily after the turns before it, equals the reference after the VQA
normalisation (:func:`geomalign.interventions.answers.exact_match`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from geomalign._model_parts import IGNORE_INDEX
from geomalign.interventions.answers import exact_match
from geomalign.tuning.instruct_data import Conversation
from geomalign.tuning.instruct_encoding import InstructionCollator, encode, render

__all__ = ["evaluate_instructions"]


@torch.inference_mode()
def evaluate_instructions(
    model: nn.Module,
    rows: Sequence[Conversation],
    processor: Any,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    max_length: int | None = None,
) -> dict[str, float]:
    """Held-out response loss and exact match of ``model`` on ``rows``.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face causal (vision-)language model (or a peft wrapper of one).
    rows : sequence of Conversation
        Held-out conversations.
    processor : transformers processor
        The model's processor.
    batch_size : int, default=8
        Conversations per forward pass of the loss.
    max_new_tokens : int, default=32
        Longest generated answer.
    max_length : int, default=None
        As in :class:`~geomalign.tuning.InstructionDataset`.

    Returns
    -------
    dict
        ``response_loss`` (nats per response token) and ``exact_match`` (in [0, 1]).
    """
    if not rows:
        raise ValueError("rows is empty: nothing to evaluate")
    device = next(model.parameters()).device
    tokenizer = getattr(processor, "tokenizer", processor)
    collate = InstructionCollator(tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        items = [
            encode(r, processor, max_length=max_length) for r in rows[start : start + batch_size]
        ]
        batch = {k: v.to(device) for k, v in collate(items).items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        losses = nn.functional.cross_entropy(
            logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        total += float(losses)
        count += int((target != IGNORE_INDEX).sum())
    hits = sum(
        exact_match(_answer(model, row, processor, max_new_tokens, device), [row.turns[-1].text])
        for row in rows
    )
    model.train(was_training)
    return {"response_loss": total / count, "exact_match": hits / len(rows)}


def _answer(
    model: Any, row: Conversation, processor: Any, max_new_tokens: int, device: torch.device
) -> str:
    """Greedy answer to the last question of ``row``, given the turns before it (``model``: a
    transformers model with ``generate``)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    prompt, _ = render(row, processor, until=len(row.turns) - 1)
    if row.image is not None:
        from PIL import Image

        with Image.open(row.image) as file:
            image = file.convert("RGB")
        inputs = processor(text=prompt, images=image, return_tensors="pt")
    else:
        inputs = tokenizer(prompt, return_tensors="pt")
    inputs = {k: v.to(device) for k, v in inputs.items()}
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

"""Turn instruction conversations into token ids and labels that score the responses only.

A conversation is rendered to one string in which the character span of every assistant response
is known, tokenised once with character offsets, and a token is scored (its label is its id) when
it overlaps a response span; every other label is ``-100`` (ignored by the loss): the prompt, the
role markers, padding and the image tokens. The image placeholder is then expanded to the
model's image tokens by the processor itself, so that any LLaVA-style processor (fixed or varying
numbers of image tokens) gives ids that match its model.

Rendering uses the processor's chat template when it has one (the prompt of turn ``i`` is the
template applied to the turns before it with the generation prompt; the response is what the
template adds with the answer) and otherwise LLaVA-1.5's format,
``USER: <image>\\n{prompt} ASSISTANT: {response}</s>USER: ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from geomalign._model_parts import IGNORE_INDEX
from geomalign.tuning.instruct_data import IMAGE_PLACEHOLDER, Conversation

__all__ = ["InstructionCollator", "InstructionDataset", "render"]

#: Label of the tokens the loss ignores.


def render(
    conversation: Conversation,
    processor: Any,
    *,
    until: int | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """The text of a conversation and the character spans of its assistant responses.

    Parameters
    ----------
    conversation : Conversation
    processor : transformers processor or tokenizer
        Its chat template is used when it has one, else LLaVA-1.5's format.
    until : int, default=None
        Render the turns before this index only, ending with the generation prompt (the input
        of a generation that should produce turn ``until``); None renders every turn.

    Returns
    -------
    text : str
    spans : list of (int, int)
        ``[start, stop)`` character spans of the responses in ``text`` (empty when ``until``
        is given).
    """
    turns = conversation.turns if until is None else conversation.turns[:until]
    image_token = getattr(processor, "image_token", None) or IMAGE_PLACEHOLDER
    if getattr(processor, "chat_template", None):
        return _render_template(conversation, processor, turns, until is not None)
    eos = _tokenizer(processor).eos_token or ""
    text, spans = "", []
    for index, turn in enumerate(turns):
        if turn.role == "user":
            image = f"{image_token}\n" if index == 0 and conversation.image else ""
            text += f"USER: {image}{turn.text} ASSISTANT:"
        else:
            start = len(text)
            text += f" {turn.text}{eos}"
            spans.append((start, len(text)))
    return text, spans


def _render_template(
    conversation: Conversation, processor: Any, turns: Sequence, prompt_only: bool
) -> tuple[str, list[tuple[int, int]]]:
    messages = []
    for index, turn in enumerate(turns):
        content: list[dict[str, str]] = [{"type": "text", "text": turn.text}]
        if index == 0 and conversation.image is not None:
            content.insert(0, {"type": "image"})
        messages.append({"role": turn.role, "content": content})

    def apply(messages: list, generation_prompt: bool) -> str:
        return processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    if prompt_only:
        return apply(messages, True), []
    spans = []
    for index, turn in enumerate(turns):
        if turn.role != "assistant":
            continue
        prompt, full = apply(messages[:index], True), apply(messages[: index + 1], False)
        if not full.startswith(prompt):
            raise ValueError(
                f"{conversation.where()}: the chat template does not render turn {index} as "
                f"a continuation of the turns before it, so its response cannot be located"
            )
        spans.append((len(prompt), len(full)))
    text = apply(messages, False)
    return text, spans


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def _image_token_id(processor: Any) -> int | None:
    value = getattr(processor, "image_token_id", None)
    if value is None:
        token = getattr(processor, "image_token", None) or IMAGE_PLACEHOLDER
        value = _tokenizer(processor).convert_tokens_to_ids(token)
    return value


class InstructionDataset(torch.utils.data.Dataset):
    """Conversations as model inputs: ``input_ids``, ``labels`` and the image inputs.

    Each item is encoded when it is read (images are opened then), so a large file costs no
    memory up front.

    Parameters
    ----------
    rows : sequence of Conversation
        From :func:`~geomalign.tuning.load_instructions`.
    processor : transformers processor
        The model's processor (tokenizer + image processor); a tokenizer alone for text-only rows.
    max_length : int, default=None
        Cut sequences longer than this many tokens (image tokens included) on the right; an
        error if that would cut into the image tokens or leave no response token.
    """

    def __init__(
        self, rows: Sequence[Conversation], processor: Any, *, max_length: int | None = None
    ) -> None:
        if max_length is not None and (isinstance(max_length, bool) or max_length < 1):
            raise ValueError(f"max_length must be a positive int or None; got {max_length!r}")
        self.rows = list(rows)
        self.processor = processor
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return encode(self.rows[index], self.processor, max_length=self.max_length)


def encode(
    row: Conversation, processor: Any, *, max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Encode one conversation: ``input_ids`` and ``labels`` of shape (n_tokens,), image inputs."""
    tokenizer = _tokenizer(processor)
    text, spans = render(row, processor)
    plain = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = list(plain["input_ids"]), plain["offset_mapping"]
    labels = [
        token if any(end > lo and start < hi for lo, hi in spans) and end > start else IGNORE_INDEX
        for token, (start, end) in zip(ids, offsets, strict=True)
    ]
    extra: dict[str, torch.Tensor] = {}
    if row.image is not None:
        from PIL import Image

        with Image.open(row.image) as file:
            image = file.convert("RGB")
        inputs = processor(text=text, images=image, return_tensors="pt")
        expanded = inputs["input_ids"][0].tolist()
        image_id = _image_token_id(processor)
        if image_id is None:
            raise ValueError(f"{row.where()}: the processor has no image token to expand")
        labels = _expand(ids, labels, expanded, image_id, row)
        ids = expanded
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    if max_length is not None and len(ids) > max_length:
        image_id = _image_token_id(processor)
        if row.image is not None and image_id in ids[max_length:]:
            raise ValueError(
                f"{row.where()}: max_length={max_length} would cut into the image tokens "
                f"({len(ids)} tokens)"
            )
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise ValueError(
            f"{row.where()}: no response token to learn from (after cutting to "
            f"max_length={max_length})"
        )
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        **extra,
    }


def _expand(
    ids: list[int], labels: list[int], expanded: list[int], image_id: int, row: Conversation
) -> list[int]:
    """Labels of ``expanded``: those of ``ids`` with the image token's run labelled ignored."""
    out, j = [], 0
    for token, label in zip(ids, labels, strict=True):
        if token == image_id:
            run = j
            while run < len(expanded) and expanded[run] == image_id:
                run += 1
            if run == j:
                raise ValueError(f"{row.where()}: the processor did not expand the image token")
            out.extend([IGNORE_INDEX] * (run - j))
            j = run
        else:
            if j >= len(expanded) or expanded[j] != token:
                raise ValueError(
                    f"{row.where()}: the processor's token ids differ from the tokenizer's "
                    f"beyond the image tokens, so the response tokens cannot be located"
                )
            out.append(label)
            j += 1
    if j != len(expanded):
        raise ValueError(f"{row.where()}: the processor added tokens the tokenizer did not")
    return out


@dataclass
class InstructionCollator:
    """Pad encoded conversations into a batch (right padding; labels padded with ``-100``).

    Image inputs (``pixel_values`` and any others, e.g. ``image_sizes``) of the items that have
    them are concatenated along their first dimension, in item order.
    """

    pad_token_id: int

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = max(len(item["input_ids"]) for item in items)
        batch = {
            "input_ids": torch.full((len(items), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(items), length), dtype=torch.long),
            "labels": torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long),
        }
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            batch["input_ids"][row, :n] = item["input_ids"]
            batch["attention_mask"][row, :n] = 1
            batch["labels"][row, :n] = item["labels"]
        keys = dict.fromkeys(k for item in items for k in item if k not in batch)
        for key in keys:
            batch[key] = torch.cat([item[key] for item in items if key in item])
        return batch

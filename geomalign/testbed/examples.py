"""Tokenised training and evaluation sets of the testbed, built from the shapes world.

Every set is an :class:`Examples`: right-padded token ids, labels that score only the response
(``-100`` elsewhere, the Hugging Face convention), one tag per example and, for image sets, an index
into a shared tensor of preprocessed images, so that the several questions about one image do not
copy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LlavaProcessor, PreTrainedTokenizerBase

from geomalign.data.shapes import COLOURS, REGIONS, SHAPES, SIZES, ShapesWorld, make_shapes
from geomalign.testbed.config import TestbedConfig
from geomalign.testbed.tokenizer import CAPTION_INSTRUCTION, IMAGE_TOKEN, chat_prompt, plain_prompt
from geomalign.tuning.training import IGNORE_INDEX

__all__ = ["Examples", "TestbedData", "make_testbed_data", "scene_facts"]


@dataclass(frozen=True)
class Examples:
    """Prompt + response sequences ready for a causal (vision-)language model.

    Attributes
    ----------
    input_ids, attention_mask : torch.Tensor of shape (n_examples, seq_len)
        Right-padded token ids and their mask.
    labels : torch.Tensor of shape (n_examples, seq_len)
        ``input_ids`` on the scored (response) tokens, ``-100`` elsewhere.
    tags : tuple of str
        One tag per example: the question kind, ``"caption"`` or ``"text"``.
    image_index : torch.Tensor of shape (n_examples,) or None
        Row of ``pixel_values`` that each example shows; None for text-only sets.
    pixel_values : torch.Tensor of shape (n_images, 3, height, width) or None
        Preprocessed images, shared by the examples.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    tags: tuple[str, ...]
    image_index: torch.Tensor | None = None
    pixel_values: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def batch(
        self, indices: Sequence[int] | torch.Tensor, *, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs and labels of the examples at ``indices``, trimmed to their longest one."""
        rows = torch.as_tensor(indices, dtype=torch.long)
        mask = self.attention_mask[rows]
        length = int(mask.sum(dim=1).max())
        out = {
            "input_ids": self.input_ids[rows, :length],
            "attention_mask": mask[:, :length],
            "labels": self.labels[rows, :length],
        }
        if self.image_index is not None and self.pixel_values is not None:
            out["pixel_values"] = self.pixel_values[self.image_index[rows]]
        return {name: value.to(device) for name, value in out.items()}


@dataclass(frozen=True)
class TestbedData:
    """The shapes world of a testbed configuration and every set its stages train and score on.

    Attributes
    ----------
    train, test : ShapesWorld
        The training images and the held-out images (disjoint samples of one seeded world).
    text : Examples
        Text pre-training: each training caption alone, and each training question asked about
        the caption in a conversation (``USER: {caption}. {question} ASSISTANT: {answer}``);
        every token is scored.
    stage1 : Examples
        Stage 1: plain prompt (the image alone) -> caption, on training images.
    stage2 : Examples
        Stage 2: every training question, and the caption instruction, in conversation prompts.
    text_qa_eval, text_caption_eval : Examples
        Held-out questions asked about the caption in a text conversation (answer scored), and
        held-out captions without any context (every word scored), for the text-only LLM.
    qa_eval, caption_eval, plain_caption_eval : Examples
        Held-out image questions (tagged by kind), the caption instruction, and the stage-1 plain
        prompt, on the held-out images.
    vision_train, vision_test : tuple of (torch.Tensor, torch.Tensor)
        Preprocessed images and their :func:`scene_facts`, for vision pre-training.
    """

    __test__ = False  # not a pytest test class despite its name

    train: ShapesWorld
    test: ShapesWorld
    text: Examples
    stage1: Examples
    stage2: Examples
    text_qa_eval: Examples
    text_caption_eval: Examples
    qa_eval: Examples
    caption_eval: Examples
    plain_caption_eval: Examples
    vision_train: tuple[torch.Tensor, torch.Tensor]
    vision_test: tuple[torch.Tensor, torch.Tensor]


def make_testbed_data(config: TestbedConfig, processor: LlavaProcessor) -> TestbedData:
    """Generate the shapes world of ``config`` and tokenise every set of the recipe.

    The world is ``make_shapes(n_train + n_test, random_state=config.seed)``; its first
    ``n_train`` samples train, the rest are held out. Deterministic: no other randomness enters.
    """
    world = make_shapes(
        config.n_train + config.n_test, random_state=config.seed, image_size=config.image_size
    )
    train = world.subset(range(config.n_train))
    test = world.subset(range(config.n_train, len(world)))
    tokenizer = processor.tokenizer
    n_image = config.n_image_tokens
    train_pixels = _pixel_values(processor, train)
    test_pixels = _pixel_values(processor, test)

    captions = list(train.pairs.captions)
    text = _encode(
        tokenizer,
        [""] * (len(captions) + len(train.questions)),
        captions
        + [
            f"{chat_prompt(_context(train, q.index) + q.question, image=False)} {q.answer}"
            for q in train.questions
        ],
        ["text"] * (len(captions) + len(train.questions)),
    )
    text_qa_eval = _encode(
        tokenizer,
        [chat_prompt(_context(test, q.index) + q.question, image=False) for q in test.questions],
        [q.answer for q in test.questions],
        [q.kind for q in test.questions],
    )
    text_caption_eval = _encode(
        tokenizer, [""] * len(test), list(test.pairs.captions), ["caption"] * len(test)
    )
    stage1 = _encode_images(
        tokenizer,
        [plain_prompt()] * len(train),
        captions,
        ["caption"] * len(train),
        range(len(train)),
        train_pixels,
        n_image,
    )
    stage2 = _encode_images(
        tokenizer,
        [chat_prompt(q.question) for q in train.questions]
        + [chat_prompt(CAPTION_INSTRUCTION)] * len(train),
        [q.answer for q in train.questions] + captions,
        [q.kind for q in train.questions] + ["caption"] * len(train),
        [q.index for q in train.questions] + list(range(len(train))),
        train_pixels,
        n_image,
    )
    qa_eval = _encode_images(
        tokenizer,
        [chat_prompt(q.question) for q in test.questions],
        [q.answer for q in test.questions],
        [q.kind for q in test.questions],
        [q.index for q in test.questions],
        test_pixels,
        n_image,
    )
    caption_eval, plain_caption_eval = (
        _encode_images(
            tokenizer,
            [prompt] * len(test),
            list(test.pairs.captions),
            ["caption"] * len(test),
            range(len(test)),
            test_pixels,
            n_image,
        )
        for prompt in (chat_prompt(CAPTION_INSTRUCTION), plain_prompt())
    )
    return TestbedData(
        train=train,
        test=test,
        text=text,
        stage1=stage1,
        stage2=stage2,
        text_qa_eval=text_qa_eval,
        text_caption_eval=text_caption_eval,
        qa_eval=qa_eval,
        caption_eval=caption_eval,
        plain_caption_eval=plain_caption_eval,
        vision_train=(train_pixels, scene_facts(train)),
        vision_test=(test_pixels, scene_facts(test)),
    )


def scene_facts(world: ShapesWorld) -> torch.Tensor:
    """Multi-hot targets of shape (n_samples, n_facts) naming every object of every scene.

    The facts are colour-shape, size-shape, shape-region and colour-region pairs
    (``"red circle"``, ``"small circle"``, ``"circle left"``, ``"red left"``): order-free, and
    together they determine the scene, because the two objects of a scene never share a shape.
    """
    facts = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    facts += [f"{z} {s}" for z in SIZES for s in SHAPES]
    facts += [f"{s} {r}" for s in SHAPES for r in REGIONS]
    facts += [f"{c} {r}" for c in COLOURS for r in REGIONS]
    column = {fact: j for j, fact in enumerate(facts)}
    out = np.zeros((len(world), len(facts)), dtype=np.float32)
    for i, scene in enumerate(world.scenes):
        for obj in scene.objects:
            for fact in (
                f"{obj.colour} {obj.shape}",
                f"{obj.size} {obj.shape}",
                f"{obj.shape} {obj.region}",
                f"{obj.colour} {obj.region}",
            ):
                out[i, column[fact]] = 1.0
    return torch.from_numpy(out)


def _context(world: ShapesWorld, index: int) -> str:
    return f"{world.pairs.captions[index]}. "


def _pixel_values(processor: LlavaProcessor, world: ShapesWorld) -> torch.Tensor:
    images = [world.pairs.image(i) for i in range(len(world))]
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def _encode_images(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    tags: Sequence[str],
    image_index: Sequence[int],
    pixel_values: torch.Tensor,
    n_image_tokens: int,
) -> Examples:
    expanded = [p.replace(IMAGE_TOKEN, IMAGE_TOKEN * n_image_tokens) for p in prompts]
    examples = _encode(tokenizer, expanded, responses, tags)
    return Examples(
        input_ids=examples.input_ids,
        attention_mask=examples.attention_mask,
        labels=examples.labels,
        tags=examples.tags,
        image_index=torch.as_tensor(list(image_index), dtype=torch.long),
        pixel_values=pixel_values,
    )


def _encode(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    tags: Sequence[str],
) -> Examples:
    """``<s> prompt response </s>``, with the response and the end token scored."""
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    eos, pad, unk = tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id
    rows = [p + r + [eos] for p, r in zip(prompt_ids, response_ids, strict=True)]
    length = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (row, prompt) in enumerate(zip(rows, prompt_ids, strict=True)):
        if unk in row:
            raise ValueError(
                f"example {i} ({prompts[i]!r} -> {responses[i]!r}) has a word outside the "
                "tokenizer's vocabulary."
            )
        input_ids[i, : len(row)] = torch.as_tensor(row)
        attention_mask[i, : len(row)] = 1
        labels[i, len(prompt) : len(row)] = torch.as_tensor(row[len(prompt) :])
    return Examples(input_ids, attention_mask, labels, tuple(tags))

"""Benchmark tasks put to a model: prompts, decoding and the scoring rule of each kind.

:func:`prompt_task` pairs a :class:`~geomalign.interventions.benchmarks.Benchmark` with a model's
processor (or tokenizer, for text-only tasks) and a scoring rule; the resulting
:class:`PromptedTask` scores any model of that family per item, and the effect curves accept it
wherever they accept a :class:`~geomalign.interventions.TaskData`. Rules (``metric``):

- open-ended QA: greedy answer (KV-cache decoding), then ``"vqa"`` (VQA accuracy, the default
  when some question has several references), ``"exact"`` (the default otherwise) or
  ``"relaxed"`` (see :mod:`~geomalign.interventions.answers`);
- multiple choice: the log-likelihood of each option's text as the answer, the item is right
  when the correct option has the highest: ``"choice"`` (summed log-probability) or
  ``"choice-norm"`` (divided by the option's length in characters, lm-evaluation-harness's
  ``acc_norm``; the default, since options differ in length);
- captioning: ``"cider"`` (CIDEr-D of the greedy caption against the references, document
  frequencies from the task's references; the default) or ``"loglik"`` (mean log-probability per
  token of each reference caption and the end token, averaged over the references).

Prompts: the processor's chat template when it has one (a user turn with the image and the
question, then the generation prompt), else ``template`` (default LLaVA-1.5's conversation
format ``"USER: <image>\\n{question} ASSISTANT:"``). The format used is recorded in
:attr:`PromptedTask.prompt_format` and in the results table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from geomalign.interventions.answers import exact_match, relaxed_match, vqa_accuracy
from geomalign.interventions.benchmarks import Benchmark
from geomalign.interventions.cider import cider_d
from geomalign.interventions.generation import (
    Encoded,
    batches,
    continuation_logprobs,
    encode_prompts,
    greedy_generate,
    tokenizer_of,
)

__all__ = ["INSTRUCTIONS", "LLAVA_TEMPLATE", "METRICS", "PromptedTask", "prompt_task"]

#: Scoring rules of each task kind; the first is the default (see the module docstring).
METRICS = {
    "qa": ("vqa", "exact", "relaxed"),
    "choice": ("choice-norm", "choice"),
    "caption": ("cider", "loglik"),
}
#: LLaVA-1.5's conversation format, for processors without a chat template.
LLAVA_TEMPLATE = "USER: {image}\n{question} ASSISTANT:"
#: The instruction after each question: LLaVA-1.5's short-answer prompt for VQA-style QA, its
#: short-caption prompt for captioning.
INSTRUCTIONS = {
    "qa": "Answer the question using a single word or phrase.",
    "choice": "",
    "caption": "Provide a one-sentence caption for the provided image.",
}
_ANSWER_RULES: dict[str, Callable[[str, Sequence[str]], float]] = {
    "vqa": vqa_accuracy,
    "exact": exact_match,
    "relaxed": relaxed_match,
}


@dataclass(frozen=True)
class PromptedTask:
    """A benchmark task prompted for one processor, scorable per item with any model.

    Build with :func:`prompt_task`. ``score(model)`` returns one score per item;
    ``generate(model)`` the greedy texts (QA answers, captions).
    """

    benchmark: Benchmark
    processor: Any = field(repr=False)
    metric: str
    prompts: tuple[str, ...]
    prompt_format: str
    max_new_tokens: int
    image_token_id: int | None

    @property
    def name(self) -> str:
        return self.benchmark.name

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self.benchmark.ids

    def __len__(self) -> int:
        return len(self.benchmark)

    def cluster_labels(self) -> tuple[str, ...]:
        """The cluster of each item (its image, or the item for text-only tasks)."""
        return self.benchmark.groups

    def subset(self, indices: Sequence[int]) -> PromptedTask:
        """The items at ``indices``, in that order."""
        picked = [int(i) for i in indices]
        return prompt_task(
            self.benchmark.subset(picked),
            self.processor,
            metric=self.metric,
            prompts=[self.prompts[i] for i in picked],
            prompt_format=self.prompt_format,
            max_new_tokens=self.max_new_tokens,
        )

    @functools.cached_property
    def _tokens(self) -> Any:
        return tokenizer_of(self.processor)

    @property
    def _pad(self) -> int:
        tok = self._tokens
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pad if pad is not None else 0)

    def _encode(self, items: Sequence[int]) -> list[Encoded]:
        images = [self.benchmark.image(i) for i in items] if self.benchmark.has_images else None
        return encode_prompts(self.processor, [self.prompts[i] for i in items], images)

    def generate(
        self,
        model: nn.Module,
        *,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Greedy answer or caption of every item (decoded, stripped, first line)."""
        texts: list[str] = []
        eos = self._tokens.eos_token_id
        for rows in batches(len(self), batch_size, progress=progress, label=self.name):
            tokens = greedy_generate(
                model,
                self._encode(range(rows.start, rows.stop)),
                max_new_tokens=self.max_new_tokens,
                eos_token_id=eos,
                pad_token_id=self._pad,
                suppress_token_ids=() if self.image_token_id is None else (self.image_token_id,),
                device=device,
            )
            for t in tokens:
                text = self._tokens.decode(t, skip_special_tokens=True).strip()
                texts.append(text.split("\n", 1)[0].strip())
        return texts

    def _continuation_rows(self) -> tuple[list[int], list[list[int]]]:
        """(item of each row, continuation token ids): one row per option or reference."""
        items, conts = [], []
        end = [] if self.benchmark.kind == "choice" else [self._tokens.eos_token_id]
        if None in end:
            raise ValueError("caption log-likelihood needs a tokenizer with an eos_token.")
        for item, refs in enumerate(self.benchmark.references):
            for ref in refs:
                ids = self._tokens(" " + ref.strip(), add_special_tokens=False)["input_ids"]
                items.append(item)
                conts.append([*ids, *end])
        return items, conts

    def _logprobs(
        self, model: nn.Module, batch_size: int, device: Any, progress: bool
    ) -> tuple[list[int], list[list[int]], np.ndarray]:
        items, conts = self._continuation_rows()
        out = np.empty(len(items))
        for rows in batches(len(items), batch_size, progress=progress, label=self.name):
            wanted = items[rows]
            unique = sorted(set(wanted))
            encoded = dict(zip(unique, self._encode(unique), strict=True))
            out[rows] = continuation_logprobs(
                model,
                [encoded[i] for i in wanted],
                conts[rows],
                pad_token_id=self._pad,
                device=device,
            )
        return items, conts, out

    def score(
        self,
        model: nn.Module,
        *,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """One score per item under ``model``'s current weights and hooks (eval mode, no grad).

        Returns
        -------
        numpy.ndarray of shape (n_items,), float64
            Accuracies in [0, 1] (QA, choice), CIDEr-D (0 to 10) or mean log-probability per
            token (captions).
        """
        was_training = model.training
        model.eval()
        try:
            return self._score(model, batch_size, device, progress)
        finally:
            model.train(was_training)

    def _score(self, model: nn.Module, batch_size: int, device: Any, progress: bool) -> np.ndarray:
        refs = self.benchmark.references
        if self.metric in _ANSWER_RULES or self.metric == "cider":
            texts = self.generate(model, batch_size=batch_size, device=device, progress=progress)
            if self.metric == "cider":
                return cider_d(texts, refs)
            rule = _ANSWER_RULES[self.metric]
            return np.array([rule(t, r) for t, r in zip(texts, refs, strict=True)])
        items, conts, logp = self._logprobs(model, batch_size, device, progress)
        owner = np.asarray(items)
        if self.metric == "loglik":
            lengths = np.array([len(c) for c in conts], dtype=np.float64)
            per_ref = logp / lengths
            return np.array([per_ref[owner == i].mean() for i in range(len(self))])
        if self.metric == "choice-norm":
            chars = np.array([len(o.strip()) for opts in refs for o in opts], dtype=np.float64)
            logp = logp / chars
        assert self.benchmark.answer_index is not None
        return np.array(
            [
                float(int(np.argmax(logp[owner == i])) == self.benchmark.answer_index[i])
                for i in range(len(self))
            ]
        )


def _render(processor: Any, question: str, has_image: bool, template: str | None) -> str:
    if template is None and getattr(processor, "chat_template", None):
        content: list[dict[str, str]] = [{"type": "image"}] if has_image else []
        content.append({"type": "text", "text": question})
        conversation = [{"role": "user", "content": content}]
        return str(
            processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        )
    form = template or (LLAVA_TEMPLATE if has_image else LLAVA_TEMPLATE.replace("{image}\n", ""))
    if has_image:
        return form.replace("{image}", processor.image_token).replace("{question}", question)
    return form.replace("{image}\n", "").replace("{image}", "").replace("{question}", question)


def prompt_task(
    benchmark: Benchmark,
    processor: Any,
    *,
    metric: str | None = None,
    template: str | None = None,
    instruction: str | None = None,
    max_new_tokens: int | None = None,
    prompts: Sequence[str] | None = None,
    prompt_format: str | None = None,
) -> PromptedTask:
    """Prompt a benchmark task for a model's processor.

    Parameters
    ----------
    benchmark : Benchmark
        The items (see :func:`~geomalign.interventions.load_benchmark`).
    processor : transformers processor or tokenizer
        The model's processor (image tasks; with ``image_token``) or tokenizer (text-only).
    metric : str, optional
        Scoring rule among :data:`METRICS` of the task's kind; default the first.
    template : str, optional
        Prompt format with ``{question}`` (and ``{image}`` for image tasks), used instead of the
        processor's chat template; default the chat template, else :data:`LLAVA_TEMPLATE`.
    instruction : str, optional
        Text after the question (a new line between); default :data:`INSTRUCTIONS` of the kind.
    max_new_tokens : int, optional
        Decoding budget: default 16 for QA answers, 48 for captions.
    prompts, prompt_format : optional
        Ready prompts (one per item) and their description, instead of rendering them.

    Returns
    -------
    PromptedTask
    """
    kind = benchmark.kind
    metric = metric or METRICS[kind][0]
    if metric not in METRICS[kind]:
        raise ValueError(
            f"metric for a {kind!r} task must be one of {list(METRICS[kind])}; got {metric!r}."
        )
    images = benchmark.has_images
    token = getattr(processor, "image_token", None)
    if images and (not isinstance(token, str) or not hasattr(processor, "image_processor")):
        raise TypeError(
            f"an image task needs a vision-language processor with an image_token; got "
            f"{type(processor).__name__}."
        )
    if template is not None:
        needed = ["{question}", "{image}"] if images else ["{question}"]
        if any(part not in template for part in needed):
            raise ValueError(f"template must hold {' and '.join(needed)}; got {template!r}.")
    if prompts is None:
        note = INSTRUCTIONS[kind] if instruction is None else instruction
        questions = [
            "\n".join(part for part in (q.strip(), note) if part) for q in benchmark.questions
        ]
        prompts = [_render(processor, q, images, template) for q in questions]
        uses_chat = template is None and bool(getattr(processor, "chat_template", None))
        prompt_format = (
            f"chat template of {type(processor).__name__}"
            if uses_chat
            else f"template {template or LLAVA_TEMPLATE!r}"
        ) + f"; first prompt {prompts[0]!r}"
    if len(prompts) != len(benchmark):
        raise ValueError(f"got {len(prompts)} prompts for {len(benchmark)} items.")
    budget = max_new_tokens if max_new_tokens is not None else (48 if kind == "caption" else 16)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"max_new_tokens must be a positive int; got {max_new_tokens!r}.")
    tokenizer = tokenizer_of(processor)
    image_token_id = tokenizer.convert_tokens_to_ids(token) if isinstance(token, str) else None
    return PromptedTask(
        benchmark=benchmark,
        processor=processor,
        metric=metric,
        prompts=tuple(prompts),
        prompt_format=str(prompt_format),
        max_new_tokens=budget,
        image_token_id=image_token_id,
    )

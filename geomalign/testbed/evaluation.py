"""Held-out scores of testbed checkpoints: answer accuracy and caption token accuracy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

from geomalign.testbed.examples import Examples, TestbedData
from geomalign.tuning.training import IGNORE_INDEX

__all__ = [
    "ResponseScores",
    "evaluate_checkpoint",
    "evaluate_llm",
    "evaluate_vlm",
    "score_responses",
]


@dataclass(frozen=True)
class ResponseScores:
    """How well a model reproduces the responses of an :class:`Examples` set.

    Attributes
    ----------
    exact_match : float
        Share of examples whose every response token is the model's top prediction given the
        true prefix. Since each response ends with the end token, this equals the accuracy of
        greedy generation.
    token_accuracy : float
        Share of response tokens (end token included) that are the top prediction.
    exact_match_by_tag : dict of str to float
        ``exact_match`` per tag (question kind).
    n_examples : int
    """

    exact_match: float
    token_accuracy: float
    exact_match_by_tag: dict[str, float]
    n_examples: int


def score_responses(
    model: nn.Module, examples: Examples, *, batch_size: int = 128
) -> ResponseScores:
    """Teacher-forced scores of ``model`` on the response tokens of ``examples``.

    Parameters
    ----------
    model : torch.nn.Module
        A causal (vision-)language model returning ``logits``; run in eval mode without gradients
        on the device of its parameters, and left in eval mode.
    examples : Examples
        The set to score.
    batch_size : int, default=128
        Examples per forward pass.

    Returns
    -------
    ResponseScores
    """
    if not isinstance(examples, Examples):
        raise TypeError(f"examples must be an Examples set; got {type(examples).__name__}.")
    if len(examples) == 0:
        raise ValueError("examples is empty: nothing to score.")
    device = next(model.parameters()).device
    model.eval()
    exact, correct, counted = [], 0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(examples)))
            batch = examples.batch(rows, device=device)
            labels = batch.pop("labels")[:, 1:]
            predicted = model(**batch).logits[:, :-1].argmax(dim=-1)
            scored = labels != IGNORE_INDEX
            hit = (predicted == labels) & scored
            exact.append((hit.sum(dim=1) == scored.sum(dim=1)).cpu())
            correct += int(hit.sum())
            counted += int(scored.sum())
    matches = torch.cat(exact)
    by_tag = {}
    for tag in sorted(set(examples.tags)):
        chosen = torch.as_tensor([t == tag for t in examples.tags])
        by_tag[tag] = float(matches[chosen].float().mean())
    return ResponseScores(
        exact_match=float(matches.float().mean()),
        token_accuracy=correct / counted,
        exact_match_by_tag=by_tag,
        n_examples=len(examples),
    )


def evaluate_vlm(model: nn.Module, data: TestbedData) -> dict[str, float]:
    """The held-out scores of a testbed VLM (base, tuned, or any model trained from them).

    Returns
    -------
    dict of str to float
        ``qa_accuracy``: answer accuracy on held-out images' questions (greedy answer equals the
        truth), and ``qa_accuracy/<kind>`` per question kind; ``caption_token_accuracy``:
        teacher-forced token accuracy of the caption asked for by the instruction
        "describe the image."; ``plain_caption_token_accuracy``: the same after the stage-1 plain
        prompt (the image alone).
    """
    qa = score_responses(model, data.qa_eval)
    metrics = {"qa_accuracy": qa.exact_match}
    metrics.update({f"qa_accuracy/{kind}": v for kind, v in qa.exact_match_by_tag.items()})
    metrics["caption_token_accuracy"] = score_responses(model, data.caption_eval).token_accuracy
    metrics["plain_caption_token_accuracy"] = score_responses(
        model, data.plain_caption_eval
    ).token_accuracy
    return metrics


def evaluate_llm(model: nn.Module, data: TestbedData) -> dict[str, float]:
    """The held-out scores of the text-only base LLM.

    Returns
    -------
    dict of str to float
        ``text_qa_accuracy``: answer accuracy on held-out questions asked about the caption in the
        prompt; ``caption_token_accuracy``: token accuracy on held-out captions without any
        context (bounded well below 1 by the randomness of the world).
    """
    return {
        "text_qa_accuracy": score_responses(model, data.text_qa_eval).exact_match,
        "caption_token_accuracy": score_responses(model, data.text_caption_eval).token_accuracy,
    }


def evaluate_checkpoint(
    path: str | os.PathLike[str], data: TestbedData, *, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Load a saved checkpoint by path and score it on the held-out sets of ``data``.

    A checkpoint whose config has a ``vision_config`` (a LLaVA-like VLM, loaded with
    ``AutoModelForImageTextToText``) gets :func:`evaluate_vlm`; a text-only one
    (``AutoModelForCausalLM``) gets :func:`evaluate_llm`. Its vocabulary must be the testbed's.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} is not a saved checkpoint: it has no config.json.")
    config = AutoConfig.from_pretrained(folder)
    vision = getattr(config, "vision_config", None) is not None
    loader = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    model = loader.from_pretrained(folder).to(device).eval()  # type: ignore[arg-type]  # as .to
    vocabulary = model.get_output_embeddings().weight.shape[0]
    expected = int(data.qa_eval.input_ids.max()) + 1
    if vocabulary < expected:
        raise ValueError(
            f"{folder}: the model's vocabulary has {vocabulary} tokens but the testbed's token ids "
            f"reach {expected - 1}; it was not built on the testbed's tokenizer."
        )
    return evaluate_vlm(model, data) if vision else evaluate_llm(model, data)

"""Scoring tasks built from data: captions of a paired dataset, the testbed's held-out sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch

from geomalign.data import PairedDataset
from geomalign.interventions.benchmarks import Benchmark
from geomalign.interventions.prompted import PromptedTask, prompt_task
from geomalign.interventions.scoring import TaskData, make_task, task_from_labels

if TYPE_CHECKING:  # the testbed needs transformers, an optional dependency
    from geomalign.testbed import Testbed
    from geomalign.testbed.examples import Examples

__all__ = [
    "HELD_OUT_BENCHMARKS",
    "LLAVA_CAPTION_TEMPLATE",
    "caption_task",
    "held_out_benchmarks",
    "held_out_tasks",
]

#: The testbed's held-out sets as benchmark tasks, see :func:`held_out_benchmarks`.
HELD_OUT_BENCHMARKS = ("qa", "text-qa", "choice", "caption")

#: LLaVA-1.5's short-caption instruction (its COCO caption evaluation prompt) in its chat format.
LLAVA_CAPTION_TEMPLATE = (
    "USER: {image}\nProvide a one-sentence caption for the provided image. ASSISTANT:"
)


def caption_task(
    processor: Any,
    dataset: PairedDataset,
    *,
    template: str = LLAVA_CAPTION_TEMPLATE,
    indices: Sequence[int] | None = None,
    end_token: bool = True,
    name: str = "caption",
) -> TaskData:
    """Caption log-likelihood items: each image's prompt, then its reference caption as target.

    Parameters
    ----------
    processor : transformers processor
        The model's vision-language processor (with ``image_token`` and ``tokenizer``); it expands
        the image placeholder to the model's number of image tokens and preprocesses the images.
    dataset : PairedDataset
        Images and reference captions.
    template : str, default=LLAVA_CAPTION_TEMPLATE
        Prompt with one ``{image}`` placeholder, in the model's conversation format.
    indices : sequence of int, optional
        Samples to use (default all).
    end_token : bool, default=True
        Append the tokenizer's end-of-sequence token to each caption, so the score includes
        stopping after it.
    name : str, default="caption"
        Task name in result tables.

    Returns
    -------
    TaskData
        ``metric="loglik"``, item ids = sample ids.
    """
    image_token = getattr(processor, "image_token", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if not isinstance(image_token, str) or tokenizer is None:
        raise TypeError(
            "processor must be a vision-language processor with an image_token and a tokenizer; "
            f"got {type(processor).__name__}."
        )
    if template.count("{image}") != 1:
        raise ValueError(f"template must hold exactly one '{{image}}'; got {template!r}.")
    if not isinstance(dataset, PairedDataset):
        raise TypeError(f"dataset must be a PairedDataset; got {type(dataset).__name__}.")
    picked = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not picked:
        raise ValueError("caption_task needs at least one sample; got an empty selection.")
    prompt = template.replace("{image}", image_token)
    encoded = processor(
        images=[dataset.image(i) for i in picked],
        text=[prompt] * len(picked),
        return_tensors="pt",
        padding=True,
        padding_side="right",
    )
    prompts = [
        row[mask.bool()].tolist()
        for row, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
    ]
    captions = [dataset.captions[i] for i in picked]
    targets = tokenizer(captions, add_special_tokens=False)["input_ids"]
    if end_token:
        if tokenizer.eos_token_id is None:
            raise ValueError("end_token=True needs a tokenizer with an eos_token.")
        targets = [[*t, tokenizer.eos_token_id] for t in targets]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return make_task(
        name,
        prompts,
        targets,
        encoded["pixel_values"],
        metric="loglik",
        pad_token_id=int(pad if pad is not None else 0),
        item_ids=[dataset.ids[i] for i in picked],
    )


def held_out_tasks(
    testbed: Testbed,
    *,
    tasks: Sequence[str] = ("qa", "caption"),
    max_images: int | None = None,
) -> list[TaskData]:
    """The held-out tasks of a built testbed, scored exactly as the testbed scores its checkpoints.

    Parameters
    ----------
    testbed : geomalign.testbed.Testbed
        A built testbed (see :func:`geomalign.testbed.build_testbed`).
    tasks : sequence of {"qa", "caption"}, default=("qa", "caption")
        ``"qa"``: every question about the held-out images, answer (and end token) scored by
        greedy exact match -- the testbed's ``qa_accuracy``; items are clustered by image.
        ``"caption"``: the caption of each held-out image after the instruction "describe the
        image.", scored by mean log-likelihood per token.
    max_images : int, optional
        Keep only the items about the first ``max_images`` held-out images.

    Returns
    -------
    list of TaskData
        In the order of ``tasks``.
    """
    unknown = sorted(set(tasks) - {"qa", "caption"})
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of ['qa', 'caption']; got {unknown}.")
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) < 1):
        raise ValueError(f"max_images must be a positive int or None; got {max_images!r}.")
    data = testbed.data()
    ids = data.test.pairs.ids
    sources: dict[str, tuple[Examples, Literal["loglik", "exact-match"]]] = {
        "qa": (data.qa_eval, "exact-match"),
        "caption": (data.caption_eval, "loglik"),
    }
    out = []
    for name in tasks:
        examples, metric = sources[name]
        image_index, pixel_values = examples.image_index, examples.pixel_values
        if image_index is None or pixel_values is None:
            raise ValueError(f"the testbed's {name!r} set holds no images.")
        keep = torch.arange(len(examples))
        if max_images is not None:
            keep = keep[image_index < int(max_images)]
        images = [ids[i] for i in image_index[keep].tolist()]
        out.append(
            task_from_labels(
                name,
                examples.input_ids[keep],
                examples.attention_mask[keep],
                examples.labels[keep],
                pixel_values,
                metric=metric,
                image_index=image_index[keep],
                item_ids=[
                    f"{image}/{name}{row}" for row, image in zip(keep.tolist(), images, strict=True)
                ],
                groups=images,
            )
        )
    return out


def held_out_benchmarks(
    testbed: Testbed,
    *,
    tasks: Sequence[str] = HELD_OUT_BENCHMARKS,
    max_images: int | None = None,
    max_new_tokens: int = 6,
) -> list[PromptedTask]:
    """The testbed's held-out images and questions as benchmark tasks, prompted as it was tuned.

    Parameters
    ----------
    testbed : geomalign.testbed.Testbed
        A built testbed.
    tasks : sequence of {"qa", "text-qa", "choice", "caption"}, default=all
        ``"qa"``: every question about the held-out images, greedy answer, exact match;
        ``"text-qa"``: the same questions asked about the image's caption, without the image
        (the testbed's text-QA conversation), exact match; ``"choice"``: the image questions with
        every answer of their kind as options (option log-likelihood, length-normalised);
        ``"caption"``: greedy caption after "describe the image.", CIDEr-D against the caption.
    max_images : int, optional
        Keep only the items about the first ``max_images`` held-out images.
    max_new_tokens : int, default=6
        Decoding budget (answers are one word, captions up to about 10).

    Returns
    -------
    list of PromptedTask
        In the order of ``tasks``; items are clustered by image.
    """
    from transformers import AutoProcessor

    unknown = sorted(set(tasks) - set(HELD_OUT_BENCHMARKS))
    if unknown or not tasks:
        raise ValueError(
            f"tasks must be a non-empty subset of {list(HELD_OUT_BENCHMARKS)}; got {unknown}."
        )
    world = testbed.data().test
    n_images = len(world) if max_images is None else min(int(max_images), len(world))
    questions = [q for q in world.questions if q.index < n_images]
    processor = AutoProcessor.from_pretrained(testbed.tuned)
    captions = world.pairs.captions
    options = {
        kind: tuple(sorted({q.answer for q in world.questions if q.kind == kind}))
        for kind in {q.kind for q in world.questions}
    }
    out = []
    for name in tasks:
        rows: list[int] = [q.index for q in questions]
        common = {
            "ids": tuple(f"{q.sample_id}/{name}{k}" for k, q in enumerate(questions)),
            "groups": tuple(q.sample_id for q in questions),
            "load_image": lambda i, rows=rows: world.pairs.image(rows[i]),
            "source": f"testbed {testbed.root.name}",
        }
        if name == "caption":
            rows = list(range(n_images))
            common.update(
                ids=tuple(world.pairs.ids[:n_images]),
                groups=tuple(world.pairs.ids[:n_images]),
                load_image=lambda i: world.pairs.image(i),
            )
            bench = Benchmark(
                name="caption",
                kind="caption",
                questions=("describe the image.",) * n_images,
                references=tuple((c,) for c in captions[:n_images]),
                **common,  # type: ignore[arg-type]
            )
        elif name == "choice":
            bench = Benchmark(
                name="choice",
                kind="choice",
                questions=tuple(q.question for q in questions),
                references=tuple(options[q.kind] for q in questions),
                answer_index=tuple(options[q.kind].index(q.answer) for q in questions),
                **common,  # type: ignore[arg-type]
            )
        else:
            text = name == "text-qa"
            bench = Benchmark(
                name=name,
                kind="qa",
                questions=tuple(
                    f"{captions[q.index]}. {q.question}" if text else q.question for q in questions
                ),
                references=tuple((q.answer,) for q in questions),
                **{**common, "load_image": None if text else common["load_image"]},  # type: ignore[arg-type]
            )
        metric = {"qa": "exact", "text-qa": "exact", "choice": "choice-norm", "caption": "cider"}
        out.append(
            prompt_task(
                bench,
                processor,
                metric=metric[name],
                instruction="",
                max_new_tokens=max_new_tokens + 8 * (name == "caption"),
            )
        )
    return out

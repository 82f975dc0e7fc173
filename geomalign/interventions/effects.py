"""Every effect curve of a base/tuned checkpoint pair on a set of tasks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from geomalign.analysis.effect_curves import EffectCurve
from geomalign.interventions.curves import (
    INTERVENTIONS,
    Task,
    transplant_curve,
    visual_token_curve,
)
from geomalign.interventions.prompted import PromptedTask
from geomalign.interventions.scoring import TaskData

__all__ = ["ANALYSES", "intervention_effects", "load_checkpoint", "run_effect_curves"]

#: Analyses :func:`intervention_effects` runs, in order.
ANALYSES = ("transplant-cumulative", "transplant-reverse", "transplant-sliding", *INTERVENTIONS)

# Options intervention_effects passes on to every curve.
_CURVE_OPTIONS = (
    "batch_size",
    "device",
    "n_resamples",
    "n_permutations",
    "confidence",
    "random_state",
    "progress",
)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
) -> nn.Module:
    """Load an image-text-to-text checkpoint for interventions: SDPA attention, eval mode.

    Parameters
    ----------
    path : path-like or str
        Local folder or hub id of a ``save_pretrained`` checkpoint (e.g. a LLaVA model).
    device : str or torch.device, default="cpu"
        Where the model goes.
    dtype : str or torch.dtype, default="float32"
        Weight dtype (``"float32"``, ``"bfloat16"``, ``"float16"``); scores are always reduced in
        float32 or float64.
    """
    from transformers import AutoModelForImageTextToText

    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype or its name; got {dtype!r}.")
    model: nn.Module = AutoModelForImageTextToText.from_pretrained(
        path, dtype=torch_dtype, attn_implementation="sdpa"
    )
    return model.to(device).eval()


def intervention_effects(
    base: nn.Module,
    tuned: nn.Module,
    tasks: Sequence[Task],
    *,
    analyses: Sequence[str] = ANALYSES,
    width: int = 2,
    stride: int = 1,
    shell: str = "adjacent",
    visual_checkpoints: Sequence[str] = ("tuned",),
    base_name: str = "base",
    tuned_name: str = "tuned",
    **options: object,
) -> list[EffectCurve]:
    """Run the chosen effect curves on every task.

    Parameters
    ----------
    base, tuned : torch.nn.Module
        The two checkpoints (``base`` is modified in place during transplantation and restored).
    tasks : sequence of TaskData or PromptedTask
        Tasks to score, e.g. VQA accuracy of generated answers and caption CIDEr-D.
    analyses : sequence of str, default=ANALYSES
        Any of ``"transplant-cumulative"``, ``"transplant-reverse"``, ``"transplant-sliding"``,
        ``"skip"``,
        ``"ablate-mean"``, ``"ablate-zero"``, ``"knockout"``.
    width, stride : int, default=2, 1
        Window width and step of the sliding curves (transplant, ablation, knockout).
    shell : {"adjacent", "base", "tuned"}, default="adjacent"
        What moves with transplanted blocks, see :class:`~geomalign.interventions.LayerTransplant`.
    visual_checkpoints : sequence of {"base", "tuned"}, default=("tuned",)
        Checkpoints the image-token interventions run on.
    base_name, tuned_name : str
        Checkpoint names in the table.
    **options
        Passed to every curve: any of ``batch_size``, ``device``, ``n_resamples``,
        ``n_permutations``, ``confidence``, ``random_state``, ``progress`` (see
        :func:`~geomalign.interventions.transplant_curve`).

    Returns
    -------
    list of EffectCurve
        Per task, the curves in the order of ``analyses`` (image-token ones per checkpoint of
        ``visual_checkpoints``); :func:`~geomalign.analysis.effects_table` gives their rows.
    """
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown or not analyses:
        raise ValueError(f"analyses must be a non-empty subset of {list(ANALYSES)}; got {unknown}.")
    bad = sorted(set(visual_checkpoints) - {"base", "tuned"})
    if bad:
        raise ValueError(f"visual_checkpoints must be 'base' and/or 'tuned'; got {bad}.")
    if not tasks or not all(isinstance(t, TaskData | PromptedTask) for t in tasks):
        raise TypeError("tasks must be a non-empty sequence of TaskData or PromptedTask.")
    unexpected = sorted(set(options) - set(_CURVE_OPTIONS))
    if unexpected:
        raise TypeError(
            f"intervention_effects got unexpected options {unexpected}; it passes on only "
            f"{list(_CURVE_OPTIONS)} to the curves."
        )
    models = {"base": (base, base_name), "tuned": (tuned, tuned_name)}
    curves: list[EffectCurve] = []
    for task in tasks:
        for analysis in analyses:
            if analysis.startswith("transplant-"):
                mode = analysis.split("-", 1)[1]
                curves.append(
                    transplant_curve(
                        base,
                        tuned,
                        task,
                        mode=mode,  # type: ignore[arg-type]
                        width=width if mode == "sliding" else None,
                        stride=stride,
                        shell=shell,  # type: ignore[arg-type]
                        base_name=base_name,
                        tuned_name=tuned_name,
                        **options,  # type: ignore[arg-type]
                    )
                )
                continue
            for which in visual_checkpoints:
                model, name = models[which]
                curves.append(
                    visual_token_curve(
                        model,
                        task,
                        intervention=analysis,  # type: ignore[arg-type]
                        width=width,
                        stride=stride,
                        checkpoint=name,
                        **options,  # type: ignore[arg-type]
                    )
                )
    return curves


def run_effect_curves(
    *,
    testbed: str | None = None,
    base: str | os.PathLike[str] | None = None,
    tuned: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    template: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    tasks: Sequence[str] | None = None,
    benchmarks: Sequence[str] = (),
    task_files: Sequence[str | os.PathLike[str]] = (),
    annotations: str | os.PathLike[str] | None = None,
    prompting: Mapping[str, object] | None = None,
    processor: str | os.PathLike[str] | None = None,
    max_images: int | None = None,
    limit: int | None = None,
    subsample: bool = False,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    **options: object,
) -> list[EffectCurve]:
    """Load a checkpoint pair and its tasks, then run :func:`intervention_effects`.

    Either ``testbed`` (``"small"`` or ``"full"``: build or reuse the shapes-world testbed and
    score its held-out sets: ``tasks`` teacher-forced, see
    :func:`~geomalign.interventions.held_out_tasks`, and ``benchmarks`` generated, see
    :func:`~geomalign.interventions.held_out_benchmarks`), or ``base`` and ``tuned`` with
    benchmark ``task_files`` (see :func:`~geomalign.interventions.load_task`) and/or ``data`` (a
    paired dataset, ``.jsonl``/``.csv`` table or COCO ``.json`` with ``image_dir``, whose
    captions form a caption log-likelihood task, see
    :func:`~geomalign.interventions.caption_task`).

    Parameters
    ----------
    testbed : {"small", "full"}, optional
        Testbed preset.
    base, tuned : path-like or str, optional
        Checkpoints (hub ids or folders) when no testbed is used.
    data, image_dir : path-like, optional
        Pairs for the caption task; ``image_dir`` is also the image folder of the task files.
    template : str, optional
        Caption prompt with ``{image}`` for ``data``; default LLaVA-1.5's short-caption
        instruction.
    cache_dir : path-like, optional
        Testbed cache folder.
    tasks : sequence of {"qa", "caption"}, optional
        Teacher-forced testbed tasks, default both; without the testbed only ``"caption"`` (the
        task of ``data``) exists, and benchmark QA comes from ``task_files``.
    benchmarks : sequence of {"qa", "text-qa", "choice", "caption"}, default=()
        Generated testbed tasks.
    task_files : sequence of path-like, default=()
        Benchmark tasks of a base/tuned pair: tables, VQAv2 questions files, COCO-QA folders.
    annotations : path-like, optional
        The VQAv2 annotations file of a questions ``.json`` task.
    prompting : mapping, optional
        Keywords of :func:`~geomalign.interventions.prompt_task` for every task file
        (``metric``, ``template``, ``instruction``, ``max_new_tokens``), and ``kind``.
    processor : path-like or str, optional
        Processor of the task files; default the tuned checkpoint's.
    max_images : int, optional
        Testbed and ``data``: score only the items of the first ``max_images`` images.
    limit : int, optional
        Score at most ``limit`` items of each task file: the first ones, or a seeded random
        subset with ``subsample`` (seed: ``random_state``).
    device, dtype
        Where and in which dtype the checkpoints are loaded (see :func:`load_checkpoint`).
    **options
        Passed to :func:`intervention_effects` (``analyses``, ``width``, ``stride``, ``shell``,
        ``n_resamples``, ``random_state``, ``batch_size``, ...).

    Returns
    -------
    list of EffectCurve
    """
    from transformers import AutoProcessor

    from geomalign.data import load_pairs
    from geomalign.interventions.benchmark_layouts import load_task
    from geomalign.interventions.prompted import prompt_task
    from geomalign.interventions.tasks import (
        LLAVA_CAPTION_TEMPLATE,
        caption_task,
        held_out_benchmarks,
        held_out_tasks,
    )
    from geomalign.testbed import TestbedConfig, build_testbed

    task_data: list[Task] = []
    if testbed is not None:
        if base is not None or tuned is not None or data is not None or task_files:
            raise ValueError("give either testbed or base/tuned with data or tasks, not both.")
        if testbed not in ("small", "full"):
            raise ValueError(f"testbed must be 'small' or 'full'; got {testbed!r}.")
        config = TestbedConfig.small() if testbed == "small" else TestbedConfig()
        built = build_testbed(config, cache_dir=cache_dir, progress=bool(options.get("progress")))
        base, tuned = built.base, built.tuned
        tasks = ("qa", "caption") if tasks is None else tasks
        if tasks:
            task_data += held_out_tasks(built, tasks=tasks, max_images=max_images)
        if benchmarks:
            task_data += held_out_benchmarks(built, tasks=benchmarks, max_images=max_images)
    else:
        if base is None or tuned is None or (data is None and not task_files):
            raise ValueError("without testbed, base, tuned and data or task files are required.")
        if tasks is not None and set(tasks) - {"caption"}:
            raise ValueError(
                f"with base/tuned only the caption task of data exists; got tasks {list(tasks)} "
                "(question answering comes from task files)."
            )
        loaded = AutoProcessor.from_pretrained(processor or tuned)
        prompt_options = dict(prompting or {})
        kind = prompt_options.pop("kind", None)
        seed = options.get("random_state", 0) if subsample else None
        for path in task_files:
            bench = load_task(path, image_dir=image_dir, annotations=annotations, kind=kind)  # type: ignore[arg-type]
            bench = bench.sample(limit, random_state=seed)  # type: ignore[arg-type]
            task_data.append(prompt_task(bench, loaded, **prompt_options))  # type: ignore[arg-type]
        if data is not None:
            pairs = load_pairs(data, image_dir)
            n = len(pairs) if max_images is None else min(int(max_images), len(pairs))
            task_data.append(
                caption_task(
                    loaded, pairs, template=template or LLAVA_CAPTION_TEMPLATE, indices=range(n)
                )
            )
    if not task_data:
        raise ValueError("no task to score: give tasks, benchmarks or task files.")
    return intervention_effects(
        load_checkpoint(base, device=device, dtype=dtype),
        load_checkpoint(tuned, device=device, dtype=dtype),
        task_data,
        **options,  # type: ignore[arg-type]
    )

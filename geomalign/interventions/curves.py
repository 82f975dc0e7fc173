"""Effect curves of interventions over windows of decoder blocks.

Each curve scores a task (per item, :func:`~geomalign.interventions.score_items`) once without
intervention (the reference) and once per window of blocks with it, and returns an
:class:`~geomalign.analysis.EffectCurve`. Its rows of the results table
(:meth:`~geomalign.analysis.EffectCurve.to_table`): one ``statistic="reference"`` row per
unmodified checkpoint, then two rows per window:

- ``statistic="value"``: the mean item score, with a cluster-bootstrap CI over items,
  ``null_mean`` = the reference score and ``p_value`` from a paired sign-flip test of the item
  differences (two-sided);
- ``statistic="effect"``: the mean paired difference (score minus reference), with its
  cluster-bootstrap CI (narrower than the score's: item difficulty cancels) and the same p-value.

Layers in the table follow the store's convention: block ``i`` (0-based) produces layer ``i + 1``,
so the window of blocks ``[a, b)`` is ``layer = a + 1`` to ``layer_b = b`` (inclusive); an empty
window has no layers. Summary rows per curve answer "which layers matter most":

- ``statistic="peak_layer"``: the centre layer of the window of largest importance, with the
  bootstrap interval of that centre and, in ``notes``, how often the bootstrap peak lies in the
  middle third of the depth;
- ``statistic="middle_minus_early"`` and ``"middle_minus_late"``: mean importance of the windows
  centred in the middle third of the depth minus that of the windows centred in the first
  (resp. last) third, with a bootstrap CI and a sign-flip p-value. Middle layers matter most
  when both contrasts are positive; a monotone curve makes only one of them positive.

Importance is the gain over the reference for transplantation and the loss for disruptions
(skip, ablation, knockout). For cumulative curves (``[0, l)`` transplants, skip of ``k`` blocks)
it is the increment that block ``l - 1`` adds, so that the peak names one block.

Where the statistics hold (``benchmarks/calibration_bench.py``, docs/calibration.md): with 40
images both the sign-flip test (false-positive rate 0.054) and the 95% interval (coverage 0.944)
are in their bands; with about 10 images the test is conservative (0.032: only ``2 ** 10`` sign
patterns) and the cluster-bootstrap interval a little narrow (0.932). Score more images where
a window's effect is to be tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import numpy as np
import torch
from torch import nn

from geomalign._model_parts import decoder_blocks
from geomalign._progress import progress_bar
from geomalign.analysis.effect_curves import EffectCurve
from geomalign.interventions._curve_rows import Curve, CurveCalibration, effect_curve
from geomalign.interventions.prompted import PromptedTask
from geomalign.interventions.scoring import TaskData, score_items
from geomalign.interventions.transplant import LayerTransplant, block_windows
from geomalign.interventions.visual_tokens import (
    ablate_visual_tokens,
    knockout_visual_attention,
    skip_visual_tokens,
)

__all__ = ["score_task", "transplant_curve", "visual_token_curve"]

INTERVENTIONS = ("skip", "ablate-mean", "ablate-zero", "knockout")

#: A task the curves score: teacher-forced items, or a benchmark prompted for a processor.
Task = TaskData | PromptedTask


def score_task(
    model: nn.Module,
    task: Task,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Per-item scores of ``task`` under ``model`` as it is now (weights, hooks)."""
    if isinstance(task, PromptedTask):
        return task.score(model, batch_size=batch_size, device=device, progress=progress)
    if isinstance(task, TaskData):
        return score_items(model, task, batch_size=batch_size, device=device)
    raise TypeError(f"task must be a TaskData or a PromptedTask; got {type(task).__name__}.")


def _score(
    model: nn.Module,
    task: Task,
    windows: Sequence[range],
    context: Callable[[range], AbstractContextManager[object]],
    *,
    batch_size: int,
    device: str | torch.device | None,
    progress: bool,
    label: str,
) -> np.ndarray:
    out = np.empty((len(windows), len(task)))
    for row, window in enumerate(progress_bar(windows, progress=progress, desc=label, leave=False)):
        with context(window):
            out[row] = score_task(model, task, batch_size=batch_size, device=device)
    return out


def transplant_curve(
    base: nn.Module,
    tuned: nn.Module,
    task: Task,
    *,
    mode: Literal["cumulative", "reverse", "sliding"] = "cumulative",
    width: int | None = None,
    stride: int = 1,
    shell: Literal["adjacent", "base", "tuned"] = "adjacent",
    base_name: str = "base",
    tuned_name: str = "tuned",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    progress: bool = False,
) -> EffectCurve:
    """Score hybrids with tuned decoder blocks in each window: the transplantation curve.

    Parameters
    ----------
    base, tuned : torch.nn.Module
        Base and tuned checkpoints of one architecture; ``base`` is modified in place during the
        sweep and restored afterwards (also on errors). ``tuned`` may live on another device.
    task : TaskData or PromptedTask
        Items to score (teacher-forced items, or a benchmark task, see
        :func:`~geomalign.interventions.prompt_task`).
    mode : {"cumulative", "reverse", "sliding"}, default="cumulative"
        Windows ``[0, s)`` for every ``s`` (the two-part split: tuned blocks ``[0, s)``, base
        blocks ``[s, L)``), ``[s, L)`` for every ``s`` (the reverse split: base blocks
        ``[0, s)``, tuned blocks ``[s, L)``), or windows of ``width`` blocks every ``stride``.
    width, stride : int
        Sliding-window width and step (see :func:`~geomalign.interventions.block_windows`).
    shell : {"adjacent", "base", "tuned"}, default="adjacent"
        What moves besides the blocks (see :class:`~geomalign.interventions.LayerTransplant`).
    base_name, tuned_name : str
        Checkpoint names written to the table.
    batch_size, device
        Passed to :func:`~geomalign.interventions.score_items`.
    n_resamples, n_permutations, confidence, random_state
        Cluster bootstrap, sign-flip test and their seed.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    EffectCurve
        References: the base and the tuned model; one window per window of blocks (the score's
        ``null_mean`` = the base model's score) and the summary (see the module docstring).
    """
    calibration = CurveCalibration(n_resamples, n_permutations, confidence, random_state)
    with LayerTransplant(base, tuned, shell=shell) as hybrid:
        windows = block_windows(hybrid.n_blocks, mode=mode, width=width, stride=stride)
        hybrid.set_checkpoint("base")
        base_scores = score_task(base, task, batch_size=batch_size, device=device)
        hybrid.set_checkpoint("tuned")
        tuned_scores = score_task(base, task, batch_size=batch_size, device=device)
        scores = _score(
            base,
            task,
            windows,
            lambda window: _switch(hybrid, window),
            batch_size=batch_size,
            device=device,
            progress=progress,
            label=f"transplant ({mode})",
        )
    curve = Curve(
        task,
        windows,
        scores,
        base_scores,
        n_blocks=hybrid.n_blocks,
        cumulative=mode != "sliding",
        sign=1.0,
        calibration=calibration,
    )
    return effect_curve(
        curve,
        [(base_name, base_scores), (tuned_name, tuned_scores)],
        analysis=f"transplant-{mode}",
        reference_notes="unmodified checkpoint",
        checkpoint_b=tuned_name,
        how=f"the {base_name} model; blocks in the window from {tuned_name}, shell={shell}",
    )


def _switch(hybrid: LayerTransplant, window: range) -> AbstractContextManager[None]:
    hybrid.set(window)
    return nullcontext()


def visual_token_curve(
    model: nn.Module,
    task: Task,
    *,
    intervention: Literal["skip", "ablate-mean", "ablate-zero", "knockout"],
    width: int = 1,
    stride: int = 1,
    checkpoint: str = "model",
    image_token_id: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    n_resamples: int = 1000,
    n_permutations: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    progress: bool = False,
) -> EffectCurve:
    """Score the task under an image-token intervention in each layer window.

    Parameters
    ----------
    model : torch.nn.Module
        A LLaVA-style model (hooks are always removed afterwards).
    task : TaskData or PromptedTask
        Items to score.
    intervention : {"skip", "ablate-mean", "ablate-zero", "knockout"}
        ``"skip"``: image tokens bypass blocks ``[0, k)`` for ``k = 0 .. n_blocks`` (a cumulative
        curve; ``width``/``stride`` unused); ``"ablate-*"``: image-token states replaced (by the
        per-sample mean or zeros) at the input of each block of a sliding window;
        ``"knockout"``: text cannot attend to image positions in the window's blocks.
    width, stride : int, default=1
        Sliding-window width and step for ablation and knockout.
    checkpoint : str, default="model"
        Checkpoint name written to the table.
    image_token_id : int, optional
        Image placeholder token; default from the model config.
    batch_size, device, n_resamples, n_permutations, confidence, random_state, progress
        As in :func:`transplant_curve`.

    Returns
    -------
    EffectCurve
        One reference (no intervention), one window per window of blocks (the score's
        ``null_mean`` = the reference score) and the summary.
    """
    if intervention not in INTERVENTIONS:
        raise ValueError(
            f"intervention must be one of {list(INTERVENTIONS)}; got {intervention!r}."
        )
    calibration = CurveCalibration(n_resamples, n_permutations, confidence, random_state)
    n_blocks = len(decoder_blocks(model))
    if intervention == "skip":
        windows = block_windows(n_blocks)

        def context(window: range) -> AbstractContextManager[object]:
            return skip_visual_tokens(model, len(window), image_token_id=image_token_id)

    else:
        windows = block_windows(n_blocks, mode="sliding", width=width, stride=stride)
        if intervention == "knockout":

            def context(window: range) -> AbstractContextManager[object]:
                return knockout_visual_attention(model, window, image_token_id=image_token_id)

        else:
            fill: Literal["mean", "zero"] = "mean" if intervention == "ablate-mean" else "zero"

            def context(window: range) -> AbstractContextManager[object]:
                return ablate_visual_tokens(model, window, fill=fill, image_token_id=image_token_id)

    reference = score_task(model, task, batch_size=batch_size, device=device)
    scores = _score(
        model,
        task,
        windows,
        context,
        batch_size=batch_size,
        device=device,
        progress=progress,
        label=intervention,
    )
    curve = Curve(
        task,
        windows,
        scores,
        reference,
        n_blocks=n_blocks,
        cumulative=intervention == "skip",
        sign=-1.0,
        calibration=calibration,
    )
    return effect_curve(
        curve,
        [(checkpoint, reference)],
        analysis=f"visual-{intervention}",
        reference_notes="no intervention",
        how=f"the {checkpoint} model without intervention",
    )

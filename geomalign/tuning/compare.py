"""Stage-2 fine-tuning of the testbed's base checkpoint: everything vs a window vs other windows.

Every run starts from the same stage-1 checkpoint, trains on the same stage-2 data with the same
steps, learning rate and batch order (per seed) and differs only in what trains; its wall time,
trainable parameter count and held-out scores are recorded, and compared with the full run of the
same seed.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import LlavaForConditionalGeneration
from transformers.utils import logging as hf_logging

from geomalign._model_parts import check_window
from geomalign.testbed import Testbed, evaluate_vlm
from geomalign.tuning.comparison import FULL, SELECTED, FinetuneRun, WindowComparison, describe
from geomalign.tuning.freezing import set_trainable
from geomalign.tuning.lora import lora_window
from geomalign.tuning.selection import REFERENCE_KINDS, reference_windows
from geomalign.tuning.training import train_model

__all__ = ["compare_windows"]

logger = logging.getLogger(__name__)


def compare_windows(
    testbed: Testbed,
    selected: Sequence[int] | range,
    *,
    references: Sequence[str] = REFERENCE_KINDS,
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    lr: float | None = None,
    projector: bool = False,
    lora_rank: int | None = None,
    random_state: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> WindowComparison:
    """Fine-tune the testbed's stage-1 checkpoint fully, on a chosen window, and on other windows.

    For each seed, in this order: the full stage-2 run (projector, embeddings, every decoder
    block, final norm and output head train; the vision tower is frozen, as in the testbed's
    own stage 2), then the chosen window, then each reference window of the same size (see
    :func:`~geomalign.tuning.reference_windows`). Every run starts from a fresh copy of the
    stage-1 checkpoint and calls :func:`geomalign.tuning.train_model` on the stage-2 data with
    the same steps, learning rate, batch size and seed, then scores the held-out set with
    :func:`geomalign.testbed.evaluate_vlm`. The full run of seed ``config.seed + 2`` with the
    default steps and learning rate reproduces the testbed's ``tuned`` checkpoint. Runs of one
    seed follow each other, so that slow phases of a shared machine affect the compared runs
    alike; their CPU time is recorded beside the wall time for the same reason.

    Parameters
    ----------
    testbed : Testbed
        A built testbed (:func:`geomalign.testbed.build_testbed`).
    selected : sequence of int or range
        0-based decoder blocks of the chosen window (e.g. ``select_window(...).blocks``).
    references : sequence of {"early", "late", "random"}, default=("early", "late", "random")
        Windows of the same size to compare with; may be empty.
    seeds : sequence of int, default=(0,)
        Seeds of the batch order; each gives one run of every kind.
    steps : int, default=None
        Optimisation steps; None means the testbed's ``stage2_steps``.
    lr : float, default=None
        Peak learning rate; None means the testbed's ``stage2_lr``.
    projector : bool, default=False
        Window runs also train the projector.
    lora_rank : int, default=None
        Window runs train LoRA adapters of this rank on the window (needs peft) instead of the
        window's weights.
    random_state : int, default=0
        Seed of the ``"random"`` reference window.
    device : str or torch.device, default="cpu"
        Where to train.
    progress : bool, default=True
        Show progress bars.

    Returns
    -------
    WindowComparison
    """
    if not isinstance(testbed, Testbed):
        raise TypeError(f"testbed must be a Testbed; got {type(testbed).__name__}.")
    config = testbed.config
    chosen = check_window(selected, config.text_layers, name="selected")
    if not chosen or chosen != list(range(chosen[0], chosen[-1] + 1)):
        raise ValueError(f"selected must be a non-empty contiguous window; got {list(selected)}.")
    windows = {SELECTED: range(chosen[0], chosen[-1] + 1)}
    windows |= reference_windows(
        len(chosen),
        config.text_layers,
        kinds=references,
        avoid=windows[SELECTED],
        random_state=random_state,
    )
    seeds = _check_seeds(seeds)
    data = testbed.data()
    steps = config.stage2_steps if steps is None else steps
    lr = config.stage2_lr if lr is None else lr
    base: nn.Module = _load(testbed.base, progress)
    base.to(device)
    runs = []
    for seed in seeds:
        for name, blocks in {FULL: None, **windows}.items():
            model = copy.deepcopy(base)
            if blocks is None:
                set_trainable(model, blocks="all", projector=True, embeddings=True, head=True)
                blocks = range(config.text_layers)
            elif lora_rank is not None:
                model = lora_window(
                    model, blocks, rank=lora_rank, projector=projector, random_state=seed
                )
            else:
                set_trainable(model, blocks=blocks, projector=projector)
            cpu_start = time.process_time()
            result = train_model(
                model,
                data.stage2,
                random_state=seed,
                description=f"{name} (blocks {describe(blocks)}, seed {seed})",
                steps=steps,
                lr=lr,
                batch_size=config.batch_size,
                progress=progress,
            )
            cpu_time = time.process_time() - cpu_start
            run = FinetuneRun(
                name=name,
                blocks=tuple(blocks),
                seed=seed,
                steps=result.steps,
                wall_time=result.wall_time,
                cpu_time=cpu_time,
                n_trainable=result.n_trainable,
                metrics={**result.metrics, **evaluate_vlm(model, data)},
            )
            runs.append(run)
            logger.info(
                "%s seed %d: %.1f s (%.1f s CPU), %s",
                name,
                seed,
                run.wall_time,
                run.cpu_time,
                run.metrics,
            )
    return WindowComparison(
        runs=tuple(runs), n_blocks=config.text_layers, base=os.fspath(testbed.base)
    )


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    values = list(seeds)
    if not values or any(
        isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0 for s in values
    ):
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0; got {values}.")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds must be distinct; got {values}.")
    return [int(s) for s in values]


def _load(path: os.PathLike[str], progress: bool) -> LlavaForConditionalGeneration:
    """Load a checkpoint, with transformers' loading bar only when ``progress`` is on."""
    shown = hf_logging.is_progress_bar_enabled()
    if shown and not progress:
        hf_logging.disable_progress_bar()
    try:
        return LlavaForConditionalGeneration.from_pretrained(path)
    finally:
        if shown and not progress:
            hf_logging.enable_progress_bar()

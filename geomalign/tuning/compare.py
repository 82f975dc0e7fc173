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
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration
from transformers.utils import logging as hf_logging

from geomalign._model_parts import check_window
from geomalign.analysis.table import Result, ResultsTable
from geomalign.testbed import Testbed, evaluate_vlm
from geomalign.tuning.freezing import set_trainable
from geomalign.tuning.lora import lora_window
from geomalign.tuning.selection import REFERENCE_KINDS, reference_windows
from geomalign.tuning.training import train_model

__all__ = ["FinetuneRun", "WindowComparison", "WindowSummary", "compare_windows"]

logger = logging.getLogger(__name__)

#: Name of the reference run that trains the projector and the whole language model.
FULL = "full"
#: Name of the chosen window's run.
SELECTED = "selected"
#: Scores recorded per run, besides wall time and trainable parameters.
SCORES = ("qa_accuracy", "caption_token_accuracy", "final_loss")
# Numbers that the results table also gives as a percentage of the full run's.
_RELATIVE = ("qa_accuracy", "caption_token_accuracy", "wall_time", "cpu_time", "n_trainable")


@dataclass(frozen=True)
class FinetuneRun:
    """One stage-2 fine-tuning run.

    Attributes
    ----------
    name : str
        ``"full"``, ``"selected"`` or a reference window's kind.
    blocks : tuple of int
        Decoder blocks trained (every block for ``"full"``).
    seed : int
        Seed of the batch order (and of LoRA's initialisation).
    steps : int
        Optimisation steps.
    wall_time : float
        Seconds in the optimisation loop.
    cpu_time : float
        CPU seconds of this process (all its threads) in the optimisation loop: on a CPU shared
        with other work, a steadier measure of the run's cost than ``wall_time``; on a GPU it
        misses the device's work.
    n_trainable : int
        Parameters trained.
    metrics : dict of str to float
        Held-out scores (``qa_accuracy``, ``caption_token_accuracy``, ...) and ``final_loss``.
    """

    name: str
    blocks: tuple[int, ...]
    seed: int
    steps: int
    wall_time: float
    cpu_time: float
    n_trainable: int
    metrics: dict[str, float] = field(repr=False)


@dataclass(frozen=True)
class WindowSummary:
    """One kind of run over seeds, relative to the full run of the same seed.

    Attributes
    ----------
    name : str
    blocks : tuple of int
    n_seeds : int
    score : float
        Mean held-out score (the ``metric`` of :meth:`WindowComparison.summary`).
    score_pct_mean, score_pct_std : float
        Score as % of the full run's, mean and standard deviation over seeds (ddof=1; 0 for a
        single seed).
    time_pct_mean, time_pct_std : float
        Wall time as % of the full run's, likewise.
    cpu_pct_mean, cpu_pct_std : float
        CPU time as % of the full run's, likewise.
    trainable_pct : float
        Trainable parameters as % of the full run's.
    """

    name: str
    blocks: tuple[int, ...]
    n_seeds: int
    score: float
    score_pct_mean: float
    score_pct_std: float
    time_pct_mean: float
    time_pct_std: float
    cpu_pct_mean: float
    cpu_pct_std: float
    trainable_pct: float


@dataclass(frozen=True)
class WindowComparison:
    """Every run of :func:`compare_windows`, in the order they ran.

    Attributes
    ----------
    runs : tuple of FinetuneRun
    n_blocks : int
        Decoder blocks of the model.
    base : str
        Path of the checkpoint every run started from.
    """

    runs: tuple[FinetuneRun, ...]
    n_blocks: int
    base: str

    def summary(self, metric: str = "qa_accuracy") -> list[WindowSummary]:
        """Mean and spread over seeds of each kind of run, relative to the full run.

        Parameters
        ----------
        metric : str, default="qa_accuracy"
            The held-out score to compare (a key of :attr:`FinetuneRun.metrics`).

        Returns
        -------
        list of WindowSummary
            One per run name, ``"full"`` first (100 % by construction).
        """
        full = {run.seed: run for run in self.runs if run.name == FULL}
        if metric not in self.runs[0].metrics:
            raise ValueError(
                f"metric must be one of {sorted(self.runs[0].metrics)}; got {metric!r}."
            )
        out = []
        for name in dict.fromkeys(run.name for run in self.runs):
            runs = [run for run in self.runs if run.name == name]
            score = np.array(
                [_ratio(r.metrics[metric], full[r.seed].metrics[metric]) for r in runs]
            )
            time = np.array([_ratio(r.wall_time, full[r.seed].wall_time) for r in runs])
            cpu = np.array([_ratio(r.cpu_time, full[r.seed].cpu_time) for r in runs])
            ddof = 1 if len(runs) > 1 else 0
            out.append(
                WindowSummary(
                    name=name,
                    blocks=runs[0].blocks,
                    n_seeds=len(runs),
                    score=float(np.mean([r.metrics[metric] for r in runs])),
                    score_pct_mean=100.0 * float(score.mean()),
                    score_pct_std=100.0 * float(score.std(ddof=ddof)),
                    time_pct_mean=100.0 * float(time.mean()),
                    time_pct_std=100.0 * float(time.std(ddof=ddof)),
                    cpu_pct_mean=100.0 * float(cpu.mean()),
                    cpu_pct_std=100.0 * float(cpu.std(ddof=ddof)),
                    trainable_pct=100.0
                    * _ratio(runs[0].n_trainable, full[runs[0].seed].n_trainable),
                )
            )
        return out

    def format_summary(self, metric: str = "qa_accuracy") -> str:
        """:meth:`summary` as a text table: one line per kind of run, mean ± std over seeds."""
        lines = [
            f"{'run':<10} {'blocks':<9} {metric:>22} {'% of full':>13} {'wall % full':>13} "
            f"{'CPU % full':>13} {'trainable %':>12}"
        ]
        for row in self.summary(metric):
            lines.append(
                f"{row.name:<10} {_describe(row.blocks):<9} {row.score:>22.3f} "
                f"{row.score_pct_mean:>6.1f} ± {row.score_pct_std:<4.1f} "
                f"{row.time_pct_mean:>6.1f} ± {row.time_pct_std:<4.1f} "
                f"{row.cpu_pct_mean:>6.1f} ± {row.cpu_pct_std:<4.1f} {row.trainable_pct:>12.1f}"
            )
        seeds = sorted({run.seed for run in self.runs})
        lines.append(
            f"{len(seeds)} seed(s) {seeds}, {self.runs[0].steps} steps each; "
            f"blocks are 0-based of {self.n_blocks}, [start, stop)."
        )
        return "\n".join(lines)

    def to_table(self) -> ResultsTable:
        """The runs as rows of the results table (``analysis="selective-finetune"``).

        Each run gives one row per score, ``wall_time``, ``cpu_time`` and ``n_trainable``, with
        ``checkpoint`` = the run's name, ``view="stage2"``, ``layer``/``layer_b`` = the first and
        last layer its blocks produce (block ``i`` produces layer ``i + 1``), and ``notes``
        naming the seed, steps and base checkpoint. Runs other than ``"full"`` also give
        ``statistic="percent_of_full"`` rows: the same numbers as % of the full run's.
        """
        full = {run.seed: run for run in self.runs if run.name == FULL}
        table = ResultsTable()
        for run in self.runs:
            notes = (
                f"seed={run.seed} steps={run.steps} blocks={_describe(run.blocks)} of "
                f"{self.n_blocks}; base={self.base}"
            )
            common = {
                "analysis": "selective-finetune",
                "checkpoint": run.name,
                "view": "stage2",
                "layer": run.blocks[0] + 1,
                "layer_b": run.blocks[-1] + 1,
                "notes": notes,
            }
            reference = _numbers(full[run.seed])
            for measure, value in _numbers(run).items():
                table.append(Result(measure=measure, value=value, **common))  # type: ignore[arg-type]
                if run.name != FULL and measure in _RELATIVE:
                    table.append(
                        Result(
                            measure=measure,
                            value=100.0 * _ratio(value, reference[measure]),
                            statistic="percent_of_full",
                            **common,
                        )  # type: ignore[arg-type]
                    )
        return table


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
    options = {
        "steps": config.stage2_steps if steps is None else steps,
        "lr": config.stage2_lr if lr is None else lr,
        "batch_size": config.batch_size,
        "progress": progress,
    }
    base = _load(testbed.base, progress).to(device)
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
                description=f"{name} (blocks {_describe(blocks)}, seed {seed})",
                **options,
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


def _ratio(value: float, reference: float) -> float:
    """``value / reference``, NaN when the reference is 0 (a run that learnt nothing)."""
    return value / reference if reference else float("nan")


def _numbers(run: FinetuneRun) -> dict[str, float]:
    values = {m: float(run.metrics[m]) for m in SCORES if m in run.metrics}
    return values | {
        "wall_time": run.wall_time,
        "cpu_time": run.cpu_time,
        "n_trainable": float(run.n_trainable),
    }


def _describe(blocks: Sequence[int]) -> str:
    return f"[{blocks[0]}, {blocks[-1] + 1})"

"""Typed result of the stage-2 window comparison: its runs, their summary over seeds, its rows.

Importable without transformers: :func:`~geomalign.tuning.compare_windows` (which needs the
``hf`` extra) produces a :class:`WindowComparison`; reading one needs only the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from geomalign.analysis.table import Result, ResultsTable

__all__ = ["FinetuneRun", "WindowComparison", "WindowSummary"]

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
    """Every run of :func:`~geomalign.tuning.compare_windows`, in the order they ran.

    The typed result of the comparison: :meth:`summary` and :meth:`format_summary` read its runs,
    and :meth:`to_table` writes them as rows of the results table (a report: the seed, steps and
    base checkpoint of a run are in the rows' notes, so the rows do not rebuild the runs).

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
                f"{row.name:<10} {describe(row.blocks):<9} {row.score:>22.3f} "
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
                f"seed={run.seed} steps={run.steps} blocks={describe(run.blocks)} of "
                f"{self.n_blocks}; base={self.base}"
            )
            reference = _numbers(full[run.seed])
            for measure, value in _numbers(run).items():
                statistics = [("value", value)]
                if run.name != FULL and measure in _RELATIVE:
                    statistics.append(
                        ("percent_of_full", 100.0 * _ratio(value, reference[measure]))
                    )
                table.extend(
                    Result(
                        analysis="selective-finetune",
                        measure=measure,
                        checkpoint=run.name,
                        view="stage2",
                        layer=run.blocks[0] + 1,
                        layer_b=run.blocks[-1] + 1,
                        value=number,
                        statistic=statistic,
                        notes=notes,
                    )
                    for statistic, number in statistics
                )
        return table


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


def describe(blocks: Sequence[int]) -> str:
    """``[start, stop)`` of a contiguous window of blocks."""
    return f"[{blocks[0]}, {blocks[-1] + 1})"

"""Equal-step fine-tuning runs of one checkpoint: full vs a window vs LoRA vs reference windows.

Every run loads the checkpoint afresh, trains the same steps on the same data in the same order
(per seed) and differs only in what trains; it is scored on the held-out rows before and after
and its costs are recorded. :class:`RunComparison` summarises the runs of each kind over seeds
(mean with a t-interval) and draws quality against training time.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geomalign import stats
from geomalign.analysis.table import Result, ResultsTable
from geomalign.tuning.instruct_data import Conversation
from geomalign.tuning.instruct_encoding import InstructionDataset
from geomalign.tuning.instruct_eval import evaluate_instructions
from geomalign.tuning.selection import REFERENCE_KINDS, reference_windows
from geomalign.tuning.trainer import FinetuneResult, finetune, save_model

__all__ = [
    "KINDS",
    "RunComparison",
    "RunSummary",
    "compare_runs",
    "count_blocks",
    "load_checkpoint",
]

#: Kinds of run: every block, the window's weights, LoRA on the window, reference windows.
KINDS = ("full", "window", "lora-window", *REFERENCE_KINDS)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """Load a (vision-)language checkpoint and its processor (or tokenizer) with transformers."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    try:
        model = AutoModelForImageTextToText.from_pretrained(path)
    except ValueError:  # a text-only model
        model = AutoModelForCausalLM.from_pretrained(path)
    try:
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError):
        processor = AutoTokenizer.from_pretrained(path)
    return model, processor


def count_blocks(path: str | os.PathLike[str]) -> int:
    """Decoder blocks of a checkpoint's language model, read from its configuration."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(path).get_text_config().num_hidden_layers)


@dataclass(frozen=True)
class RunSummary:
    """One kind of run of a :class:`RunComparison`, over seeds.

    Attributes
    ----------
    kind : str
    blocks : str
        The trained blocks, ``"first-last"`` (0-based, inclusive).
    n_seeds : int
    score, score_ci : float, (float, float)
        Mean after-training score and its t-interval over seeds.
    before : float
        Mean score before training.
    wall_time, wall_time_ci : float, (float, float)
        Mean training wall time (s) and its t-interval.
    cpu_time, tokens_per_second, peak_memory : float
        Means over seeds (``peak_memory`` in bytes).
    trainable_share : float
        Share of all parameters that trained.
    score_pct_full, time_pct_full : float
        Mean over seeds of the ratio (in %) to the full run of the same seed; NaN without one.
    """

    kind: str
    blocks: str
    n_seeds: int
    score: float
    score_ci: tuple[float, float]
    before: float
    wall_time: float
    wall_time_ci: tuple[float, float]
    cpu_time: float
    tokens_per_second: float
    peak_memory: float
    trainable_share: float
    score_pct_full: float
    time_pct_full: float


@dataclass(frozen=True)
class RunComparison:
    """The runs of :func:`compare_runs`.

    Attributes
    ----------
    runs : tuple of (str, int, FinetuneResult)
        ``(kind, seed, result)`` in the order they ran.
    model : str
        The checkpoint every run started from.
    n_blocks : int
    """

    runs: tuple[tuple[str, int, FinetuneResult], ...]
    model: str
    n_blocks: int

    def summary(self, metric: str = "exact_match", *, confidence: float = 0.95) -> list[RunSummary]:
        """Per kind: means over seeds and t-intervals of ``metric`` and wall time."""
        full = {seed: r for kind, seed, r in self.runs if kind == "full"}
        out = []
        for kind in dict.fromkeys(kind for kind, _, _ in self.runs):
            runs = [(seed, r) for k, seed, r in self.runs if k == kind]
            score = np.array([r.after.get(metric, np.nan) for _, r in runs])
            wall = np.array([r.costs.wall_time for _, r in runs])
            rel_score = [
                r.after.get(metric, np.nan) / full[s].after.get(metric, np.nan)
                if s in full and full[s].after.get(metric)
                else np.nan
                for s, r in runs
            ]
            rel_time = [
                r.costs.wall_time / full[s].costs.wall_time if s in full else np.nan
                for s, r in runs
            ]
            first = runs[0][1]
            out.append(
                RunSummary(
                    kind=kind,
                    blocks=_describe(first.blocks),
                    n_seeds=len(runs),
                    score=float(score.mean()),
                    score_ci=stats.mean_interval(score, confidence=confidence),
                    before=float(np.mean([r.before.get(metric, np.nan) for _, r in runs])),
                    wall_time=float(wall.mean()),
                    wall_time_ci=stats.mean_interval(wall, confidence=confidence),
                    cpu_time=float(np.mean([r.costs.cpu_time for _, r in runs])),
                    tokens_per_second=float(np.mean([r.tokens_per_second for _, r in runs])),
                    peak_memory=float(np.mean([r.costs.peak_memory for _, r in runs])),
                    trainable_share=first.trainable.fraction,
                    score_pct_full=100.0 * float(np.mean(rel_score)),
                    time_pct_full=100.0 * float(np.mean(rel_time)),
                )
            )
        return out

    def format_summary(self, metric: str = "exact_match") -> str:
        """:meth:`summary` as a text table."""
        head = (
            f"{'run':<12} {'blocks':<7} {metric + ' before':>18} {'after (95% CI)':>22} "
            f"{'% full':>7} {'wall s':>8} {'% full':>7} {'tok/s':>8} {'peak MiB':>9} "
            f"{'trainable':>9}"
        )
        lines = [head]
        for row in self.summary(metric):
            low, high = row.score_ci
            lines.append(
                f"{row.kind:<12} {row.blocks:<7} {row.before:>18.3f} "
                f"{row.score:>8.3f} [{low:.3f}, {high:.3f}] {row.score_pct_full:>7.1f} "
                f"{row.wall_time:>8.2f} {row.time_pct_full:>7.1f} "
                f"{row.tokens_per_second:>8.0f} {row.peak_memory / 2**20:>9.0f} "
                f"{100 * row.trainable_share:>8.2f}%"
            )
        seeds = sorted({seed for _, seed, _ in self.runs})
        lines.append(
            f"seeds {seeds}, {self.runs[0][2].steps} steps each; blocks are 0-based, "
            f"inclusive, of {self.n_blocks}; peak memory: {self.runs[0][2].costs.memory_kind}"
        )
        return "\n".join(lines)

    def to_table(self) -> ResultsTable:
        """One row per run and number (``analysis="selective-finetune"``, ``view="instruct"``).

        ``checkpoint`` is the run's kind, ``layer`` / ``layer_b`` the first and last layer its
        blocks produce (block ``i`` produces layer ``i + 1``); scores before training have
        ``statistic="before"``; notes give the seed, steps, method and the model.
        """
        table = ResultsTable()
        for kind, seed, run in self.runs:
            common = {
                "analysis": "selective-finetune",
                "checkpoint": kind,
                "view": "instruct",
                "layer": run.blocks[0] + 1,
                "layer_b": run.blocks[-1] + 1,
                "notes": f"seed={seed} steps={run.steps} method={run.method} "
                f"blocks={_describe(run.blocks)} of {self.n_blocks}; model={self.model}",
            }
            numbers = {
                "wall_time": run.costs.wall_time,
                "cpu_time": run.costs.cpu_time,
                "optimizer_time": run.optimizer_time,
                "tokens_per_second": run.tokens_per_second,
                "peak_memory": float(run.costs.peak_memory),
                "n_trainable": float(run.trainable.n_trainable),
                "trainable_share": run.trainable.fraction,
                "optimizer_state_bytes": float(run.state["optimizer_state_bytes"]),
                "final_loss": float(run.losses[-1]) if len(run.losses) else float("nan"),
                **run.after,
            }
            for measure, value in numbers.items():
                table.append(Result(measure=measure, value=float(value), **common))  # type: ignore[arg-type]
            for measure, value in run.before.items():
                table.append(
                    Result(measure=measure, value=float(value), statistic="before", **common)  # type: ignore[arg-type]
                )
        return table

    def plot(self, path: str | os.PathLike[str], metric: str = "exact_match") -> Path:
        """Draw ``metric`` after training against wall time, one point per kind with its CIs."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 4))
        for row in self.summary(metric):
            (s_low, s_high), (t_low, t_high) = row.score_ci, row.wall_time_ci
            ax.errorbar(
                row.wall_time,
                row.score,
                xerr=[[row.wall_time - t_low], [t_high - row.wall_time]],
                yerr=[[row.score - s_low], [s_high - row.score]],
                fmt="o",
                capsize=3,
                label=f"{row.kind} ({row.blocks})",
            )
        ax.set_xlabel("training wall time (s)")
        ax.set_ylabel(f"{metric} after training")
        ax.set_title(
            f"equal-step fine-tuning, 95% CI over {self.summary(metric)[0].n_seeds} seed(s)"
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return Path(path)


def compare_runs(
    model_path: str | os.PathLike[str],
    train: Sequence[Conversation],
    held_out: Sequence[Conversation],
    *,
    window: range,
    kinds: Sequence[str] = ("full", "window"),
    seeds: Sequence[int] = (0,),
    output_dir: str | os.PathLike[str],
    max_length: int | None = None,
    random_state: int = 0,
    save_final: bool = False,
    **options: Any,
) -> RunComparison:
    """Fine-tune ``model_path`` once per kind and seed with the same steps, and score every run.

    Parameters
    ----------
    model_path : str or os.PathLike
        A checkpoint folder or hub id (model + processor).
    train, held_out : sequence of Conversation
        Training and evaluation rows (:func:`~geomalign.tuning.load_instructions`).
    window : range
        The chosen window of 0-based blocks.
    kinds : sequence of str, default=("full", "window")
        Among :data:`KINDS`: ``"full"``, ``"window"`` (its weights), ``"lora-window"`` (LoRA on
        it), and ``"early"``, ``"late"``, ``"random"`` windows of the same size (weights).
    seeds : sequence of int, default=(0,)
        One run of each kind per seed (data order and LoRA initialisation).
    output_dir : str or os.PathLike
        Checkpoints of run ``kind``, seed ``s`` go under ``output_dir/<kind>-seed<s>``.
    max_length : int, default=None
        As in :class:`~geomalign.tuning.InstructionDataset`.
    random_state : int, default=0
        Seed of the ``"random"`` window.
    save_final : bool, default=False
        Save each trained model (or its LoRA adapters) with its processor under
        ``output_dir/<kind>-seed<s>/final`` (process 0 only).
    **options
        Passed to :func:`~geomalign.tuning.finetune` (``steps``, ``lr``, ``batch_size``, ...).

    Returns
    -------
    RunComparison
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {KINDS}; got {list(kinds)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one; got {list(seeds)}")
    n_blocks = count_blocks(model_path)
    references = reference_windows(
        len(window),
        n_blocks,
        kinds=[k for k in kinds if k in REFERENCE_KINDS],
        avoid=window,
        random_state=random_state,
    )
    runs = []
    for seed in seeds:
        for kind in kinds:
            model, processor = load_checkpoint(model_path)
            blocks: dict[str, range | Literal["all"]] = {
                "full": "all",
                "window": window,
                "lora-window": window,
                **references,
            }
            folder = Path(output_dir) / f"{kind}-seed{seed}"
            evaluate = None
            if held_out:
                evaluate = functools.partial(
                    evaluate_instructions,
                    rows=held_out,
                    processor=processor,
                    max_length=max_length,
                )
            result = finetune(
                model,
                InstructionDataset(train, processor, max_length=max_length),
                output_dir=folder,
                blocks=blocks[kind],
                method="lora" if kind == "lora-window" else "weights",
                evaluate=evaluate,
                pad_token_id=getattr(processor, "tokenizer", processor).pad_token_id,
                random_state=seed,
                **options,
            )
            if save_final and int(os.environ.get("RANK", "0")) == 0:
                save_model(result.model, processor, folder / "final")
            runs.append((kind, seed, result))
    return RunComparison(tuple(runs), os.fspath(model_path), n_blocks)


def _describe(blocks: Sequence[int]) -> str:
    return f"{blocks[0]}-{blocks[-1]}"

"""Statistics of one effect curve over layer windows, and its rows of the results table.

The rows are described in :mod:`geomalign.interventions.curves`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from geomalign import stats
from geomalign.analysis.table import Result, ResultsTable
from geomalign.interventions.scoring import TaskData

if TYPE_CHECKING:
    from geomalign.interventions.prompted import PromptedTask


def sign_flip_p_value(
    differences: np.ndarray, grouping: stats.Grouping, n_permutations: int, rng: np.random.Generator
) -> float:
    """Two-sided p-value that paired item differences are symmetric around zero.

    Whole groups are flipped together (:func:`geomalign.stats.sign_flip_null`); the statistic is
    the sum (equivalently the mean) of the differences, and the p-value is
    :func:`geomalign.stats.p_value` with ``alternative="two-sided"``; 1 when every difference
    is zero.
    """
    group_sums = grouping.sums(differences)
    null = stats.sign_flip_null(group_sums, n_permutations, rng)
    return stats.p_value(null, float(group_sums.sum()), alternative="two-sided")


def calibration_options(
    n_resamples: int, n_permutations: int, confidence: float, random_state: int
) -> dict[str, object]:
    """Check the bootstrap and test options of a curve; return them as keywords of `Curve`."""
    for name, value in (("n_resamples", n_resamples), ("n_permutations", n_permutations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}.")
    return {
        "n_resamples": n_resamples,
        "n_permutations": n_permutations,
        "confidence": confidence,
        "random_state": random_state,
    }


class Curve:
    """Scores of one curve and the statistics of its rows."""

    def __init__(
        self,
        task: TaskData | PromptedTask,
        windows: Sequence[range],
        scores: np.ndarray,
        reference: np.ndarray,
        *,
        n_layers: int,
        cumulative: bool,
        sign: float,
        n_resamples: int,
        n_permutations: int,
        confidence: float,
        random_state: int,
    ) -> None:
        self.task, self.windows, self.scores, self.reference = task, windows, scores, reference
        self.n_layers, self.cumulative, self.sign = n_layers, cumulative, sign
        self.confidence, self.n_permutations = confidence, n_permutations
        self.grouping = stats.Grouping.from_labels(np.asarray(task.cluster_labels(), dtype=str))
        rng = np.random.default_rng(random_state)
        self.resamples = stats.cluster_bootstrap(self.grouping.n_groups, n_resamples, rng)
        self.rng = rng

    def point(self, values: np.ndarray, differences: np.ndarray | None) -> dict[str, float | None]:
        value = float(values.mean())
        boot = stats.cluster_means(values, self.grouping, self.resamples)
        low, high = stats.interval(value, boot, confidence=self.confidence)
        p_value = None
        if differences is not None:
            p_value = sign_flip_p_value(differences, self.grouping, self.n_permutations, self.rng)
        return {"value": value, "ci_low": low, "ci_high": high, "p_value": p_value}

    def importance(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-window item importance (n_windows, n_items) and window centres in layer numbers."""
        if self.cumulative:  # increments of consecutive windows, each adding one block
            steps = self.sign * np.diff(self.scores, axis=0)
            added = [(set(w) - set(prev)).pop() for prev, w in pairwise(self.windows)]
            return steps, np.array(added, dtype=np.float64) + 1.0
        centres = np.array([(w.start + 1 + w.stop) / 2 for w in self.windows])
        return self.sign * (self.scores - self.reference), centres

    def summary(self) -> list[dict[str, object]]:
        importance, centres = self.importance()
        if importance.shape[0] < 2:
            return []
        position = (centres - 0.5) / self.n_layers
        early, late = position < 1 / 3 - 1e-9, position > 2 / 3 + 1e-9
        middle = ~early & ~late
        boot = stats.cluster_means(importance, self.grouping, self.resamples)  # (windows, B)
        peak = int(np.argmax(importance.mean(1)))
        boot_peaks = centres[np.argmax(boot, axis=0)]
        low, high = stats.interval(float(centres[peak]), boot_peaks, confidence=self.confidence)
        in_middle = float(np.mean(middle[np.argmax(boot, axis=0)]))
        rows: list[dict[str, object]] = [
            {
                "statistic": "peak_layer",
                "value": float(centres[peak]),
                "ci_low": low,
                "ci_high": high,
                "notes": f"importance {importance.mean(1)[peak]:.4g}; bootstrap peak in the "
                f"middle third of the depth in {in_middle:.3f} of resamples",
            }
        ]
        for name, other in (("early", early), ("late", late)):
            if middle.any() and other.any():
                contrast = importance[middle].mean(0) - importance[other].mean(0)
                layers = [", ".join(f"{c:g}" for c in centres[m]) for m in (middle, other)]
                rows.append(
                    {
                        "statistic": f"middle_minus_{name}",
                        **self.point(contrast, contrast),
                        "notes": f"mean importance of windows centred at layers {layers[0]} "
                        f"minus that of windows centred at layers {layers[1]}",
                    }
                )
        return rows


def curve_table(
    curve: Curve,
    references: Sequence[tuple[str, np.ndarray]],
    *,
    analysis: str,
    reference_notes: str,
    checkpoint_b: str | None = None,
    how: str,
) -> ResultsTable:
    """Rows of ``curve``: one reference row per ``(checkpoint, scores)``, windows, summary.

    The window rows are named after the first reference, the checkpoint they modify.
    """
    task = curve.task
    measure, view = f"{task.name}-{task.metric}", f"task/{task.name}"
    prompt_format = getattr(task, "prompt_format", None)
    if prompt_format:
        reference_notes = f"{reference_notes}; prompt: {prompt_format}"
    n_items = len(task)
    table = ResultsTable(
        Result(
            analysis,
            measure,
            name,
            view,
            None,
            statistic="reference",
            n_samples=n_items,
            notes=reference_notes,
            **curve.point(scores, None),  # type: ignore[arg-type]
        )
        for name, scores in references
    )
    base = {"checkpoint": references[0][0], "view": view, "checkpoint_b": checkpoint_b}
    null_mean = float(curve.reference.mean())
    calibration = (
        f"CI: {curve.resamples.shape[0]} cluster-bootstrap resamples of "
        f"{curve.grouping.n_groups} item groups; p: paired sign-flip test, "
        f"{curve.n_permutations} permutations"
    )
    for window, scores in zip(curve.windows, curve.scores, strict=True):
        differences = scores - curve.reference
        score = curve.point(scores, differences)
        effect = {**curve.point(differences, None), "p_value": score["p_value"]}
        first, last = (window.start + 1, window.stop) if len(window) else (None, None)
        where = f"blocks [{window.start}, {window.stop}) of {curve.n_layers}"
        for statistic, point, null, what in (
            ("value", score, null_mean, f"null_mean = {how}"),
            ("effect", effect, 0.0, f"value = score - ({how}), paired"),
        ):
            table.append(
                Result(
                    analysis=analysis,
                    measure=measure,
                    layer=first,
                    layer_b=last,
                    statistic=statistic,
                    null_mean=null,
                    n_samples=n_items,
                    notes=f"{where}; {what}; {calibration}",
                    **base,  # type: ignore[arg-type]
                    **point,  # type: ignore[arg-type]
                )
            )
    for summary in curve.summary():
        summary_notes = str(summary.pop("notes"))
        table.append(
            Result(
                analysis=analysis,
                measure=measure,
                layer=None,
                n_samples=n_items,
                notes=summary_notes,
                **base,  # type: ignore[arg-type]
                **summary,  # type: ignore[arg-type]
            )
        )
    return table

"""Statistics of one effect curve over windows of decoder blocks, and its typed result.

The rows are described in :mod:`geomalign.interventions.curves`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from geomalign import stats
from geomalign.analysis.effect_curves import EffectCurve, WindowEffect
from geomalign.analysis.results import Estimate
from geomalign.interventions.scoring import TaskData

if TYPE_CHECKING:
    from geomalign.interventions.prompted import PromptedTask


@dataclass(frozen=True)
class CurveCalibration:
    """The bootstrap and test options of a curve (checked on construction)."""

    n_resamples: int
    n_permutations: int
    confidence: float
    random_state: int

    def __post_init__(self) -> None:
        for name in ("n_resamples", "n_permutations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ValueError(f"confidence must lie in (0, 1); got {self.confidence!r}.")


class Curve:
    """Scores of one curve and the statistics of its rows."""

    def __init__(
        self,
        task: TaskData | PromptedTask,
        windows: Sequence[range],
        scores: np.ndarray,
        reference: np.ndarray,
        *,
        n_blocks: int,
        cumulative: bool,
        sign: float,
        calibration: CurveCalibration,
    ) -> None:
        self.task, self.windows, self.scores, self.reference = task, windows, scores, reference
        self.n_blocks, self.cumulative, self.sign = n_blocks, cumulative, sign
        self.confidence = calibration.confidence
        self.n_permutations = calibration.n_permutations
        self.grouping = stats.Grouping.from_labels(np.asarray(task.cluster_labels(), dtype=str))
        rng = np.random.default_rng(calibration.random_state)
        self.resamples = stats.cluster_bootstrap(
            self.grouping.n_groups, calibration.n_resamples, rng
        )
        self.rng = rng

    def point(
        self,
        values: np.ndarray,
        differences: np.ndarray | None,
        *,
        null_mean: float | None = None,
        notes: str = "",
    ) -> Estimate:
        """Mean of ``values`` over items, its cluster-bootstrap CI, and the sign-flip p-value
        of ``differences`` (None without them)."""
        value = float(values.mean())
        boot = stats.cluster_means(values, self.grouping, self.resamples)
        low, high = stats.interval(value, boot, confidence=self.confidence)
        p_value = n_null_draws = None
        if differences is not None:
            p_value = stats.sign_flip_p_value(
                differences, self.grouping, self.n_permutations, self.rng
            )
            n_null_draws = self.n_permutations
        return Estimate(
            value,
            ci_low=low,
            ci_high=high,
            null_mean=null_mean,
            p_value=p_value,
            n_samples=len(self.task),
            notes=notes,
            confidence=self.confidence,
            n_resamples=len(self.resamples),
            n_null_draws=n_null_draws,
        )

    def importance(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-window item importance (n_windows, n_items) and window centres in layer numbers."""
        if self.cumulative:  # increments of consecutive windows, each adding one block
            steps = self.sign * np.diff(self.scores, axis=0)
            added = [(set(w) - set(prev)).pop() for prev, w in pairwise(self.windows)]
            return steps, np.array(added, dtype=np.float64) + 1.0
        centres = np.array([(w.start + 1 + w.stop) / 2 for w in self.windows])
        return self.sign * (self.scores - self.reference), centres

    def summary(self) -> dict[str, Estimate]:
        """The summary estimates by statistic: ``peak_layer``, ``middle_minus_early``,
        ``middle_minus_late`` (those defined; none for fewer than two windows)."""
        importance, centres = self.importance()
        if importance.shape[0] < 2:
            return {}
        position = (centres - 0.5) / self.n_blocks
        early, late = position < 1 / 3 - 1e-9, position > 2 / 3 + 1e-9
        middle = ~early & ~late
        boot = stats.cluster_means(importance, self.grouping, self.resamples)  # (windows, B)
        peak = int(np.argmax(importance.mean(1)))
        boot_peaks = centres[np.argmax(boot, axis=0)]
        low, high = stats.interval(float(centres[peak]), boot_peaks, confidence=self.confidence)
        in_middle = float(np.mean(middle[np.argmax(boot, axis=0)]))
        out = {
            "peak_layer": Estimate(
                float(centres[peak]),
                ci_low=low,
                ci_high=high,
                n_samples=len(self.task),
                confidence=self.confidence,
                n_resamples=len(self.resamples),
                notes=f"importance {importance.mean(1)[peak]:.4g}; bootstrap peak in the "
                f"middle third of the depth in {in_middle:.3f} of resamples",
            )
        }
        for name, other in (("early", early), ("late", late)):
            if middle.any() and other.any():
                contrast = importance[middle].mean(0) - importance[other].mean(0)
                layers = [", ".join(f"{c:g}" for c in centres[m]) for m in (middle, other)]
                out[f"middle_minus_{name}"] = self.point(
                    contrast,
                    contrast,
                    notes=f"mean importance of windows centred at layers {layers[0]} "
                    f"minus that of windows centred at layers {layers[1]}",
                )
        return out


def effect_curve(
    curve: Curve,
    references: Sequence[tuple[str, np.ndarray]],
    *,
    analysis: str,
    reference_notes: str,
    checkpoint_b: str | None = None,
    how: str,
) -> EffectCurve:
    """The typed curve of ``curve``: one reference per ``(checkpoint, scores)``, windows, summary.

    The windows modify the first reference's checkpoint.
    """
    task = curve.task
    prompt_format = getattr(task, "prompt_format", None)
    if prompt_format:
        reference_notes = f"{reference_notes}; prompt: {prompt_format}"
    null_mean = float(curve.reference.mean())
    calibration = (
        f"CI: {curve.resamples.shape[0]} cluster-bootstrap resamples of "
        f"{curve.grouping.n_groups} item groups; p: paired sign-flip test, "
        f"{curve.n_permutations} permutations"
    )
    referenced = tuple(
        (name, curve.point(scores, None, notes=reference_notes)) for name, scores in references
    )
    windows = []
    for window, scores in zip(curve.windows, curve.scores, strict=True):
        differences = scores - curve.reference
        where = f"blocks [{window.start}, {window.stop}) of {curve.n_blocks}"
        score = curve.point(
            scores,
            differences,
            null_mean=null_mean,
            notes=f"{where}; null_mean = {how}; {calibration}",
        )
        effect = replace(
            curve.point(
                differences,
                None,
                null_mean=0.0,
                notes=f"{where}; value = score - ({how}), paired; {calibration}",
            ),
            p_value=score.p_value,
            n_null_draws=score.n_null_draws,
        )
        first, last = (window.start + 1, window.stop) if len(window) else (None, None)
        windows.append(WindowEffect(first, last, score, effect))
    summary = curve.summary()
    return EffectCurve(
        analysis=analysis,
        measure=f"{task.name}-{task.metric}",
        view=f"task/{task.name}",
        checkpoint=references[0][0],
        checkpoint_b=checkpoint_b,
        references=referenced,
        windows=tuple(windows),
        peak=summary.get("peak_layer"),
        middle_minus_early=summary.get("middle_minus_early"),
        middle_minus_late=summary.get("middle_minus_late"),
    )

"""Typed result of an intervention: an effect curve over windows of decoder blocks.

An :class:`EffectCurve` holds what one intervention curve measured: the task score of the
unmodified checkpoint(s), then per window of blocks the score under the intervention and its
paired effect (each with CI, null and p-value), then the summary of which layers matter most.
Its serialisation is rows of the :class:`~geomalign.analysis.ResultsTable` (described in
:mod:`geomalign.interventions.curves`): ``to_table()`` gives them, ``from_table(table)`` rebuilds
every curve of a table, and ``from_table(t)[i].to_table()`` returns those rows unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from geomalign.analysis.results import Estimate
from geomalign.analysis.table import Result, ResultsTable

__all__ = ["EFFECT_ANALYSES", "EffectCurve", "WindowEffect", "effects_table"]

#: Analyses whose rows are effect curves (transplantation and image-token interventions).
EFFECT_ANALYSES = (
    "transplant-cumulative",
    "transplant-reverse",
    "transplant-sliding",
    "visual-skip",
    "visual-ablate-mean",
    "visual-ablate-zero",
    "visual-knockout",
)
#: Curves whose windows grow from the first block (``[0, l)``); their x-axis is ``l``.
CUMULATIVE_ANALYSES = ("transplant-cumulative", "visual-skip")


@dataclass(frozen=True)
class WindowEffect:
    """The intervention in one window of blocks.

    Attributes
    ----------
    first_layer, last_layer : int or None
        The layers the window's blocks produce, inclusive (block ``i`` produces layer
        ``i + 1``); None for an empty window.
    score : Estimate
        Mean item score under the intervention; ``null_mean`` is the unmodified model's score,
        ``p_value`` the paired sign-flip test.
    effect : Estimate
        Mean paired change (score minus unmodified score), its CI, ``null_mean = 0`` and the same
        p-value.
    """

    first_layer: int | None
    last_layer: int | None
    score: Estimate
    effect: Estimate

    @property
    def blocks(self) -> range | None:
        """The 0-based decoder blocks of the window; None for an empty window."""
        if self.first_layer is None or self.last_layer is None:
            return None
        return range(self.first_layer - 1, self.last_layer)


@dataclass(frozen=True)
class EffectCurve:
    """An intervention's effect on a task score, per window of decoder blocks.

    Attributes
    ----------
    analysis : str
        One of :data:`EFFECT_ANALYSES`.
    measure : str
        ``"<task>-<metric>"``.
    view : str
        ``"task/<task>"``.
    checkpoint : str
        The checkpoint the windows modify.
    checkpoint_b : str or None
        Where transplanted blocks come from; None for image-token interventions.
    references : tuple of (str, Estimate)
        Score of each unmodified checkpoint (the modified one first).
    windows : tuple of WindowEffect
        In the order they ran.
    peak : Estimate or None
        Centre layer of the window of largest importance, with its bootstrap interval; None for
        fewer than two windows.
    middle_minus_early, middle_minus_late : Estimate or None
        Mean importance of the middle-third windows minus that of the first (last) third.
    """

    analysis: str
    measure: str
    view: str
    checkpoint: str
    checkpoint_b: str | None
    references: tuple[tuple[str, Estimate], ...]
    windows: tuple[WindowEffect, ...]
    peak: Estimate | None = None
    middle_minus_early: Estimate | None = None
    middle_minus_late: Estimate | None = None

    @property
    def effects(self) -> np.ndarray:
        """The effect of each window, float64."""
        return np.array([w.effect.value for w in self.windows], dtype=np.float64)

    @property
    def positions(self) -> np.ndarray:
        """One number per window naming it on a layer axis.

        Cumulative curves (``[0, l)``): ``l``, 0 for the empty window; the reverse split
        (``[s, L)``): ``s``, ``L`` for the empty window; sliding windows: the centre layer.
        """
        first = np.array([np.nan if w.first_layer is None else w.first_layer for w in self.windows])
        last = np.array([np.nan if w.last_layer is None else w.last_layer for w in self.windows])
        if self.analysis == "transplant-reverse":
            return np.nan_to_num(first - 1.0, nan=float(np.nanmax(last)))
        if self.analysis in CUMULATIVE_ANALYSES:
            return np.nan_to_num(last, nan=0.0)
        return (first + last) / 2.0

    def _summaries(self) -> list[tuple[str, Estimate]]:
        named = (
            ("peak_layer", self.peak),
            ("middle_minus_early", self.middle_minus_early),
            ("middle_minus_late", self.middle_minus_late),
        )
        return [(statistic, e) for statistic, e in named if e is not None]

    def _row(
        self,
        estimate: Estimate,
        statistic: str,
        *,
        checkpoint: str | None = None,
        window: WindowEffect | None = None,
    ) -> Result:
        """A row of this curve; a reference row names its ``checkpoint``."""
        return estimate.row(
            analysis=self.analysis,
            measure=self.measure,
            checkpoint=self.checkpoint if checkpoint is None else checkpoint,
            view=self.view,
            layer=None if window is None else window.first_layer,
            layer_b=None if window is None else window.last_layer,
            statistic=statistic,
            checkpoint_b=None if checkpoint is not None else self.checkpoint_b,
        )

    def to_table(self) -> ResultsTable:
        """The curve's rows: references, two rows per window, then the summary rows."""
        table = ResultsTable(
            self._row(e, "reference", checkpoint=name) for name, e in self.references
        )
        for w in self.windows:
            table.append(self._row(w.score, "value", window=w))
            table.append(self._row(w.effect, "effect", window=w))
        table.extend(self._row(e, statistic) for statistic, e in self._summaries())
        return table

    @classmethod
    def from_table(cls, table: ResultsTable) -> list[EffectCurve]:
        """Every effect curve in ``table`` (rows of :data:`EFFECT_ANALYSES`; others ignored)."""
        groups: dict[tuple[str, str, str, str], list[Result]] = {}
        references: dict[tuple[str, str, str, str], Estimate] = {}
        for r in table:
            if r.analysis not in EFFECT_ANALYSES:
                continue
            key = (r.analysis, r.measure, r.view, r.checkpoint)
            if r.statistic == "reference":
                references[key] = Estimate.of(r)
            else:
                groups.setdefault(key, []).append(r)
        out = []
        for (analysis, measure, view, checkpoint), rows in groups.items():
            checkpoint_b = rows[0].checkpoint_b
            names = [checkpoint] + ([checkpoint_b] if checkpoint_b is not None else [])
            scores = [r for r in rows if r.statistic == "value"]
            effects = [r for r in rows if r.statistic == "effect"]
            summary = {r.statistic: Estimate.of(r) for r in rows if r.statistic not in _WINDOW}
            out.append(
                cls(
                    analysis=analysis,
                    measure=measure,
                    view=view,
                    checkpoint=checkpoint,
                    checkpoint_b=checkpoint_b,
                    references=tuple(
                        (name, references[(analysis, measure, view, name)])
                        for name in names
                        if (analysis, measure, view, name) in references
                    ),
                    windows=tuple(
                        WindowEffect(s.layer, s.layer_b, Estimate.of(s), Estimate.of(e))
                        for s, e in zip(scores, effects, strict=True)
                    ),
                    peak=summary.get("peak_layer"),
                    middle_minus_early=summary.get("middle_minus_early"),
                    middle_minus_late=summary.get("middle_minus_late"),
                )
            )
        return out


_WINDOW = ("value", "effect")


def effects_table(curves: Iterable[EffectCurve]) -> ResultsTable:
    """The rows of several curves, one curve after the other."""
    return ResultsTable(row for curve in curves for row in curve.to_table())

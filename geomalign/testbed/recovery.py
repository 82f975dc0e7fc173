"""Where each analysis locates the change a tuning made: its reading of a results table.

Each function returns a :class:`Located`: the window of decoder blocks the analysis points to
(``blocks``), ``"input"`` when the change is already there at layer 0 (the embedding output,
which no block produces: projector or embeddings changed), or nothing. The readings:

- **cross-checkpoint curve** (base vs tuned similarity per layer, one view): a layer *changed*
  when its whole confidence interval lies below identity (``ci_high < 1 - tol``). A change made
  by blocks ``[a, b]`` reaches every later layer, so only its onset is informative: the window is
  the ``width`` blocks from the block producing the first changed layer;
- **tuning-change curve** (change of cross-modal alignment per layer): the same onset rule, a
  layer changed when its p-value after ``correction`` across the curve's layers is <= ``alpha``
  (``"auto"``, the summary's default: max-T over the curve's shared half-samples);
- **cumulative transplant curve** (tuned blocks ``[0, s)`` in the base): the score moves only
  across the blocks that differ, so the window is the ``width`` consecutive blocks with the
  largest summed absolute increments ``|e(s + 1) - e(s)|``, reported when some window's effect is
  significant after ``correction`` (``"auto"`` is Holm there: the windows' sign-flip tests are
  not drawn jointly);
- **window selection** (:func:`geomalign.tuning.select_window`, ``rule="peak"`` on the tuned
  model's ID profile, as ``geomalign finetune --window auto`` uses it): the window it selects.

:func:`iou` and :func:`recovered` turn a located window into a verdict: a planted window is
recovered when the located one overlaps it with intersection over union >= 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geomalign.analysis import families
from geomalign.analysis.table import Result, ResultsTable
from geomalign.tuning.selection import curve_from_table, select_window

__all__ = [
    "Located",
    "iou",
    "located_by_change",
    "located_by_selection",
    "located_by_similarity",
    "located_by_transplant",
    "recovered",
]


@dataclass(frozen=True)
class Located:
    """What an analysis reports about where a tuning changed the model.

    Attributes
    ----------
    blocks : range or None
        The located window of 0-based decoder blocks; None when none is reported.
    input : bool
        The change is there from layer 0 on (before any block).
    changed : bool
        The analysis reports a change at all (a window or the input).
    """

    blocks: range | None
    input: bool = False

    @property
    def changed(self) -> bool:
        """Whether the analysis reports any change."""
        return self.blocks is not None or self.input

    def __str__(self) -> str:
        if self.blocks is not None:
            return f"blocks {self.blocks.start}-{self.blocks.stop - 1}"
        return "input" if self.input else "none"


def _window(start: int, width: int, n_blocks: int) -> range:
    start = max(0, min(start, n_blocks - width))
    return range(start, start + width)


def _onset(rows: list[Result], changed: list[bool], width: int, n_blocks: int) -> Located:
    first = next((r.layer for r, c in zip(rows, changed, strict=True) if c), None)
    if first is None:
        return Located(None)
    if first == 0:
        return Located(None, input=True)
    return Located(_window(int(first) - 1, width, n_blocks))


def _curve(table: ResultsTable, **criteria: object) -> list[Result]:
    rows = [r for r in table.select(statistic="value", **criteria) if r.layer is not None]
    if not rows:
        raise ValueError(f"the table has no rows with a layer matching {criteria}.")
    return sorted(rows, key=lambda r: int(r.layer))  # type: ignore[arg-type]


def located_by_similarity(
    table: ResultsTable,
    *,
    base: str,
    tuned: str,
    view: str,
    measure: str = "cka-linear",
    width: int,
    n_blocks: int,
    tol: float = 1e-6,
) -> Located:
    """Onset of the change in the base-vs-tuned ``"cross-checkpoint"`` curve of ``view``."""
    rows = _curve(
        table, analysis="cross-checkpoint", checkpoint=base, checkpoint_b=tuned, view=view,
        measure=measure,
    )  # fmt: skip
    if any(r.ci_high is None for r in rows):
        raise ValueError("the cross-checkpoint rows have no confidence interval (n_resamples=0).")
    return _onset(rows, [r.ci_high < 1 - tol for r in rows], width, n_blocks)  # type: ignore[operator]


def _significant(rows: list[Result], alpha: float, correction: str) -> list[bool]:
    """Per row, whether its p-value after ``correction`` over ``rows`` is <= ``alpha``
    (:func:`geomalign.analysis.families.adjusted`; rows without a p-value are not)."""
    tested = [i for i, r in enumerate(rows) if r.p_value is not None and not math.isnan(r.p_value)]
    adjusted: list[float] = (
        list(families.adjusted([rows[i] for i in tested], correction)[0]) if tested else []
    )
    called = dict(zip(tested, adjusted, strict=True))
    return [i in called and bool(called[i] <= alpha) for i in range(len(rows))]


def located_by_change(
    table: ResultsTable,
    *,
    base: str,
    tuned: str,
    measure: str = "cka-linear",
    width: int,
    n_blocks: int,
    alpha: float = 0.05,
    correction: str = "auto",
) -> Located:
    """Onset of the significant layers of the ``"tuning-change"`` curve ``tuned - base``."""
    rows = _curve(
        table, analysis="tuning-change", checkpoint=tuned, checkpoint_b=base, measure=measure
    )
    return _onset(rows, _significant(rows, alpha, correction), width, n_blocks)


def located_by_transplant(
    table: ResultsTable,
    *,
    width: int,
    n_blocks: int,
    analysis: str = "transplant-cumulative",
    alpha: float = 0.05,
    correction: str = "auto",
) -> Located:
    """The window of largest summed increments of a cumulative transplant curve's effect."""
    rows = [r for r in table.select(analysis=analysis, statistic="effect") if r.layer_b is not None]
    if not rows:
        raise ValueError(f"the table has no {analysis!r} effect rows with a window.")
    effect = [0.0] * (n_blocks + 1)  # e(s): tuned blocks [0, s); e(0) = the base model itself
    for r in rows:
        effect[int(r.layer_b)] = r.value  # type: ignore[arg-type]
    if not any(_significant(rows, alpha, correction)):
        return Located(None)
    steps = [abs(effect[b + 1] - effect[b]) for b in range(n_blocks)]
    start = max(range(n_blocks - width + 1), key=lambda a: sum(steps[a : a + width]))
    return Located(range(start, start + width))


def located_by_selection(
    table: ResultsTable,
    *,
    tuned: str,
    view: str,
    measure: str,
    width: int,
) -> Located:
    """The window :func:`~geomalign.tuning.select_window` picks around the tuned ID peak."""
    layers, values = curve_from_table(table, checkpoint=tuned, view=view, measure=measure)
    try:
        window = select_window(values, layers=layers, rule="peak", width=width)
    except ValueError:  # no interior peak: no window
        return Located(None)
    return Located(window.blocks)


def iou(a: range, b: range) -> float:
    """Intersection over union of two block windows (0 when both are empty)."""
    union = len(set(a) | set(b))
    return len(set(a) & set(b)) / union if union else 0.0


def recovered(planted: range, located: Located, *, min_iou: float = 0.5) -> bool:
    """Whether ``located`` finds ``planted``: IoU >= ``min_iou`` (for an empty planted window,
    the null variant, "recovered" means no window reported)."""
    if not len(planted):
        return located.blocks is None
    return located.blocks is not None and iou(planted, located.blocks) >= min_iou

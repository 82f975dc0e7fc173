"""Choose a window of decoder blocks to fine-tune from a per-layer curve.

A curve is one number per layer: an intrinsic-dimension profile (the abstraction phase is its
peak), an image-text alignment curve, or any other per-layer measurement. Layers follow the store's
convention: layer 0 is the embedding output and layer ``l >= 1`` the output of decoder block
``l - 1``, so a window of layers ``[first, last]`` is trained through blocks ``[first - 1, last)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from geomalign._validation import check_positive_int
from geomalign.analysis.id_profile import detect_abstraction_phase
from geomalign.analysis.results import LayerCurve
from geomalign.analysis.table import ResultsTable

__all__ = ["RULES", "LayerWindow", "curve_from_table", "reference_windows", "select_window"]

#: Selection rules of :func:`select_window`.
RULES = ("peak", "phase", "threshold")
#: Kinds of window :func:`reference_windows` can build.
REFERENCE_KINDS = ("early", "late", "random")


@dataclass(frozen=True)
class LayerWindow:
    """A contiguous window of layers and how it was chosen.

    Attributes
    ----------
    first, last : int
        First and last layer of the window (inclusive), in the curve's layer numbers;
        ``first >= 1`` since the embedding output (layer 0) is not produced by a block.
    rule : str
        The rule of :func:`select_window` that chose it.
    numbers : dict of str to float
        The numbers the rule used and found (e.g. ``peak_layer``, ``peak_value``,
        ``prominence``, ``half_width``, ``level``).
    """

    first: int
    last: int
    rule: str
    numbers: dict[str, float]

    @property
    def layers(self) -> range:
        """The layers of the window, ``range(first, last + 1)``."""
        return range(self.first, self.last + 1)

    @property
    def blocks(self) -> range:
        """The 0-based decoder blocks whose outputs are the window's layers."""
        return range(self.first - 1, self.last)

    @property
    def size(self) -> int:
        """Number of layers (and of blocks) in the window."""
        return self.last - self.first + 1


def select_window(
    values: Sequence[float] | np.ndarray,
    *,
    layers: Sequence[int] | np.ndarray | None = None,
    rule: Literal["peak", "phase", "threshold"] = "peak",
    width: int = 3,
    threshold: float = 0.5,
    min_prominence: float = 0.0,
) -> LayerWindow:
    """Choose a contiguous window of layers from a per-layer curve.

    Rules:

    - ``"peak"``: ``width`` layers centred on the most prominent interior maximum of the curve
      (the abstraction-phase peak of an ID profile, see
      :func:`geomalign.analysis.detect_abstraction_phase`): the peak plus and minus
      ``(width - 1) // 2`` layers, and for an even ``width`` one more layer on the side whose
      neighbour of the peak is higher. Near either end of the curve the window is shifted, not
      cut, so that it keeps ``width`` layers whenever the curve spans that many.
    - ``"phase"``: the layers inside the peak's full width at half prominence (from its onset
      to its end, rounded inwards), i.e. the abstraction phase itself.
    - ``"threshold"``: the run of consecutive curve points around the maximum that stay at or
      above ``min + threshold * (max - min)`` (extended both ways until a point falls below);
      suits alignment curves, which rise and then plateau instead of peaking.

    The window never contains layer 0 (the embedding output, which no block produces): a
    window that would start there starts at layer 1.

    Parameters
    ----------
    values : array-like of shape (n_points,)
        The curve: one finite value per layer of ``layers``.
    layers : array-like of int of shape (n_points,), default=None
        Strictly increasing layer numbers of the points (0 = embedding output); a profile over
        a subset of layers (e.g. every fourth) gives windows in real layer numbers. None means
        ``0, 1, ..., n_points - 1``.
    rule : {"peak", "phase", "threshold"}, default="peak"
        How to choose; see above.
    width : int, default=3
        Layers in the window, for ``rule="peak"``.
    threshold : float, default=0.5
        Fraction of the curve's range above its minimum, in [0, 1], for ``rule="threshold"``.
    min_prominence : float, default=0.0
        Peaks less prominent than this (in the curve's units) are ignored by ``"peak"`` and
        ``"phase"``.

    Returns
    -------
    LayerWindow
        The window, the rule and the numbers it used; ``window.blocks`` are the decoder blocks
        to train.

    Raises
    ------
    ValueError
        If the inputs are malformed, if ``"peak"`` or ``"phase"`` finds no interior peak at
        least ``min_prominence`` high (a monotone curve: use ``"threshold"``), or if the window
        holds no block output.

    See Also
    --------
    reference_windows : early, late and random windows of the same size, for comparison.

    Examples
    --------
    >>> window = select_window([3.0, 6.0, 11.0, 14.0, 12.0, 8.0, 6.0], width=3)
    >>> (window.first, window.last, list(window.blocks))
    (2, 4, [1, 2, 3])
    """
    curve, positions = _check_curve(values, layers)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}; got {rule!r}.")
    lowest = max(int(positions[0]), 1)
    highest = int(positions[-1])
    if highest < 1:
        raise ValueError(
            f"layers must reach past layer 0 (the embedding output); got {positions.tolist()}."
        )
    if rule == "threshold":
        if isinstance(threshold, bool) or not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be a float in [0, 1]; got {threshold!r}.")
        first, last, numbers = _threshold_run(curve, positions, float(threshold))
    else:
        first, last, numbers = _around_peak(
            curve, positions, rule, width, min_prominence, lowest, highest
        )
    first = max(first, lowest)
    if last < first:
        raise ValueError(
            f"rule {rule!r} chose only layer 0, the embedding output, which no block produces "
            f"({numbers}); use another rule or a curve over more layers."
        )
    return LayerWindow(first=first, last=last, rule=rule, numbers=numbers)


def reference_windows(
    size: int,
    n_blocks: int,
    *,
    kinds: Sequence[str] = REFERENCE_KINDS,
    avoid: range | None = None,
    random_state: int = 0,
) -> dict[str, range]:
    """Windows of ``size`` consecutive blocks to compare a chosen window with.

    Parameters
    ----------
    size : int
        Blocks per window, in ``[1, n_blocks]``.
    n_blocks : int
        Decoder blocks of the model.
    kinds : sequence of {"early", "late", "random"}, default=("early", "late", "random")
        ``"early"``: the first ``size`` blocks; ``"late"``: the last ``size`` blocks;
        ``"random"``: a start drawn uniformly among those that differ from ``avoid``'s and
        from the early and late windows' (when no such start exists, among those that differ
        from ``avoid``'s; failing that, the only start).
    avoid : range, default=None
        The chosen window.
    random_state : int, default=0
        Seed of the ``"random"`` draw.

    Returns
    -------
    dict of str to range
        One window of 0-based block indices per kind, in the order of ``kinds``.

    Examples
    --------
    >>> reference_windows(2, 6, kinds=("early", "late"))
    {'early': range(0, 2), 'late': range(4, 6)}
    """
    check_positive_int(n_blocks, "n_blocks")
    check_positive_int(size, "size")
    if size > n_blocks:
        raise ValueError(f"size must be <= n_blocks ({n_blocks}); got {size}.")
    if isinstance(kinds, str):
        raise TypeError(f"kinds must be a sequence of names; got the string {kinds!r}.")
    unknown = [k for k in kinds if k not in REFERENCE_KINDS]
    if unknown:
        raise ValueError(f"kinds must be among {list(REFERENCE_KINDS)}; got {unknown}.")
    starts = {"early": 0, "late": n_blocks - size}
    if "random" in kinds:
        taken = {starts["early"], starts["late"]}
        if avoid is not None:
            taken.add(avoid.start)
        everything = range(n_blocks - size + 1)
        candidates = (
            [s for s in everything if s not in taken]
            or [s for s in everything if avoid is None or s != avoid.start]
            or [0]
        )
        rng = np.random.default_rng(random_state)
        starts["random"] = int(candidates[int(rng.integers(len(candidates)))])
    return {kind: range(starts[kind], starts[kind] + size) for kind in kinds}


def curve_from_table(
    table: ResultsTable,
    *,
    analysis: str = "id-profile",
    checkpoint: str | None = None,
    view: str | None = None,
    measure: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Take one per-layer curve out of a results table, for :func:`select_window`.

    Parameters
    ----------
    table : ResultsTable
        E.g. the ``results.csv`` of ``geomalign analyze``, loaded with
        :meth:`ResultsTable.from_csv`.
    analysis : str, default="id-profile"
        Rows of this analysis (``"id-profile"``, ``"cross-modal"``, ...); only their
        ``statistic="value"`` rows with a layer are used.
    checkpoint, view, measure : str, default=None
        Keep only rows with these values; needed when the rows hold several curves.

    Returns
    -------
    layers : numpy.ndarray of int of shape (n_points,)
        Increasing layer numbers.
    values : numpy.ndarray of shape (n_points,)
        The curve at those layers.
    """
    if not isinstance(table, ResultsTable):
        raise TypeError(f"table must be a ResultsTable; got {type(table).__name__}.")
    criteria = {"checkpoint": checkpoint, "view": view, "measure": measure}
    criteria = {key: value for key, value in criteria.items() if value is not None}
    curves = [
        curve
        for curve in LayerCurve.from_table(table.select(statistic="value"), analysis=analysis)
        if all(getattr(curve, key) == value for key, value in criteria.items())
    ]
    if not curves:
        raise ValueError(
            f"the table has no {analysis!r} rows with a layer matching {criteria}; its analyses "
            f"are {table.unique('analysis')}."
        )
    names = sorted({(c.checkpoint, c.view, c.measure) for c in curves})
    if len(names) > 1:
        raise ValueError(
            f"the {analysis!r} rows matching {criteria} hold {len(names)} curves "
            f"(checkpoint, view, measure) = {names}; choose one with checkpoint=, view=, "
            "measure=."
        )
    layers = np.array([la for c in curves for la in c.layers], dtype=np.int64)
    values = np.concatenate([c.values for c in curves])
    if np.unique(layers).size != layers.size:
        raise ValueError(
            f"the {analysis!r} curve {names[0]} has several rows per layer (a layer map?); "
            "select_window needs one value per layer."
        )
    order = np.argsort(layers)
    return layers[order], values[order]


def _check_curve(
    values: Sequence[float] | np.ndarray, layers: Sequence[int] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    curve = np.asarray(values, dtype=np.float64)
    if curve.ndim != 1 or curve.size < 2:
        raise ValueError(
            f"values must be a 1-D curve of at least 2 layers; got shape {curve.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(curve))
    positions = np.arange(curve.size) if layers is None else np.asarray(layers)
    if positions.shape != curve.shape:
        raise ValueError(
            f"layers must have one entry per value; got layers of shape {positions.shape} and "
            f"values of shape {curve.shape}."
        )
    if not np.issubdtype(positions.dtype, np.integer):
        raise TypeError(f"layers must hold integers; got dtype {positions.dtype}.")
    if positions[0] < 0 or np.any(np.diff(positions) <= 0):
        raise ValueError(
            f"layers must be strictly increasing layer numbers >= 0; got {positions.tolist()}."
        )
    if bad.size:
        raise ValueError(f"values must be finite; got NaN/Inf at layers {positions[bad].tolist()}.")
    return curve, positions.astype(np.int64)


def _around_peak(
    curve: np.ndarray,
    positions: np.ndarray,
    rule: str,
    width: int,
    min_prominence: float,
    lowest: int,
    highest: int,
) -> tuple[int, int, dict[str, float]]:
    if rule == "peak":
        check_positive_int(width, "width")
    phase = detect_abstraction_phase(positions, curve, min_prominence=min_prominence)
    if phase is None:
        raise ValueError(
            f"rule {rule!r} needs an interior peak of prominence >= {min_prominence}, and the "
            f"curve over layers {positions.tolist()} has none (monotone or flat); use "
            "rule='threshold'."
        )
    numbers = {
        "peak_layer": float(phase.peak_layer),
        "peak_value": phase.peak_value,
        "prominence": phase.prominence,
        "onset": phase.onset,
        "end": phase.end,
    }
    if rule == "phase":
        return math.ceil(phase.onset), math.floor(phase.end), numbers
    width = int(width)
    numbers["width"] = float(width)
    first = phase.peak_layer - (width - 1) // 2
    if width % 2 == 0:  # the extra layer goes to the side of the higher neighbour
        at = int(np.searchsorted(positions, phase.peak_layer))
        first -= int(curve[at - 1] > curve[at + 1])
    first = max(lowest, min(first, highest - width + 1))
    return first, min(first + width - 1, highest), numbers


def _threshold_run(
    curve: np.ndarray, positions: np.ndarray, threshold: float
) -> tuple[int, int, dict[str, float]]:
    top = int(np.argmax(curve))
    low, high = float(curve.min()), float(curve[top])
    level = low + threshold * (high - low)
    above = curve >= level
    start = top
    while start > 0 and above[start - 1]:
        start -= 1
    stop = top
    while stop < curve.size - 1 and above[stop + 1]:
        stop += 1
    numbers = {
        "threshold": threshold,
        "level": level,
        "max_layer": float(positions[top]),
        "max_value": high,
        "min_value": low,
    }
    return int(positions[start]), int(positions[stop]), numbers

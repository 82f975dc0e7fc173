"""Intrinsic dimension over layers, and detection of the abstraction phase (the ID peak)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.signal import find_peaks, peak_widths

from geomalign._progress import ticking
from geomalign.analysis._views import (
    Rows,
    StoreLike,
    View,
    as_view,
    join_notes,
    open_store,
    select_layers,
)
from geomalign.analysis.evaluation import (
    Calibration,
    evaluate,
    log_undefined,
    resolve_measures,
)
from geomalign.analysis.results import AbstractionPhase, IDProfile, LayerCurve
from geomalign.analysis.table import Result, ResultsTable
from geomalign.metrics import Measure

__all__ = ["abstraction_phase", "detect_abstraction_phase", "id_profile"]


def detect_abstraction_phase(
    layers: Sequence[int] | np.ndarray,
    dimensions: Sequence[float] | np.ndarray,
    *,
    min_prominence: float = 0.0,
) -> AbstractionPhase | None:
    """Find the abstraction phase in an intrinsic-dimension profile.

    NaN dimensions (layers where the estimate is undefined, e.g. all rows identical) are left
    out: the rule below runs on the other layers.

    Rule: among the interior local maxima of the profile (a first or last layer is never a peak),
    take the one with the largest prominence (its height above the higher of the two minima that
    separate it from higher ground on either side). Its onset and end are where the profile,
    linearly interpolated between layers, crosses ``peak - prominence / 2`` (full width at half
    prominence). Layer positions are interpolated on the real layer numbers, so profiles over a
    subset of layers (e.g. every fourth) give onsets in real layer units.

    Parameters
    ----------
    layers : sequence of int
        Increasing real layer numbers (0 = embedding output).
    dimensions : sequence of float
        Intrinsic dimension at each layer; NaN where undefined.
    min_prominence : float, default=0.0
        Peaks less prominent than this (in ID units) are ignored.

    Returns
    -------
    AbstractionPhase or None
        None when the profile has no interior peak at least ``min_prominence`` high (monotone or
        flat profiles, fewer than 3 layers with a defined dimension).

    References
    ----------
    Cheng et al. (2025), "Emergence of a high-dimensional abstraction phase in language
    transformers", ICLR.

    Examples
    --------
    >>> detect_abstraction_phase([0, 1, 2, 3, 4], [5.0, 9.0, 14.0, 9.0, 5.0]).peak_layer
    2
    """
    layer_arr = np.asarray(layers, dtype=np.float64)
    d = np.asarray(dimensions, dtype=np.float64)
    if layer_arr.ndim != 1 or d.shape != layer_arr.shape:
        raise ValueError(
            f"layers and dimensions must be 1-D of the same length; got shapes {layer_arr.shape} "
            f"and {d.shape}."
        )
    if np.any(np.diff(layer_arr) <= 0):
        raise ValueError(f"layers must be strictly increasing; got {list(layers)}.")
    if np.isinf(d).any():
        bad = [int(layer) for layer, v in zip(layer_arr, d, strict=True) if np.isinf(v)]
        raise ValueError(f"dimensions must be finite or NaN (undefined); got Inf at layers {bad}.")
    if min_prominence < 0:
        raise ValueError(f"min_prominence must be >= 0; got {min_prominence}.")
    defined = ~np.isnan(d)
    layer_arr, d = layer_arr[defined], d[defined]
    if d.size < 3:
        return None
    peaks, props = find_peaks(d, prominence=min_prominence)
    if peaks.size == 0:
        return None
    k = int(np.argmax(props["prominences"]))
    prominence_data = tuple(
        props[key][k : k + 1] for key in ("prominences", "left_bases", "right_bases")
    )
    _, _, left, right = peak_widths(
        d, peaks[k : k + 1], rel_height=0.5, prominence_data=prominence_data
    )
    positions = np.arange(d.size)
    onset = float(np.interp(left[0], positions, layer_arr))
    end = float(np.interp(right[0], positions, layer_arr))
    return AbstractionPhase(
        peak_layer=int(layer_arr[peaks[k]]),
        peak_value=float(d[peaks[k]]),
        prominence=float(props["prominences"][k]),
        onset=onset,
        end=end,
        width=end - onset,
    )


def id_profile(
    store: StoreLike,
    view: View | tuple[str, str, str],
    *,
    measure: str | Measure = "id-gride",
    layers: Sequence[int] | None = None,
    calibration: Calibration | None = None,
) -> ResultsTable:
    """Intrinsic dimension of one view at every layer.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    view : View or (checkpoint, modality, pooling)
        A pooled, complete view.
    measure : str, default="id-gride"
        A one-view (dimension) registry measure.
    layers : sequence of int, default=None
        Real layer numbers (0 = embedding output); all stored layers when None.
    calibration : Calibration, default=None
        ``n_resamples`` sets the bootstrap CI; ``max_samples``/``random_state`` the rows read.

    Returns
    -------
    ResultsTable
        ``analysis="id-profile"`` rows, one per layer, with ``kind="dimension"``. A layer whose
        dimension is undefined (all rows identical, e.g. layer 0 of a ``last``-token view, or
        fewer distinct rows than the estimator's neighbours) has value NaN and a note saying
        why, and is logged; other errors propagate.
    """
    calibration = calibration or Calibration()
    store = open_store(store)
    view = as_view(view, "view")
    layers = select_layers(store, [view], layers)
    (resolved,) = resolve_measures(measure, n_views=1, purpose="intrinsic-dimension profile")
    rows = Rows(store, calibration.max_samples, calibration.random_state)
    table = ResultsTable()
    for layer in ticking(layers):
        names = (f"{view} layer {layer}",)
        point = evaluate(resolved, rows.read(view, layer), None, calibration, names=names)
        table.append(
            Result(
                analysis="id-profile",
                measure=resolved.name,
                checkpoint=view.checkpoint,
                view=view.label,
                layer=layer,
                value=point.value,
                kind=resolved.kind,
                ci_low=point.ci_low,
                ci_high=point.ci_high,
                n_samples=rows.n,
                notes=join_notes(point.notes, rows.note),
                confidence=point.confidence,
                n_resamples=point.n_resamples,
                undefined_reason=point.undefined_reason,
                n_subsample=rows.subsample,
            )
        )
    log_undefined(table, str(view))
    return table


def abstraction_phase(profiles: ResultsTable, *, min_prominence: float = 0.0) -> ResultsTable:
    """Detect the abstraction phase of every ID profile in a table.

    Parameters
    ----------
    profiles : ResultsTable
        Holds ``analysis="id-profile"`` rows (from :func:`id_profile`), possibly of several
        checkpoints, views and measures; other rows are ignored.
    min_prominence : float, default=0.0
        See :func:`detect_abstraction_phase`.

    Returns
    -------
    ResultsTable
        For each (measure, checkpoint, view): ``analysis="abstraction-phase"`` rows with
        ``statistic`` one of ``peak_layer``, ``peak_value``, ``prominence``, ``onset``, ``end``,
        ``width`` (``layer`` = the peak layer), or a single ``statistic="peak_layer"`` row with
        value NaN and a note when the profile has no interior peak. Layers whose ID is NaN
        (undefined) are left out, and the notes list them. When the profile carries
        CIs and the peak's prominence is smaller than the half-width of the CI at the peak, the
        notes say the peak may be noise.
    """
    curves = LayerCurve.from_table(profiles, analysis="id-profile")
    if not curves:
        raise ValueError("abstraction_phase: the table holds no 'id-profile' rows.")
    table = ResultsTable()
    for curve in curves:
        table.extend(detect_phase(curve, min_prominence=min_prominence).phase_table())
    return table


def detect_phase(profile: LayerCurve, *, min_prominence: float = 0.0) -> IDProfile:
    """The abstraction phase of one ID profile, with the notes its table rows carry."""
    order = np.argsort(profile.layers, kind="stable")
    profile = replace(
        profile,
        layers=tuple(profile.layers[i] for i in order),
        estimates=tuple(profile.estimates[i] for i in order),
    )
    values = profile.values
    phase = detect_abstraction_phase(profile.layers, values, min_prominence=min_prominence)
    layers = [la for la, v in zip(profile.layers, values, strict=True) if not math.isnan(v)]
    skipped = [la for la, v in zip(profile.layers, values, strict=True) if math.isnan(v)]
    rule = "most prominent interior ID peak; onset/end at half prominence"
    if skipped:
        rule += f"; ID undefined at layers {skipped}, left out"
    if phase is None:
        return IDProfile(profile, None, f"no interior peak over layers {layers}; {rule}")
    found = IDProfile(profile, phase)
    if found.may_be_noise:
        peak, base = profile.at(phase.peak_layer), profile.at(found.base_layer or 0)
        rule += (
            f"; may be noise: the CI at the peak (from {peak.ci_low:.3g}) overlaps the CI at "
            f"its base, layer {found.base_layer} (to {base.ci_high:.3g})"
        )
    return IDProfile(profile, phase, rule)

"""Alignment curves over layers: image vs caption, base vs tuned, and the change with tuning."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

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
    paired_difference,
    resolve_measures,
)
from geomalign.analysis.families import family_max_t, max_t_note
from geomalign.analysis.results import Estimate
from geomalign.analysis.table import Result, ResultsTable
from geomalign.metrics import Measure
from geomalign.store import ActivationStore

__all__ = [
    "compare_views",
    "cross_checkpoint_curve",
    "cross_modal_curve",
    "default_pooling",
    "tuning_change_curve",
]

# Poolings tried, in this order, when a pooling is not named.
_POOLING_PREFERENCE = ("mean", "last")


def default_pooling(store: StoreLike, checkpoint: str, modality: str) -> str:
    """The pooled view a curve uses for ``modality`` when no pooling is named.

    ``"mean"`` if the checkpoint stores it for that modality, else ``"last"``, else the
    alphabetically first pooled (one row per sample) view.
    """
    store = open_store(store)
    pooled = sorted(
        p
        for c, m, p in store.views()
        if c == checkpoint and m == modality and not store.view_info(c, m, p).tokens
    )
    if not pooled:
        stored = ", ".join(str(View(*v)) for v in store.views()) or "none"
        raise ValueError(
            f"{store.path}: checkpoint {checkpoint!r} has no pooled {modality!r} view; "
            f"stored views: {stored}."
        )
    for name in _POOLING_PREFERENCE:
        if name in pooled:
            return name
    return pooled[0]


def side_view(store: ActivationStore, checkpoint: str, side: tuple[str, str | None]) -> View:
    """The view of ``checkpoint`` a ``(modality, pooling)`` option names (None: default pooling)."""
    modality, pooling = side
    return View(checkpoint, modality, pooling or default_pooling(store, checkpoint, modality))


def _curve_row(
    analysis: str,
    measure: Measure,
    layer: int,
    point: Estimate,
    *,
    a: tuple[str, str],
    b: tuple[str, str],
    n_samples: int,
    notes: str,
    n_subsample: int | None,
) -> Result:
    """A curve's row at ``layer``; ``a`` and ``b`` are the (checkpoint, view) of the two sides."""
    row = replace(point, n_samples=n_samples, notes=notes, n_subsample=n_subsample)
    return row.row(
        analysis=analysis,
        measure=measure.name,
        checkpoint=a[0],
        view=a[1],
        layer=layer,
        checkpoint_b=b[0],
        view_b=b[1],
        layer_b=layer,
        kind=measure.kind,
    )


def _stream_pairs(
    store: ActivationStore, a: View, b: View, layer: int, working_memory: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Matching row blocks of one layer of two views, all rows, bounded memory."""
    dims = sum(store.view_info(v.checkpoint, v.modality, v.pooling).dim for v in (a, b))
    block_rows = max(1, int(working_memory * (1 << 20)) // (4 * dims))
    blocks_a = store.iter_blocks(a.checkpoint, a.modality, a.pooling, layer, block_rows=block_rows)
    blocks_b = store.iter_blocks(b.checkpoint, b.modality, b.pooling, layer, block_rows=block_rows)
    for (_, xa), (_, xb) in zip(blocks_a, blocks_b, strict=True):
        yield xa, xb


def compare_views(
    store: StoreLike,
    view_a: View | tuple[str, str, str],
    view_b: View | tuple[str, str, str],
    *,
    measures: Sequence[str | Measure] | str | Measure,
    layers: Sequence[int] | None = None,
    analysis: str = "compare",
    calibration: Calibration | None = None,
) -> ResultsTable:
    """Each measure between ``view_a`` and ``view_b`` at the same layer, for every layer.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    view_a, view_b : View or (checkpoint, modality, pooling)
        Two pooled, complete views of the same samples (widths may differ).
    measures : str or sequence of str
        Two-view registry measures (similarities or distances), e.g. ``"cka-linear"``.
    layers : sequence of int, default=None
        Real layer numbers (0 = embedding output); all layers both views store when None.
    analysis : str, default="compare"
        The ``analysis`` column of the rows.
    calibration : Calibration, default=None
        Null, CI and subsampling settings; ``Calibration()`` when None.

    Returns
    -------
    ResultsTable
        One row per (layer, measure): ``checkpoint/view/layer`` describe ``view_a``,
        ``checkpoint_b/view_b/layer_b`` describe ``view_b``. Where the measure raises because a
        view's rows are all identical at that layer (CKA of a constant layer), the value is NaN
        with a note and the layer is logged; other errors propagate.

    Notes
    -----
    ``cka-linear`` and ``cka-linear-debiased`` values are exact over every stored row even when
    the store holds more than ``calibration.max_samples`` rows (the cross-covariances are
    accumulated over row blocks by :class:`~geomalign.metrics.StreamingLinearCKA`); the other
    measures, and every CI and null, use the seeded subsample the row's notes name.
    """
    calibration = calibration or Calibration()
    store = open_store(store)
    view_a, view_b = as_view(view_a, "view_a"), as_view(view_b, "view_b")
    layers = select_layers(store, [view_a, view_b], layers)
    resolved = resolve_measures(measures, n_views=2, purpose=f"{analysis} curve")
    rows = Rows(store, calibration.max_samples, calibration.random_state)
    out: list[Result] = []
    nulls: dict[str, list[tuple[int, float, np.ndarray]]] = {m.name: [] for m in resolved}
    for layer in ticking(layers):
        X, Y = rows.read(view_a, layer), rows.read(view_b, layer)
        for measure in resolved:
            names = (f"{view_a} layer {layer}", f"{view_b} layer {layer}")
            drawn: list[np.ndarray] = []
            point = evaluate(measure, X, Y, calibration, names=names, nulls=drawn)
            if drawn:
                nulls[measure.name].append((len(out), point.value, drawn[0]))
            n_used, notes = rows.n, join_notes(point.notes, rows.note)
            if rows.subsampled and measure.stream is not None and np.isfinite(point.value):
                acc = measure.stream()
                for xa, xb in _stream_pairs(
                    store, view_a, view_b, layer, calibration.working_memory
                ):
                    acc.update(xa, xb)
                point = replace(point, value=acc.value())
                n_used = rows.n_total
                notes = join_notes(
                    f"value exact over all {rows.n_total} rows (streamed)",
                    f"{point.notes} on the {rows.note}" if point.notes else "",
                )
            out.append(
                _curve_row(
                    analysis,
                    measure,
                    layer,
                    point,
                    a=(view_a.checkpoint, view_a.label),
                    b=(view_b.checkpoint, view_b.label),
                    n_samples=n_used,
                    notes=notes,
                    n_subsample=rows.subsample,
                )
            )
    for measure in resolved:
        alternative = "less" if measure.kind == "distance" else "greater"
        _note_max_t(out, nulls[measure.name], alternative)
    table = ResultsTable(out)
    log_undefined(table, f"{view_a} vs {view_b}")
    return table


def _note_max_t(rows: list[Result], drawn: list[tuple[int, float, np.ndarray]],
                alternative: str, *, standardise: bool = True) -> None:  # fmt: skip
    """Set each layer's max-T p-value over the curve's layers (``max_t_p_value``, and in notes).

    ``drawn`` holds (row index, statistic, null draws) per layer, the draws made with the same
    permutations or half-samples at every layer (:func:`~geomalign.analysis.evaluation.evaluate`,
    :func:`~geomalign.analysis.evaluation.paired_difference`), standardised by each layer's
    draws or not (:func:`~geomalign.analysis.families.family_max_t`). The family-wise p-value,
    and at the peak layer the p-value adjusted for choosing the peak among the layers.
    """
    adjusted = family_max_t([v for _, v, _ in drawn], [d for _, _, d in drawn],
                            alternative=alternative, standardise=standardise)  # fmt: skip
    if adjusted is None:
        return
    for (i, _, _), p in zip(drawn, adjusted, strict=True):
        rows[i] = replace(
            rows[i],
            notes=join_notes(rows[i].notes, max_t_note(p, len(drawn))),
            max_t_p_value=float(p),
        )


def cross_modal_curve(
    store: StoreLike,
    checkpoint: str,
    *,
    measures: Sequence[str | Measure] | str | Measure,
    image: tuple[str, str | None] = ("image", None),
    text: tuple[str, str | None] = ("text", None),
    layers: Sequence[int] | None = None,
    calibration: Calibration | None = None,
) -> ResultsTable:
    """Per layer, each measure between the image view and the caption view of one checkpoint.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    checkpoint : str
        The checkpoint.
    measures : str or sequence of str
        Two-view registry measures.
    image, text : (modality, pooling), default=("image", None) and ("text", None)
        The two views; a None pooling picks :func:`default_pooling`.
    layers : sequence of int, default=None
        Layers to compare (all shared layers when None).
    calibration : Calibration, default=None
        Null, CI and subsampling settings.

    Returns
    -------
    ResultsTable
        Rows with ``analysis="cross-modal"`` (see :func:`compare_views`).
    """
    store = open_store(store)
    return compare_views(
        store,
        side_view(store, checkpoint, image),
        side_view(store, checkpoint, text),
        measures=measures,
        layers=layers,
        analysis="cross-modal",
        calibration=calibration,
    )


def cross_checkpoint_curve(
    store: StoreLike,
    modality: str,
    *,
    base: str,
    tuned: str,
    measures: Sequence[str | Measure] | str | Measure,
    pooling: str | None = None,
    layers: Sequence[int] | None = None,
    calibration: Calibration | None = None,
) -> ResultsTable:
    """Per layer, each measure between two checkpoints' views of one modality.

    A similarity near 1 (distance near 0) means tuning left that layer's geometry in place.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    modality : str
        E.g. ``"image"`` or ``"text"``.
    base, tuned : str
        The two checkpoints; rows carry ``checkpoint=base``, ``checkpoint_b=tuned``.
    measures : str or sequence of str
        Two-view registry measures.
    pooling : str, default=None
        The pooling of both views; :func:`default_pooling` of ``base`` when None.
    layers : sequence of int, default=None
        Layers to compare (all shared layers when None).
    calibration : Calibration, default=None
        Null, CI and subsampling settings.

    Returns
    -------
    ResultsTable
        Rows with ``analysis="cross-checkpoint"``.
    """
    store = open_store(store)
    pooling = pooling or default_pooling(store, base, modality)
    return compare_views(
        store,
        View(base, modality, pooling),
        View(tuned, modality, pooling),
        measures=measures,
        layers=layers,
        analysis="cross-checkpoint",
        calibration=calibration,
    )


def tuning_change_curve(
    store: StoreLike,
    *,
    base: str,
    tuned: str,
    measures: Sequence[str | Measure] | str | Measure,
    image: tuple[str, str | None] = ("image", None),
    text: tuple[str, str | None] = ("text", None),
    layers: Sequence[int] | None = None,
    calibration: Calibration | None = None,
) -> ResultsTable:
    """Per layer, how much tuning changed cross-modal alignment, with a paired resampling test.

    ``value = m(tuned image, tuned text) - m(base image, base text)`` at each layer. The CI and
    p-value come from resampling the samples shared by both checkpoints (the same rows enter
    both terms), so sample-to-sample variation common to both cancels; see
    :func:`~geomalign.analysis.evaluation.paired_difference` for the half-sampling rule.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    base, tuned : str
        The two checkpoints.
    measures : str or sequence of str
        Two-view registry measures.
    image, text : (modality, pooling)
        The two views of each checkpoint; a None pooling picks :func:`default_pooling`.
    layers : sequence of int, default=None
        Layers (all layers the four views share when None).
    calibration : Calibration, default=None
        ``n_resamples`` sets the resamples (0 gives the differences without CI or p-value).

    Returns
    -------
    ResultsTable
        Rows with ``analysis="tuning-change"``, ``checkpoint=tuned``, ``checkpoint_b=base``,
        ``view``/``view_b`` = image/text view, ``p_value`` two-sided (difference = 0). With
        two or more layers, each row's notes also give its max-T p-value over the curve's
        layers (``max-T p=... over m layers``): the half-samples are the same rows at every
        layer, and the largest absolute centred resampled difference over the layers is the
        null of each layer's absolute difference (family-wise; no lower than
        ``1 / (n_resamples + 1)`` whatever the number of layers).
    """
    calibration = calibration or Calibration()
    store = open_store(store)
    # both checkpoints are read with the poolings resolved for the base
    sides = {"x": side_view(store, base, image), "y": side_view(store, base, text)}
    views = {
        (ckpt, side): replace(view, checkpoint=ckpt)
        for ckpt in (base, tuned)
        for side, view in sides.items()
    }
    layers = select_layers(store, list(views.values()), layers)
    resolved = resolve_measures(measures, n_views=2, purpose="tuning-change curve")
    rows = Rows(store, calibration.max_samples, calibration.random_state)
    out: list[Result] = []
    # each layer's centred half-sample differences, drawn from the same rows at every layer
    drawn: dict[str, list[tuple[int, float, np.ndarray]]] = {m.name: [] for m in resolved}
    keys = ((tuned, "x"), (tuned, "y"), (base, "x"), (base, "y"))
    for layer in ticking(layers):
        data = {key: rows.read(view, layer) for key, view in views.items()}
        for measure in resolved:
            differences: list[np.ndarray] = []
            point = paired_difference(
                measure,
                (data[tuned, "x"], data[tuned, "y"]),
                (data[base, "x"], data[base, "y"]),
                calibration,
                names=tuple(f"{views[key]} layer {layer}" for key in keys),
                draws=differences,
            )
            if differences:
                drawn[measure.name].append((len(out), point.value, differences[0]))
            out.append(
                _curve_row(
                    "tuning-change",
                    measure,
                    layer,
                    point,
                    a=(tuned, views[tuned, "x"].label),
                    b=(base, views[tuned, "y"].label),
                    n_samples=rows.n,
                    n_subsample=rows.subsample,
                    notes=join_notes(
                        f"{measure.name}({tuned}) - {measure.name}({base})",
                        point.notes,
                        rows.note,
                    ),
                )
            )
    for measure in resolved:
        _note_max_t(out, drawn[measure.name], "two-sided", standardise=False)
    table = ResultsTable(out)
    log_undefined(table, f"{tuned} - {base}")
    return table

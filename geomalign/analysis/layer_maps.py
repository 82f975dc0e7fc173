"""Layer x layer maps between two views, and each layer's best-matching layer in the other view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from geomalign import metrics, stats
from geomalign.analysis._map_null import linear_cka_on_resamples, linear_cka_under_permutations
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
    UNDEFINED_NOTE,
    Calibration,
    attempt,
    better,
    identical_rows,
    log_undefined,
    resolve_measures,
    warnings_to_notes,
)
from geomalign.analysis.families import family_max_t, max_t_note
from geomalign.analysis.results import LayerMap
from geomalign.analysis.table import Result, ResultsTable
from geomalign.metrics import Measure

__all__ = ["layer_map", "map_matrix", "map_of"]


def _is_biased_linear_cka(measure: Measure) -> bool:
    func = getattr(measure.func, "__wrapped__", measure.func)  # through a timing decorator
    params = {k: v for k, v in measure.params.items() if k != "device"}
    return func is metrics.cka and params == {"kernel": "linear", "debiased": False}


def _matrix(measure: Measure, Xs: list[np.ndarray], Ys: list[np.ndarray]) -> np.ndarray:
    if measure.matrix is not None:  # e.g. linear CKA: each layer's self-term computed once
        return np.asarray(measure.matrix(Xs, Ys), dtype=np.float64)
    return np.array([[float(measure(X, Y)) for Y in Ys] for X in Xs], dtype=np.float64)


def _observe(
    measure: Measure,
    Xs: list[np.ndarray],
    Ys: list[np.ndarray],
    names_a: list[str],
    names_b: list[str],
) -> tuple[np.ndarray, list[int], list[int], dict[str, str]]:
    """The map over the layers it is defined on: (values, kept rows, kept columns, left out).

    When the measure is undefined on the full map because some layers have all rows identical,
    those layers are left out (name -> why); when it is undefined for another reason (too few
    rows), every layer is; every other error propagates.
    """
    observed, why = attempt(lambda: _matrix(measure, Xs, Ys), [*Xs, *Ys], [*names_a, *names_b])
    if observed is not None:
        return observed, list(range(len(Xs))), list(range(len(Ys))), {}
    left_out = {
        name: reason
        for V, name in zip([*Xs, *Ys], [*names_a, *names_b], strict=True)
        if (reason := identical_rows(V, name))
    }
    if not left_out:  # not one layer's doing (e.g. fewer rows than a k-NN measure's k): all
        left_out = dict.fromkeys([*names_a, *names_b], str(why))
    keep_a = [i for i, name in enumerate(names_a) if name not in left_out]
    keep_b = [j for j, name in enumerate(names_b) if name not in left_out]
    if not (keep_a and keep_b):
        return np.empty((0, 0)), [], [], left_out
    kept = _matrix(measure, [Xs[i] for i in keep_a], [Ys[j] for j in keep_b])
    return kept, keep_a, keep_b, left_out


def layer_map(
    store: StoreLike,
    view_a: View | tuple[str, str, str],
    view_b: View | tuple[str, str, str],
    *,
    measure: str | Measure = "cka-linear",
    layers_a: Sequence[int] | None = None,
    layers_b: Sequence[int] | None = None,
    calibration: Calibration | None = None,
) -> ResultsTable:
    """The measure between every layer of ``view_a`` and every layer of ``view_b``.

    For each layer of ``view_a`` the best-matching layer of ``view_b`` (highest similarity, or
    lowest distance) is reported with a p-value that accounts for the choice of the best of
    ``len(layers_b)`` layers: under the null the rows of ``view_b`` are permuted (one permutation
    shared by all its layers), the whole map is recomputed and the best score per ``view_a`` layer
    kept (:func:`geomalign.stats.max_null`); ``p = (1 + #{null best at least as good as the
    observed best}) / (1 + n_permutations)`` (:func:`geomalign.stats.p_value`).
    Comparing the observed maximum with per-cell nulls instead would overstate significance.
    The same permutations serve every ``view_a`` layer, so the best matches also get a max-T
    p-value over the ``view_a`` layers (``max_t_p_value``, and in the notes; each
    layer's best score standardised by its null, :mod:`geomalign.analysis.families`): the
    family-wise p-value for calling several layers' best matches better than chance.

    That p-value says whether the best match beats chance, not whether it beats the runner-up.
    For the latter, each best match also gets a stability: the share of ``n_resamples``
    half-samples (``n // 2`` rows drawn without replacement, shared by all layers) in which the
    same ``view_b`` layer is the best one.

    Parameters
    ----------
    store : ActivationStore or path
        The activation store.
    view_a, view_b : View or (checkpoint, modality, pooling)
        Two pooled, complete views of the same samples, e.g. image and caption views.
    measure : str, default="cka-linear"
        A two-view registry measure.
    layers_a, layers_b : sequence of int, default=None
        Real layer numbers (0 = embedding output); all stored layers when None.
    calibration : Calibration, default=None
        ``n_permutations`` sets the max-over-layers null and ``n_resamples`` the stability (0
        skips either); ``max_samples`` and ``random_state`` the rows read.

    Returns
    -------
    ResultsTable
        ``analysis="layer-map"`` rows, one per (layer, layer_b) cell, then
        ``analysis="best-match"`` rows, one per layer of ``view_a`` with ``layer_b`` its best match,
        ``null_mean``/``null_std`` the null of the best score and ``p_value`` as above, each
        followed (when ``n_resamples > 0``) by a ``statistic="stability"`` row.

    Notes
    -----
    Costs ``(1 + n_permutations + n_resamples) * len(layers_a) * len(layers_b)`` measure
    evaluations on up to ``max_samples`` rows, with every layer of both views in memory; linear
    CKA maps compute each layer's self-term once per map (:func:`geomalign.metrics.cka_matrix`).
    When the measure raises because some layers have all rows identical, those layers are left
    out: their cells and best matches are NaN with a note, and the others' best matches are
    chosen among the remaining layers.
    """
    calibration = calibration or Calibration()
    store = open_store(store)
    view_a, view_b = as_view(view_a, "view_a"), as_view(view_b, "view_b")
    layers_a = select_layers(store, [view_a], layers_a, "layers_a")
    layers_b = select_layers(store, [view_b], layers_b, "layers_b")
    (resolved,) = resolve_measures(measure, n_views=2, purpose="layer map")
    sign = better(resolved.kind)
    device = resolved.params.get("device")  # a measure bound to a device (metrics.on_device)
    rows = Rows(store, calibration.max_samples, calibration.random_state)
    Xs = [rows.read(view_a, layer) for layer in layers_a]
    Ys = [rows.read(view_b, layer) for layer in layers_b]
    names_a = [f"{view_a} layer {layer}" for layer in layers_a]
    names_b = [f"{view_b} layer {layer}" for layer in layers_b]
    alternative = "greater" if sign > 0 else "less"
    # A measure that ignores the pairing of rows (OT between the two clouds) has no such null.
    n_permutations = calibration.n_permutations if resolved.paired else 0
    rng = np.random.default_rng(calibration.random_state)
    warned: list[str] = []
    with warnings_to_notes(warned):
        observed, keep_a, keep_b, left_out = _observe(resolved, Xs, Ys, names_a, names_b)
        # from here on, only the layers the map is defined on
        Xs, Ys = [Xs[i] for i in keep_a], [Ys[j] for j in keep_b]
        if not keep_a:
            n_permutations = 0
        # the null of each view_a layer's best score: one permutation of view_b's rows shared by
        # all its layers, the best over them kept (max-over-layers)
        perms = [rng.permutation(rows.n) for _ in range(n_permutations)]
        if perms and _is_biased_linear_cka(resolved):  # each layer's Gram matrix computed once
            shuffled = linear_cka_under_permutations(Xs, Ys, perms, device=device)
        else:
            shuffled = np.array([_matrix(resolved, Xs, [Y[perm] for Y in Ys]) for perm in perms])
        null = (
            stats.max_null(shuffled, alternative=alternative, axis=2)
            if perms
            else np.zeros((0, len(keep_a)))
        )
        best_j = np.argmax(sign * observed, axis=1) if keep_a else np.zeros(0, dtype=int)
        n_halves = calibration.n_resamples if keep_a else 0

        def stability() -> np.ndarray:
            halves = list(stats.resample_indices(rows.n, n_halves, scheme="half-sampling", rng=rng))
            maps: np.ndarray | list[np.ndarray] | None = None
            if halves and _is_biased_linear_cka(resolved):  # gathered from full Gram matrices
                maps = linear_cka_on_resamples(Xs, Ys, halves, device=device)
            if maps is None:
                maps = [_matrix(resolved, [X[idx] for X in Xs], [Y[idx] for Y in Ys])
                        for idx in halves]  # fmt: skip
            return (
                np.array(
                    [np.argmax(sign * half, axis=1) == best_j for half in maps], dtype=np.float64
                )
                .reshape(len(halves), len(keep_a))
                .sum(axis=0)
            )

        same_best, unstable = attempt(
            stability,
            [*Xs, *Ys],
            [*(names_a[i] for i in keep_a), *(names_b[j] for j in keep_b)],
            resamples=True,
        )
    best = observed[np.arange(len(keep_a)), best_j]
    # the same permutations at every view_a layer: their best scores' nulls are a joint null
    max_t = (
        family_max_t(list(best), list(null.T), alternative=alternative) if n_permutations else None
    )
    row_of, column_of = {i: k for k, i in enumerate(keep_a)}, {j: k for k, j in enumerate(keep_b)}

    def undefined(*names: str) -> str:
        """Why the views ``names`` are undefined (each reason once), or ``""``."""
        return "; ".join(dict.fromkeys(left_out[n] for n in names if n in left_out))

    def undefined_note(why: str) -> str:
        return f"{UNDEFINED_NOTE}: {why}" if why else ""

    common: dict[str, Any] = dict(
        measure=resolved.name,
        checkpoint=view_a.checkpoint,
        view=view_a.label,
        checkpoint_b=view_b.checkpoint,
        view_b=view_b.label,
        kind=resolved.kind,
        n_samples=rows.n,
        n_subsample=rows.subsample,
    )
    table = ResultsTable()
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            defined = i in row_of and j in column_of
            why = undefined(names_a[i], names_b[j])
            notes = join_notes(
                *(undefined_note(undefined(n)) for n in (names_a[i], names_b[j])),
                *warned,
                rows.note,
            )
            table.append(
                Result(
                    analysis="layer-map",
                    layer=la,
                    layer_b=lb,
                    value=observed[row_of[i], column_of[j]] if defined else np.nan,
                    notes=notes,
                    undefined_reason=why,
                    **common,
                )
            )
    skipped_b = [lb for j, lb in enumerate(layers_b) if j not in column_of]
    matches = ResultsTable()
    for i, la in enumerate(layers_a):
        if i not in row_of:
            why = undefined(names_a[i]) or f"no layer of {view_b} is defined"
            matches.append(
                Result(
                    analysis="best-match",
                    layer=la,
                    layer_b=None,
                    value=np.nan,
                    notes=join_notes(undefined_note(why), rows.note),
                    undefined_reason=why,
                    **common,
                )
            )
            continue
        k = row_of[i]
        null_mean = null_std = p_value = n_null_draws = None
        notes = f"best of {len(keep_b)} layers"
        if skipped_b:
            notes += f" (layers {skipped_b} undefined, left out)"
        if n_permutations:
            null_mean, null_std = float(null[:, k].mean()), float(null[:, k].std(ddof=1))
            p_value = stats.p_value(null[:, k], float(best[k]), alternative=alternative)
            n_null_draws = n_permutations
            notes += (
                f"; max-over-layers permutation null K={n_permutations} "
                f"seed={calibration.random_state}"
            )
            if max_t is not None:
                notes += f"; {max_t_note(float(max_t[k]), len(keep_a))}"
        elif calibration.n_permutations:
            notes += "; no permutation null: the measure ignores the pairing of rows"
        if calibration.n_resamples and same_best is None:
            notes += f"; no stability: undefined on a half-sample ({unstable})"
        best_row = Result(
            analysis="best-match",
            layer=la,
            layer_b=int(layers_b[keep_b[best_j[k]]]),
            value=best[k],
            null_mean=null_mean,
            null_std=null_std,
            p_value=p_value,
            n_null_draws=n_null_draws,
            max_t_p_value=None if max_t is None else float(max_t[k]),
            notes=join_notes(notes, *warned, rows.note),
            **common,
        )
        matches.append(best_row)
        if calibration.n_resamples and same_best is not None:
            matches.append(
                replace(
                    best_row,
                    statistic="stability",
                    kind=None,
                    null_mean=None,
                    null_std=None,
                    p_value=None,
                    n_null_draws=None,
                    max_t_p_value=None,
                    value=float(same_best[k] / calibration.n_resamples),
                    notes=f"share of {calibration.n_resamples} half-samples (n={rows.n // 2}, "
                    f"seed={calibration.random_state}) whose best layer is the same",
                )
            )
    log_undefined(matches, f"{view_a} vs {view_b} layer map")
    table.extend(matches)
    return table


def map_of(
    table: ResultsTable,
    *,
    measure: str,
    checkpoint: str,
    view: str,
    checkpoint_b: str,
    view_b: str,
) -> LayerMap:
    """The layer map (with its best matches) between two views, out of a results table."""
    key = (measure, checkpoint, view, checkpoint_b, view_b)
    maps = LayerMap.from_table(table)
    for found in maps:
        if (found.measure, found.checkpoint, found.view, found.checkpoint_b, found.view_b) == key:
            return found
    raise ValueError(
        f"no layer-map rows for {measure} between {checkpoint}:{view} and "
        f"{checkpoint_b}:{view_b}; maps in the table: "
        f"{sorted((m.measure, m.checkpoint, m.view, m.checkpoint_b, m.view_b) for m in maps)}."
    )


def map_matrix(
    table: ResultsTable,
    *,
    measure: str,
    checkpoint: str,
    view: str,
    checkpoint_b: str,
    view_b: str,
) -> tuple[list[int], list[int], np.ndarray]:
    """A layer map's values out of a results table, rows and columns in increasing layer order.

    Returns
    -------
    layers_a, layers_b : list of int
        Sorted layer numbers of the rows and columns.
    values : ndarray of shape (len(layers_a), len(layers_b))
        The measure, NaN where the table has no cell.
    """
    found = map_of(
        table, measure=measure, checkpoint=checkpoint, view=view, checkpoint_b=checkpoint_b,
        view_b=view_b,
    )  # fmt: skip
    rows, columns = np.argsort(found.layers_a), np.argsort(found.layers_b)
    values = found.values[np.ix_(rows, columns)]
    return sorted(found.layers_a), sorted(found.layers_b), values

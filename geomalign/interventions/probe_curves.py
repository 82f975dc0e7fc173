"""Per-layer probe curves read from an activation store, as rows of the results table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TypedDict

import numpy as np

from geomalign._progress import progress_bar
from geomalign.analysis.results import Estimate
from geomalign.analysis.table import Result, ResultsTable
from geomalign.interventions.probes import ProbeResult, probe_accuracy, transfer_accuracy
from geomalign.store import ActivationStore

__all__ = ["probe_curves"]


class _ProbeOptions(TypedDict):
    """The options every probe of a curve gets."""

    n_splits: int
    C: float
    n_permutations: int
    random_state: int


def _split_view(view: str) -> tuple[str, str]:
    modality, sep, pooling = view.partition("/")
    if not sep or not modality or not pooling or "/" in pooling:
        raise ValueError(f"views must be '<modality>/<pooling>' strings; got {view!r}.")
    return modality, pooling


def _shared_layers(store: ActivationStore, checkpoint: str, views: Sequence[str]) -> list[int]:
    shared: set[int] | None = None
    for view in views:
        modality, pooling = _split_view(view)
        info = store.view_info(checkpoint, modality, pooling)
        if store.row_offsets(checkpoint, modality, pooling) is not None:
            raise ValueError(
                f"{store.path}: view {checkpoint}/{view} holds one row per token; probes need a "
                "pooled view (one row per sample)."
            )
        shared = set(info.layers) if shared is None else shared & set(info.layers)
    return sorted(shared or ())


def probe_curves(
    store: ActivationStore | str | os.PathLike[str],
    checkpoint: str,
    labels: str | Sequence[str],
    *,
    views: Sequence[str] = ("text/mean", "image/mean"),
    layers: Sequence[int] | None = None,
    transfer: bool = True,
    n_splits: int = 5,
    C: float = 1.0,
    n_permutations: int = 0,
    random_state: int = 0,
    progress: bool = False,
) -> ResultsTable:
    """Probe accuracy per layer for each view, and probe transfer between the views.

    Parameters
    ----------
    store : ActivationStore or path
        An activation store (opened read-only when a path is given).
    checkpoint : str
        Checkpoint whose views are probed.
    labels : str or sequence of str
        Label column(s) of the store to predict (e.g. ``"colour_0"``).
    views : sequence of str, default=("text/mean", "image/mean")
        Pooled views as ``"<modality>/<pooling>"``; token views (one row per token) are refused.
    layers : sequence of int, optional
        Layers to probe (store numbering, 0 = embedding output); default: every layer all views
        share.
    transfer : bool, default=True
        Also train on each view and test on each other view of the same layer (both directions;
        see :func:`~geomalign.interventions.transfer_accuracy`).
    n_splits, C, n_permutations, random_state
        As in :func:`~geomalign.interventions.probe_accuracy`.
    progress : bool, default=False
        Show a progress bar over layers.

    Returns
    -------
    ResultsTable
        Per label: ``analysis="probe"`` rows (one per view and layer) and
        ``analysis="probe-transfer"`` rows (``view`` = training view, ``view_b`` = test view), with
        ``measure="probe-accuracy/<label>"`` and the permutation null in ``null_mean`` /
        ``p_value``; one ``statistic="chance"`` row holds the majority-class share.
    """
    names = [labels] if isinstance(labels, str) else list(labels)
    if not views or len(set(views)) != len(views):
        raise ValueError(f"views must be distinct and non-empty; got {list(views)}.")
    if not names:
        raise ValueError("labels must name at least one label column.")
    options: _ProbeOptions = {
        "n_splits": n_splits,
        "C": C,
        "n_permutations": n_permutations,
        "random_state": random_state,
    }
    context = nullcontext(store) if isinstance(store, ActivationStore) else ActivationStore(store)
    with context as opened:
        missing_labels = [name for name in names if name not in opened.labels]
        if missing_labels:
            raise ValueError(
                f"{opened.path}: no label column {missing_labels}; the store has "
                f"{sorted(opened.labels)}."
            )
        shared = _shared_layers(opened, checkpoint, views)
        chosen = shared if layers is None else [int(layer) for layer in layers]
        absent = sorted(set(chosen) - set(shared))
        if absent or not chosen:
            raise ValueError(
                f"{opened.path}: layers {absent or chosen} are not in every view of {checkpoint} "
                f"{list(views)}; shared layers are {shared}."
            )
        table = ResultsTable()
        for name in names:
            _, counts = np.unique(opened.labels[name], return_counts=True)
            table.append(
                Result(
                    "probe",
                    f"probe-accuracy/{name}",
                    checkpoint,
                    views[0],
                    None,
                    float(counts.max() / counts.sum()),
                    statistic="chance",
                    n_samples=int(counts.sum()),
                    notes=f"share of the most frequent of {counts.size} labels",
                )
            )
        pairs = [(s, t) for s in views for t in views if s != t] if transfer else []
        for layer in progress_bar(chosen, progress=progress, desc="probes", leave=False):
            X = {view: opened.read(checkpoint, *_split_view(view), layer) for view in views}
            for name in names:
                y = opened.labels[name]
                measure = f"probe-accuracy/{name}"
                for view in views:
                    result = probe_accuracy(X[view], y, **options)
                    table.append(_row("probe", measure, checkpoint, view, layer, result, options))
                for source, target in pairs:
                    result = transfer_accuracy(X[source], X[target], y, **options)
                    table.append(
                        _row(
                            "probe-transfer",
                            measure,
                            checkpoint,
                            source,
                            layer,
                            result,
                            options,
                            view_b=target,
                        )
                    )
    return table


def _row(
    analysis: str,
    measure: str,
    checkpoint: str,
    view: str,
    layer: int,
    result: ProbeResult,
    options: _ProbeOptions,
    view_b: str | None = None,
) -> Result:
    estimate = Estimate(
        result.accuracy,
        null_mean=result.null_mean,
        p_value=result.p_value,
        n_samples=result.n_samples,
        n_null_draws=result.n_permutations if result.p_value is not None else None,
        notes=(
            f"chance {result.chance:.4g} (majority class of {result.n_classes}); "
            f"{options['n_splits']}-fold stratified CV, C={options['C']}, "
            f"seed={options['random_state']}; fold accuracies "
            f"{result.fold_accuracies.min():.4g}-{result.fold_accuracies.max():.4g}"
            + (f"; {options['n_permutations']} label permutations" if result.p_value else "")
        ),
    )
    return estimate.row(
        analysis=analysis,
        measure=measure,
        checkpoint=checkpoint,
        view=view,
        layer=layer,
        checkpoint_b=checkpoint if view_b is not None else None,
        view_b=view_b,
        layer_b=layer if view_b is not None else None,
    )

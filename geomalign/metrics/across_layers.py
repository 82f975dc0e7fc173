"""Model-level conventions over all layers at once: platonic-rep's outlier clip and its
best-over-layer-pairs score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._registry import get

__all__ = ["LayerPairScore", "best_layer_pair", "outlier_clip_threshold"]


def _layers(layers, name: str) -> list[np.ndarray]:
    if isinstance(layers, (np.ndarray, torch.Tensor)) and np.ndim(layers) == 3:
        layers = [layers[:, i, :] for i in range(layers.shape[1])]  # (n, L, D) as platonic-rep
    if isinstance(layers, (np.ndarray, torch.Tensor)) or len(layers) == 0:
        raise ValueError(
            f"{name} must be a non-empty sequence of (n_samples, n_features) arrays, one per "
            "layer, or an (n_samples, n_layers, n_features) array."
        )
    checked = [
        check_representations(L, name=f"{name}[{i}]", allow_torch=False)
        for i, L in enumerate(layers)
    ]
    for i, L in enumerate(checked[1:], start=1):
        check_paired(checked[0], L, x_name=f"{name}[0]", y_name=f"{name}[{i}]")
    return checked


def outlier_clip_threshold(
    layers: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    *,
    quantile: float = 0.95,
    exact: bool = False,
) -> float:
    """One clipping threshold over all layers of a model (platonic-rep's ``remove_outliers``).

    Parameters
    ----------
    layers : sequence of array-like of shape (n_samples, n_features_l), or an array of shape
        (n_samples, n_layers, n_features)
        A model's representations of the same samples at every layer.
    quantile : float in (0, 1), default=0.95
        The quantile of ``|x|`` taken.
    exact : bool, default=False
        ``False`` (platonic-rep's default): the mean over samples of each sample's
        ``quantile`` of ``|x|`` over its values at all layers (linear interpolation, as
        ``torch.quantile``). ``True``: ``sorted(|x|)[int(quantile * N)]`` over all ``N``
        values of all layers.

    Returns
    -------
    float
        ``t``; platonic-rep then clamps every layer to ``[-t, t]`` (``np.clip(X, -t, t)``)
        before measuring, e.g. ``mutual_knn(np.clip(X, -t, t), np.clip(Y, -u, u))``. The
        per-layer clip of :func:`~geomalign.metrics.mutual_knn` (``clip_quantile``) takes one
        threshold per layer instead.

    Examples
    --------
    >>> X = np.arange(20.0).reshape(2, 10)
    >>> outlier_clip_threshold([X[:, :5], X[:, 5:]], quantile=0.5)
    9.5
    """
    if not (isinstance(quantile, float) and 0.0 < quantile < 1.0):
        raise ValueError(f"quantile must be a float in (0, 1); got {quantile!r}.")
    checked = _layers(layers, "layers")
    if exact:
        values = np.concatenate([np.abs(L).reshape(-1) for L in checked])
        index = int(quantile * values.size)
        return float(np.partition(values, index)[index])
    n = checked[0].shape[0]
    total = 0.0
    block = max(1, 2**24 // sum(L.shape[1] for L in checked))  # rows per block of all layers
    for start in range(0, n, block):
        rows = np.abs(np.concatenate([L[start : start + block] for L in checked], axis=1))
        total += float(np.quantile(rows, quantile, axis=1).sum())
    return total / n


@dataclass(frozen=True)
class LayerPairScore:
    """Result of :func:`best_layer_pair`.

    Attributes
    ----------
    score : float
        The best value: the largest similarity (or smallest distance) over all layer pairs.
    x_layer, y_layer : int
        Positions in ``Xs`` and ``Ys`` of the first pair reaching it (row-major order).
    scores : numpy.ndarray of shape (len(Xs), len(Ys))
        The measure at every pair.
    """

    score: float
    x_layer: int
    y_layer: int
    scores: np.ndarray


def best_layer_pair(
    Xs: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    Ys: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
    *,
    measure: str = "mutual-knn",
    **params: object,
) -> LayerPairScore:
    """The best score of a measure over all pairs of layers, with the pair that gives it.

    platonic-rep's model score (``compute_score``): every layer of one model against every
    layer of the other, keeping the maximum and its indices.

    Parameters
    ----------
    Xs, Ys : sequence of array-like of shape (n_samples, n_features_l), or an array of shape
        (n_samples, n_layers, n_features)
        The layers of two models on the same samples.
    measure : str, default="mutual-knn"
        A registered similarity or distance (maximised or minimised).
    **params
        Options of the measure, e.g. ``k=10`` or ``metric="inner_product"``.

    Returns
    -------
    LayerPairScore

    Notes
    -----
    A maximum over many layer pairs is biased upwards; compare it with the same maximum under
    a permutation null (``geomalign.stats.max_null``). platonic-rep starts from a best score of
    0 and returns no indices when every pair scores 0 or less; here the best pair is always
    returned.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((40, 5))
    >>> best = best_layer_pair([X, X[:, ::-1] ** 3], [X ** 3, 2 * X], measure="cka-linear")
    >>> (best.x_layer, best.y_layer)
    (0, 1)
    """
    m = get(measure)
    if m.kind == "dimension":
        raise ValueError(f"measure {measure!r} is a dimension; a layer pair needs two views.")
    xs, ys = _layers(Xs, "Xs"), _layers(Ys, "Ys")
    check_paired(xs[0], ys[0], x_name="Xs[0]", y_name="Ys[0]")
    scores = np.array([[m(x, y, **params) for y in ys] for x in xs])
    flat = int(np.argmax(scores) if m.kind == "similarity" else np.argmin(scores))
    i, j = divmod(flat, len(ys))
    return LayerPairScore(float(scores[i, j]), i, j, scores)

"""What the intrinsic-dimension estimators read: each method's checked options, the neighbours
per point it needs, and neighbour distances with near-duplicate rows dropped."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geomalign._validation import check_int
from geomalign.metrics._arrays import take_rows
from geomalign.metrics._errors import UndefinedMeasureError
from geomalign.metrics._neighbors import knn

__all__ = ["DEFAULT_DUPLICATE_RTOL", "METHODS", "checked_options", "neighbour_distances",
           "neighbour_rank"]  # fmt: skip

METHODS = ("twonn", "gride", "mle", "pr")
_TWONN_FITS = ("ml", "linear")
#: Default relative tolerance for near-duplicates (see :func:`neighbour_distances`).
DEFAULT_DUPLICATE_RTOL = 1e-3


def neighbour_distances(
    X: np.ndarray | torch.Tensor,
    k: int,
    *,
    rtol: float,
    working_memory: float | None,
    device: str | torch.device | None,
    why: str,
    neighbors: str = "exact",
) -> tuple[np.ndarray, int]:
    """Distances (float64, ascending) to the ``k`` nearest neighbours, duplicates dropped.

    Two rows are near-duplicates when their distance is at most ``rtol`` times the median
    nearest-neighbour distance. Near-duplicate pairs among the neighbour lists are joined into
    groups (connected components), the first row of each group is kept, and the neighbours are
    searched again; this repeats until no such pair is left (the median is taken afresh each
    time, so that data made mostly of duplicates are handled too). Every pass drops at least
    one row (a row is never its own neighbour), so the loop ends. ``neighbors`` chooses the
    search as for :func:`~geomalign.metrics._neighbors.knn` (the distances are exact either way).

    Returns the distances of the rows kept and the number of rows dropped.
    """
    n_start = X.shape[0]
    while True:
        n = X.shape[0]
        if n <= k:
            raise UndefinedMeasureError(
                f"{why} needs at least {k + 1} distinct samples; X has {n_start} rows of which "
                f"{n_start - n} are duplicates or near-duplicates, leaving {n}."
            )
        neighbours = knn(X, k=k, working_memory=working_memory, device=device,
                         neighbors=neighbors)  # fmt: skip
        distances = neighbours.distances
        tolerance = rtol * float(np.median(distances[:, 0]))
        close = distances <= tolerance
        if not close.any():
            break
        rows, ranks = np.nonzero(close)
        cols = neighbours.indices[rows, ranks]
        graph = sparse.coo_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        _, first = np.unique(labels, return_index=True)
        if first.size == n:  # every pass must drop a row, or the loop would never end
            raise RuntimeError(
                f"{why}: the neighbour search listed rows as their own near-duplicates "
                f"({n} rows); the distances are not consistent."
            )
        X = take_rows(X, np.sort(first))
    n_duplicates = n_start - X.shape[0]
    if n_duplicates:
        warnings.warn(
            f"{n_duplicates} of {n_start} rows of X are duplicates or near-duplicates of other "
            f"rows (distance <= {rtol:g} x the median nearest-neighbour distance); dropped "
            f"them, keeping one row per group ({X.shape[0]} rows used).",
            UserWarning,
            stacklevel=3,
        )
    return distances, n_duplicates


def _check_option(value: Any, name: str, method: str, used_by: str, default: Any) -> Any:
    if value is None:
        return default
    if method != used_by:
        raise ValueError(
            f"{name} applies to method={used_by!r} only; got it with method={method!r}."
        )
    return value


def checked_options(
    method: str,
    fit: str | None,
    discard_fraction: float | None,
    n1: int | None,
    n_neighbors: int | None,
    duplicate_rtol: float,
) -> dict[str, Any]:
    """The options of :func:`~geomalign.metrics.intrinsic_dimension`, checked, with their
    defaults filled in."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    fit = _check_option(fit, "fit", method, "twonn", "ml")
    if fit not in _TWONN_FITS:
        raise ValueError(f"fit must be one of {_TWONN_FITS}; got {fit!r}.")
    if discard_fraction is not None and (method, fit) != ("twonn", "linear"):
        raise ValueError(
            "discard_fraction applies to method='twonn' with fit='linear' only; got "
            f"method={method!r}, fit={fit!r}."
        )
    discard_fraction = 0.1 if discard_fraction is None else discard_fraction
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1); got {discard_fraction!r}.")
    n1 = check_int(_check_option(n1, "n1", method, "gride", 16), "n1", 1)
    n_neighbors = check_int(
        _check_option(n_neighbors, "n_neighbors", method, "mle", 20), "n_neighbors", 2
    )
    if not duplicate_rtol >= 0.0:
        raise ValueError(f"duplicate_rtol must be >= 0; got {duplicate_rtol!r}.")
    return {"fit": fit, "discard_fraction": discard_fraction, "n1": n1,
            "n_neighbors": n_neighbors, "duplicate_rtol": duplicate_rtol}  # fmt: skip


def neighbour_rank(method: str, opts: dict[str, Any]) -> tuple[int, str]:
    """Neighbours per point a neighbour-based ``method`` reads, and how to name that need."""
    n1, k = opts["n1"], {"twonn": 2, "gride": 2 * opts["n1"], "mle": opts["n_neighbors"]}[method]
    option = {"twonn": "TwoNN", "gride": f"GRIDE with n1={n1}", "mle": f"n_neighbors={k}"}
    return k, f"{option[method]} ({k} neighbours per point)"

"""Intrinsic dimensions of many half-samples of the same rows (half-sampling intervals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from geomalign._validation import check_representations
from geomalign.metrics._arrays import take_rows
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._id_inputs import checked_options, neighbour_rank
from geomalign.metrics._neighbors import Neighbors
from geomalign.metrics.intrinsic import from_distances, intrinsic_dimension

__all__ = ["resampled_intrinsic_dimension"]


def resampled_intrinsic_dimension(
    X: np.ndarray | torch.Tensor,
    *,
    method: str = "twonn",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``rows -> [intrinsic_dimension(X[r], ...).dimension for r in rows]``.

    The options and X are checked once. For the neighbour-based methods each half-sample's
    neighbour distances are read off one search over all rows
    (:class:`~geomalign.metrics._half_neighbours.HalfSampleNeighbours`); a half-sample whose
    lists run short, that holds near-duplicates (which :func:`intrinsic_dimension` drops and
    searches again) or that is too small for the method is estimated afresh, as are resamples
    that repeat rows and the participation ratio.
    """
    opts = checked_options(
        method,
        options.get("fit"),
        options.get("discard_fraction"),
        options.get("n1"),
        options.get("n_neighbors"),
        options.get("duplicate_rtol", 1e-3),
    )
    X = check_representations(X)
    neighbors = options.get("neighbors", "exact")
    params = {"method": method, "working_memory": working_memory, "device": device, **options}
    k = None if method == "pr" else neighbour_rank(method, opts)[0]
    searched: list[HalfSampleNeighbours] = []

    def lists(m: int) -> HalfSampleNeighbours | None:
        """The full lists, searched once when resamples of ``m`` rows can be read off them."""
        if k is None or X.shape[0] <= k + 1 or m <= k:
            return None
        if not searched:
            searched.append(HalfSampleNeighbours(X, k=k, metric="euclidean",
                                                 working_memory=working_memory, device=device,
                                                 name="X", neighbors=neighbors))  # fmt: skip
        return searched[0]

    def one(rows: np.ndarray, found: Neighbors | None) -> float:
        if found is not None:
            distances = found.distances
            tolerance = opts["duplicate_rtol"] * float(np.median(distances[:, 0]))
            if not (distances <= tolerance).any():
                return from_distances(method, distances, 0, opts).dimension
        return intrinsic_dimension(take_rows(X, rows), **params).dimension

    def at(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        half = lists(rows.shape[1])
        found = [None] * len(rows) if half is None else half.within_each(rows)
        return np.array([one(r, f) for r, f in zip(rows, found, strict=True)], dtype=np.float64)

    return at

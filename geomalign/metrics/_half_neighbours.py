"""Neighbours within half-samples, read off the neighbour lists of the full sample.

Half-sampling intervals of neighbourhood measures search the neighbours of hundreds of
half-samples of the same rows. A row's k nearest neighbours within a half-sample are the first k
members of the half-sample in its neighbour list over all rows (ascending distance, ties by index,
the order :func:`~geomalign.metrics._neighbors.knn` returns), with the same recomputed distances:
so one search of ``L > k`` neighbours per row serves every half-sample. A half-sample keeps each
row with probability about 1/2, so the first ``L = 3k + 32`` entries hold at least k members of
it except with negligible probability; a half-sample where some row's list runs short (or any
resample that repeats rows) gets a search of its own. Selection among float32 near-ties (closer
than float32 resolution, which :func:`~geomalign.metrics._neighbors.knn` may order either way)
can then differ from a search within the half-sample; otherwise the lists are identical.
"""

from __future__ import annotations

import numpy as np
import torch

from geomalign.metrics._neighbors import Neighbors, knn

__all__ = ["HalfSampleNeighbours", "list_length"]


def list_length(k: int, n: int) -> int:
    """Neighbours searched per row so that half-samples of ``n`` rows find ``k`` in the list."""
    return min(n - 1, 3 * k + 32)


class HalfSampleNeighbours:
    """The neighbour lists of the full sample, and the k-NN within any subset of its rows.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor of shape (n_samples, n_features)
        Checked representations (see :func:`~geomalign.metrics._neighbors.knn`).
    k : int
        Neighbours wanted within each subset.
    metric, working_memory, device, name, neighbors
        As for :func:`~geomalign.metrics._neighbors.knn`.
    """

    def __init__(
        self,
        X: np.ndarray | torch.Tensor,
        *,
        k: int,
        metric: str,
        working_memory: float | None,
        device: str | torch.device | None,
        name: str,
        neighbors: str = "exact",
    ) -> None:
        self.k = k
        self.n = X.shape[0]
        self.full = knn(
            X,
            k=list_length(k, self.n),
            metric=metric,
            working_memory=working_memory,
            device=device,
            name=name,
            neighbors=neighbors,
        )

    def within_each(self, rows: np.ndarray) -> list[Neighbors | None]:
        """For each row ``r`` of ``rows`` (n_resamples, m), the k-NN among ``X[r]`` (indices
        into ``r``), or None where the full lists cannot tell (``r`` not distinct and
        ascending, or a row's list holds fewer than k of them); all resamples read off the
        lists at once (in chunks of about 2**21 list entries)."""
        rows = np.asarray(rows, dtype=np.int64)
        found: list[Neighbors | None] = []
        step = max(1, 2**21 // max(1, rows.shape[1] * self.full.indices.shape[1]))
        for start in range(0, len(rows), step):
            found += self._within_chunk(rows[start : start + step])
        return found

    def _within_chunk(self, rows: np.ndarray) -> list[Neighbors | None]:
        R, m = rows.shape
        out: list[Neighbors | None] = [None] * R
        ok = np.all(np.diff(rows, axis=1) > 0, axis=1) if m > self.k else np.zeros(R, bool)
        if not ok.any():
            return out
        rows = rows[ok]
        local = np.full((len(rows), self.n), -1, dtype=np.int64)
        np.put_along_axis(local, rows, np.arange(m)[None, :], axis=1)
        # (r, m, L): each resample's rows' lists in its local numbering, -1 outside it
        listed = np.take_along_axis(local[:, None, :], self.full.indices[rows], axis=2)
        member = listed >= 0
        rank = np.cumsum(member, axis=2, dtype=np.int32)
        long_enough = np.all(rank[:, :, -1] >= self.k, axis=1)
        keep = member & (rank <= self.k)
        for j, i in enumerate(np.flatnonzero(ok)):
            if long_enough[j]:
                out[i] = Neighbors(
                    indices=listed[j][keep[j]].reshape(m, self.k),
                    distances=self.full.distances[rows[j]][keep[j]].reshape(m, self.k),
                    metric=self.full.metric,
                )
        return out

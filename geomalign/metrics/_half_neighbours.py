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
        ascending, or a row's list holds fewer than k of them); see :meth:`within_all`."""
        found, indices, distances = self.within_all(rows)
        out: list[Neighbors | None] = [None] * len(found)
        for j, i in enumerate(np.flatnonzero(found)):
            out[i] = Neighbors(indices=indices[j], distances=distances[j], metric=self.full.metric)
        return out

    def within_all(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k-NN within every resample ``rows[i]`` (rows of shape (n_resamples, m)) that the
        full lists can tell, read off them all at once (in chunks of about 2**21 list entries).

        Returns ``found``, bool (n_resamples,): whether the lists tell resample ``i`` (its rows
        distinct and ascending, and every row's list holding k of them); and the ``indices``
        (into ``rows[i]``) and ``distances`` of the found resamples' neighbours, each of shape
        (found.sum(), m, k), in the order of the found resamples.
        """
        rows = np.asarray(rows, dtype=np.int64)
        R, m = rows.shape
        found = np.zeros(R, dtype=bool)
        indices, distances = [], []
        step = max(1, 2**21 // max(1, m * self.full.indices.shape[1]))
        for start in range(0, R, step):
            ok, idx, dist = self._within_chunk(rows[start : start + step])
            found[start : start + len(ok)] = ok
            indices.append(idx)
            distances.append(dist)
        if not indices:
            empty = np.zeros((0, m, self.k))
            return found, empty.astype(np.int64), empty
        return found, np.concatenate(indices), np.concatenate(distances)

    def _within_chunk(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        R, m = rows.shape
        L = self.full.indices.shape[1]
        ok = np.all(np.diff(rows, axis=1) > 0, axis=1) if m > self.k else np.zeros(R, bool)
        kept = rows[ok]
        # (r, m, L): each resample's rows' lists in its local numbering, -1 outside it
        local = np.full((len(kept), self.n), -1, dtype=np.int64)
        np.put_along_axis(local, kept, np.arange(m)[None, :], axis=1)
        offsets = (np.arange(len(kept)) * self.n)[:, None, None]
        listed = np.take(local, self.full.indices[kept] + offsets)
        member = listed >= 0
        rank = np.cumsum(member, axis=2, dtype=np.int32)
        long_enough = np.all(rank[:, :, -1] >= self.k, axis=1)
        ok[ok] = long_enough
        # the first k members of each list, resample by resample and row by row
        keep = member & (rank <= self.k) & long_enough[:, None, None]
        where = np.flatnonzero(keep)
        listed_rows = kept.reshape(-1)[where // L]  # the full sample's row of each entry
        shape = (int(long_enough.sum()), m, self.k)
        return (
            ok,
            listed.reshape(-1)[where].reshape(shape),
            self.full.distances.reshape(-1)[listed_rows * L + where % L].reshape(shape),
        )

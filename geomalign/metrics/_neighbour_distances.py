"""Distances of listed neighbours, recomputed from the rows with float64 accumulation.

Candidates are selected from float32 products (or an approximate index); the k selected distances
are then recomputed from the rows themselves (a difference of rows, squared and summed with
float64 accumulation), so that near neighbours keep their precision and exact duplicates come out
at distance exactly 0.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = ["exact_distances", "minus_inner_products", "row_sq_norms"]

# Bytes of the gathered rows handled at once when recomputing distances (cache sized).
_RECOMPUTE_BYTES = 2 * 2**20


def row_sq_norms(X: torch.Tensor) -> torch.Tensor:
    """Squared row norms accumulated in float64 (float32 reductions drift on long rows).

    On the CPU, single-threaded NumPy over cache-sized chunks beats torch's parallel kernels
    for this memory-bound pass (and does not degrade when the cores are shared).
    """
    chunk = max(1, _RECOMPUTE_BYTES // (X.shape[1] * X.element_size()))
    if X.device.type == "cpu":
        Xn = X.numpy()
        sums = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], chunk):
            sums[start : start + chunk] = np.square(Xn[start : start + chunk]).sum(
                axis=1, dtype=np.float64
            )
        return torch.from_numpy(sums)
    out = torch.empty(X.shape[0], dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], 64 * chunk):
        block = X[start : start + 64 * chunk]
        out[start : start + 64 * chunk] = block.square().sum(dim=1, dtype=torch.float64)
    return out


def _exact_rows_numpy(
    Xn: np.ndarray,
    indices: np.ndarray,
    inv: np.ndarray | None,
    out: np.ndarray,
    bounds: tuple[int, int],
    chunk: int,
) -> None:
    """Squared distances of rows ``bounds[0]:bounds[1]`` to their neighbours, into ``out``."""
    k, d = indices.shape[1], Xn.shape[1]
    for start in range(bounds[0], bounds[1], chunk):
        stop = min(start + chunk, bounds[1])
        idx = indices[start:stop].reshape(-1)
        neigh = np.take(Xn, idx, axis=0).reshape(stop - start, k, d)
        rows = Xn[start:stop, None, :]
        if inv is not None:
            neigh *= inv[idx].reshape(stop - start, k, 1)
            rows = rows * inv[start:stop, None, None]
        np.subtract(neigh, rows, out=neigh)
        np.square(neigh, out=neigh)
        out[start:stop] = neigh.sum(axis=2, dtype=np.float64)


def exact_distances(
    X: torch.Tensor, indices: torch.Tensor, metric: str, inv_norms: torch.Tensor | None
) -> torch.Tensor:
    """Distances (n, k) between each row and its listed neighbours, recomputed from the rows.

    Differences of rows are formed in the input dtype (exact for near rows) and their squares are
    summed in float64, so duplicates give exactly 0. On the CPU this runs in NumPy over
    cache-sized chunks, one contiguous range of rows per torch thread (NumPy releases the GIL):
    small gathers in plain threads are faster than torch's parallel kernels, whose per-call
    synchronisation dominates (and degrades badly on shared cores).
    """
    n, k = indices.shape
    d = X.shape[1]
    chunk = max(1, _RECOMPUTE_BYTES // (k * d * X.element_size()))
    if X.device.type == "cpu":
        Xn, idx_np, out_np = X.numpy(), indices.numpy(), np.empty((n, k), dtype=np.float64)
        inv = None if inv_norms is None else inv_norms.numpy()
        workers = max(1, min(torch.get_num_threads(), n // chunk))
        edges = np.linspace(0, n, workers + 1).astype(int)
        if workers == 1:  # no pool: starting a thread costs more than small inputs take
            _exact_rows_numpy(Xn, idx_np, inv, out_np, (0, n), chunk)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [
                    pool.submit(_exact_rows_numpy, Xn, idx_np, inv, out_np, (lo, hi), chunk)
                    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)
                ]
                for job in jobs:
                    job.result()
        out = torch.from_numpy(out_np)
    else:
        chunk *= 16  # fewer, larger kernel launches
        out = torch.empty((n, k), dtype=torch.float64, device=X.device)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = indices[start:stop].reshape(-1)
            neigh = X.index_select(0, idx).view(stop - start, k, d)
            rows = X[start:stop, None, :]
            if inv_norms is not None:
                neigh.mul_(inv_norms[idx].view(stop - start, k, 1))
                rows = rows * inv_norms[start:stop, None, None]
            out[start:stop] = neigh.sub_(rows).square_().sum(dim=2, dtype=torch.float64)
    if metric == "euclidean":
        return out.sqrt_()
    return out.mul_(0.5)  # 1 - cos(u, v) = |u - v|^2 / 2 for unit vectors


def minus_inner_products(X: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``-x_i . x_j`` (n, k) for the listed neighbours j of each row i, summed in float64."""
    n, k = indices.shape
    out = torch.empty((n, k), dtype=torch.float64, device=X.device)
    chunk = max(1, _RECOMPUTE_BYTES // (k * X.shape[1] * 8))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        neigh = X[indices[start:stop].reshape(-1)].view(stop - start, k, -1).to(torch.float64)
        out[start:stop] = -(neigh * X[start:stop, None, :].to(torch.float64)).sum(dim=2)
    return out

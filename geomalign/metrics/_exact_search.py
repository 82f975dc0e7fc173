"""Exact k-nearest-neighbour candidates by blocked matrix products.

The N x N similarity matrix is never formed: rows are processed in blocks of at most
``working_memory`` MiB, and the symmetry of X X^T is used so that each block is multiplied only
with itself and the rows after it. One product ``X[block] @ X[block_start:].T`` serves twice: a
top-k along its rows gives the block's candidates among later rows, and a top-k along its columns
gives the later rows' candidates inside the block. A running (n, k) best list is merged after each
block. The column-wise top-k over a block's few rows is the expensive selection, so it is done in
two stages: the block's rows are taken in groups, and a column's k smallest entries always lie in
the k groups with the smallest minima, so only those groups' entries are ranked.
"""

from __future__ import annotations

import math

import torch

from geomalign.metrics._arrays import block_rows

__all__ = ["block_scores", "exact_candidates", "select_candidates"]

# Blocks are kept small enough that the symmetric scheme skips most of the lower triangle
# (with m blocks it computes (m + 1) / (2 m) of X X^T), but large enough for efficient products.
_TARGET_BLOCKS = 8
_MIN_BLOCK_ROWS = 512


def _merge(
    best_v: torch.Tensor, best_i: torch.Tensor, v: torch.Tensor, i: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k smallest of the running best list and new candidates, row by row."""
    cat_v = torch.cat([best_v, v], dim=1)
    cat_i = torch.cat([best_i, i], dim=1)
    top_v, pos = torch.topk(cat_v, k, dim=1, largest=False, sorted=False)
    return top_v, torch.gather(cat_i, 1, pos)


def block_scores(
    Xc: torch.Tensor,
    scale: torch.Tensor,
    metric: str,
    start: int,
    stop: int,
    col_start: int,
    buffer: torch.Tensor,
) -> torch.Tensor:
    """Float32 scores of rows ``start:stop`` against rows ``col_start:``, smaller is nearer.

    The score is the squared Euclidean distance, or minus the cosine similarity; ``scale`` holds
    the squared row norms (Euclidean) or the inverse row norms (cosine), in float32. The scores
    are written into the front of the flat ``buffer``, reused across blocks: a fresh block of
    this size would cost a page fault per 4 KiB.
    """
    S = buffer[: (stop - start) * (Xc.shape[0] - col_start)].view(stop - start, -1)
    if metric == "euclidean":
        torch.addmm(scale[col_start:], Xc[start:stop], Xc[col_start:].T, alpha=-2.0, out=S)
        return S.add_(scale[start:stop, None])
    if metric == "inner_product":
        return torch.matmul(Xc[start:stop], Xc[col_start:].T, out=S).neg_()
    torch.matmul(Xc[start:stop] * scale[start:stop, None], Xc[col_start:].T, out=S)
    return S.mul_(-scale[col_start:])


def _group_size(rows: int, k: int) -> int:
    """Rows per group for the column-wise selection over a block of ``rows`` rows (1 = direct).

    Ranking the groups' minima costs about ``rows / g`` per column and ranking the chosen groups'
    entries about ``k g``; ``g = sqrt(rows / k)`` balances the two.
    """
    return max(1, math.isqrt(rows // max(k, 1)))


def _column_smallest(S: torch.Tensor, k: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each column of ``S`` (values, row positions), unordered.

    With ``group > 1`` (dividing the row count) the rows are taken in groups of that size. An
    entry among a column's k smallest has fewer than k smaller entries, so fewer than k groups
    have a smaller minimum: its group is among the k groups with the smallest minima, and only
    those groups' entries are ranked. The selected values equal a direct top-k's.
    """
    rows = S.shape[0]
    k = min(k, rows)
    if group < 2 or rows % group or rows // group <= k:
        return torch.topk(S, k, dim=0, largest=False, sorted=False)
    minima = S.unflatten(0, (rows // group, group)).amin(dim=1)
    _, groups = torch.topk(minima, k, dim=0, largest=False, sorted=False)
    offsets = torch.arange(group, device=S.device)[None, :, None]
    candidates = (groups[:, None, :] * group + offsets).flatten(0, 1)
    values, pos = torch.topk(torch.gather(S, 0, candidates), k, dim=0, largest=False, sorted=False)
    return values, torch.gather(candidates, 0, pos)


def select_candidates(
    Xc: torch.Tensor, k: int, metric: str, scale: torch.Tensor, rows: int
) -> torch.Tensor:
    """Indices (n, k) of the k smallest float32 scores per row, self excluded by index."""
    n = Xc.shape[0]
    best_v = torch.full((n, k), math.inf, dtype=torch.float32, device=Xc.device)
    best_i = torch.zeros((n, k), dtype=torch.int64, device=Xc.device)
    buffer = torch.empty(min(rows, n) * n, dtype=torch.float32, device=Xc.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        size = stop - start
        S = block_scores(Xc, scale, metric, start, stop, start, buffer)
        S[:, :size].diagonal().fill_(math.inf)
        v, i = torch.topk(S, min(k, S.shape[1]), dim=1, largest=False, sorted=False)
        best_v[start:stop], best_i[start:stop] = _merge(
            best_v[start:stop], best_i[start:stop], v, i + start, k
        )
        if stop < n:
            v, i = _column_smallest(S[:, size:], k, _group_size(size, k))
            best_v[stop:], best_i[stop:] = _merge(best_v[stop:], best_i[stop:], v.T, i.T + start, k)
    return best_i


def exact_candidates(
    Xc: torch.Tensor, k: int, metric: str, scale: torch.Tensor, working_memory: float | None
) -> torch.Tensor:
    """Indices (n, k) of the exact k nearest other rows of float32 ``Xc`` by float32 scores
    (``scale`` as for :func:`block_scores`), in blocks of at most ``working_memory`` MiB."""
    n = Xc.shape[0]
    limit = block_rows(n, 8, working_memory)
    rows = min(limit, max(_MIN_BLOCK_ROWS, math.ceil(n / _TARGET_BLOCKS)))
    group = _group_size(rows, k)  # whole groups in every block but the last
    rows = rows + (-rows) % group if rows + (-rows) % group <= limit else rows - rows % group
    return select_candidates(Xc, k, metric, scale, rows)

"""Order-aware comparisons of neighbour lists: longest common subsequence and edit distance.

Huh et al. (2024) compare, besides the sets of k nearest neighbours (:func:`mutual_knn`), the
ordered lists themselves (platonic-rep's ``lcs_knn`` and ``edit_distance_knn``). Both are
dynamic programmes over the k x k table of each sample's two lists, run here for all samples at
once (k^2 vectorised steps over the n samples).
"""

from __future__ import annotations

import numpy as np
import torch

from geomalign.metrics.knn import check_pair, neighbours

__all__ = ["edit_distance_knn", "lcs_knn"]


def _ordered_lists(X, Y, what: str, **options) -> tuple[np.ndarray, np.ndarray]:
    """Checked pair's neighbour indices (n, k) per view, nearest first."""
    X, Y = check_pair(X, Y, options["k"], None, what)
    a = neighbours(X, name="X", clip_quantile=None, **options).indices
    return a, neighbours(Y, name="Y", clip_quantile=None, **options).indices


def _lcs_lengths(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the length of the longest common subsequence of ``a[i]`` and ``b[i]``."""
    n, k = a.shape
    table = np.zeros((k + 1, k + 1, n), dtype=np.int64)
    for i in range(1, k + 1):
        for j in range(1, k + 1):
            same = a[:, i - 1] == b[:, j - 1]
            table[i, j] = np.where(
                same, table[i - 1, j - 1] + 1, np.maximum(table[i - 1, j], table[i, j - 1])
            )
    return table[k, k]


def _edit_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the Levenshtein distance between ``a[i]`` and ``b[i]`` (unit costs)."""
    n, k = a.shape
    table = np.zeros((k + 1, k + 1, n), dtype=np.int64)
    table[:, 0] = np.arange(k + 1)[:, None]
    table[0, :] = np.arange(k + 1)[:, None]
    for i in range(1, k + 1):
        for j in range(1, k + 1):
            substitute = table[i - 1, j - 1] + (a[:, i - 1] != b[:, j - 1])
            table[i, j] = np.minimum(substitute, np.minimum(table[i - 1, j], table[i, j - 1]) + 1)
    return table[k, k]


def lcs_knn(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> float:
    """Mean length, over k, of the longest common subsequence of the ordered neighbour lists.

    Parameters
    ----------
    X, Y, k, metric, working_memory, device, neighbors
        As in :func:`~geomalign.metrics.mutual_knn` (``metric="inner_product"`` ranks by the
        raw inner product, as platonic-rep on un-normalised features).

    Returns
    -------
    float
        A similarity in [0, 1]: 1 when both views list the same neighbours in the same order.
        platonic-rep's ``lcs_knn`` returns k times this value (the mean length itself).

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> lcs_knn(X, 2.0 * X, k=5)
    1.0
    """
    a, b = _ordered_lists(X, Y, "LCS k-NN", k=k, metric=metric, working_memory=working_memory,
                          device=device, neighbors=neighbors)  # fmt: skip
    return float(_lcs_lengths(a, b).mean() / k)


def edit_distance_knn(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 10,
    metric: str = "cosine",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
    neighbors: str = "exact",
) -> float:
    """One minus the mean edit distance, over k, between the ordered neighbour lists.

    Parameters
    ----------
    X, Y, k, metric, working_memory, device, neighbors
        As in :func:`lcs_knn`.

    Returns
    -------
    float
        A similarity in [0, 1], ``1 - mean_i lev(N_X(i), N_Y(i)) / k`` with ``lev`` the
        Levenshtein distance of the two lists (unit insertions, deletions and substitutions),
        as platonic-rep's ``edit_distance_knn``.

    References
    ----------
    .. [1] Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> edit_distance_knn(X, 2.0 * X, k=5)
    1.0
    """
    a, b = _ordered_lists(X, Y, "edit-distance k-NN", k=k, metric=metric,
                          working_memory=working_memory, device=device,
                          neighbors=neighbors)  # fmt: skip
    return float(1.0 - _edit_distances(a, b).mean() / k)

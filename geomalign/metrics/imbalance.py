"""Information imbalance (Glielmo et al. 2022): how well neighbours in X predict those in Y."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._errors import check_min_samples
from geomalign.metrics._neighbors import check_k_informative, knn, neighbour_ranks

__all__ = ["InformationImbalances", "information_imbalance", "information_imbalances"]


@dataclass(frozen=True)
class InformationImbalances:
    r"""Result of :func:`information_imbalances`: both directions of one pair.

    Attributes
    ----------
    x_to_y : float
        :math:`\Delta(X \to Y)`, as :func:`information_imbalance(X, Y) <information_imbalance>`.
    y_to_x : float
        :math:`\Delta(Y \to X)`, as ``information_imbalance(Y, X)``.
    """

    x_to_y: float
    y_to_x: float


def _checked(X, Y, k: int):
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    what = "information imbalance"
    check_min_samples(X.shape[0], 3, what, "the one other sample always has rank 1")
    check_k_informative(k, X.shape[0], what)
    return X, Y


def _imbalance(indices: np.ndarray, Y, names: tuple[str, str], metric, working_memory, device):
    """Delta from the neighbour lists of one view and the ranks of those in the other."""
    ranks = neighbour_ranks(
        Y, indices, metric=metric, working_memory=working_memory, device=device, name=names[1]
    )
    return float(2.0 * ranks.mean() / indices.shape[0])


def information_imbalance(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 1,
    metric: str = "euclidean",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Information imbalance :math:`\Delta(X \to Y)` of two representations of the same samples.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
        The representation whose neighbours are used as predictors.
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        The representation in which their ranks are measured.
    k : int, default=1
        Number of nearest neighbours in X per sample (the original definition uses 1).
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance used in both spaces.
    working_memory : float, optional
        MiB for one block of products (default 1024); no n x n matrix or full sort is formed.
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        A distance-like score: about 0 when X's neighbourhoods determine Y's, about 1 when X
        carries no information on Y. Not symmetric: compare with ``information_imbalance(Y, X)``.

    Notes
    -----
    With :math:`j_1(i), \dots, j_k(i)` the nearest neighbours of i in X and :math:`r^Y_{ij}`
    the rank of j among the neighbours of i in Y (1 = nearest, ties sharing the best rank),

    .. math:: \Delta(X \to Y) = \frac{2}{n} \cdot \frac{1}{n k} \sum_i \sum_{m=1}^{k}
              r^Y_{i\, j_m(i)}.

    Ranks are exact over all n - 1 other samples (DADApy draws ranks beyond its stored
    neighbour lists at random); each row of Y's distances is scanned once, in blocks.

    References
    ----------
    .. [1] Glielmo, Zeni, Cheng, Laio, Rodriguez. Ranking the information content of distance
       measures. PNAS Nexus 1(2), 2022.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((200, 3))
    >>> information_imbalance(X, 5.0 * X)
    0.01
    """
    X, Y = _checked(X, Y, k)
    neighbours = knn(X, k=k, metric=metric, working_memory=working_memory, device=device)
    return _imbalance(neighbours.indices, Y, ("X", "Y"), metric, working_memory, device)


def information_imbalances(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    k: int = 1,
    metric: str = "euclidean",
    working_memory: float | None = None,
    device: str | torch.device | None = None,
) -> InformationImbalances:
    r"""Information imbalance in both directions, :math:`\Delta(X \to Y)` and
    :math:`\Delta(Y \to X)`, in one call (DADApy's ``return_inf_imb_two_selected_coords``).

    Parameters
    ----------
    X, Y, k, metric, working_memory, device
        As in :func:`information_imbalance`.

    Returns
    -------
    InformationImbalances
        ``x_to_y`` and ``y_to_x``. The pair places the two views on Glielmo et al.'s
        information-imbalance plane: (0, 0) equivalent, (0, 1) X contains Y, (1, 1)
        independent.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((200, 3))
    >>> both = information_imbalances(X, X[:, :1])
    >>> both.x_to_y < both.y_to_x
    True
    """
    X, Y = _checked(X, Y, k)
    nx = knn(X, k=k, name="X", metric=metric, working_memory=working_memory, device=device).indices
    ny = knn(Y, k=k, name="Y", metric=metric, working_memory=working_memory, device=device).indices
    return InformationImbalances(
        _imbalance(nx, Y, ("X", "Y"), metric, working_memory, device),
        _imbalance(ny, X, ("Y", "X"), metric, working_memory, device),
    )

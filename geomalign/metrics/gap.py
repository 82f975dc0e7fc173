"""Modality gap: how far apart paired image and text representations point."""

from __future__ import annotations

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device, unit_scaled
from geomalign.metrics._cka_terms import common_dtype
from geomalign.metrics._errors import UndefinedMeasureError

__all__ = ["modality_gap", "modality_gap_distance"]


def _unit_rows(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, device: str | torch.device | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a pair of equal-width views; return their rows divided by their norms (float64).

    Each view is first divided by a power of two (``unit_scaled``), so that squared norms of
    rows of 1e20 or 1e-30 neither overflow nor vanish; the unit rows do not change.
    """
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"the modality gap compares paired rows in one space, so X and Y must have the same "
            f"width; got X.shape={tuple(X.shape)}, Y.shape={tuple(Y.shape)}."
        )
    dev = resolve_device(X if isinstance(X, torch.Tensor) else Y, device)
    dtype = common_dtype(X, Y)
    units = []
    for name, M in (("X", X), ("Y", Y)):
        T = unit_scaled(as_tensor(M, dev, dtype))[0]
        sq = T.square().sum(dim=1, dtype=torch.float64)
        zero = torch.nonzero(sq == 0).flatten().cpu().numpy()
        if zero.size:
            raise UndefinedMeasureError(
                f"cosine similarity is undefined for all-zero rows; rows {zero[:10].tolist()} "
                f"of {name} are all zero."
            )
        units.append(T.to(torch.float64) / sq.sqrt()[:, None])
    return units[0], units[1]


def modality_gap(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device | None = None,
) -> float:
    """Median cosine similarity between paired rows of two representations of equal width.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        E.g. image representations.
    Y : array-like or torch.Tensor of shape (n_samples, n_features)
        E.g. the paired caption representations, in the same space (same width).
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        A similarity in [-1, 1]: the median over samples of :math:`\\cos(x_i, y_i)`. Higher
        means a smaller gap between the modalities.

    See Also
    --------
    modality_gap_distance : the centroid distance of Liang et al. (2022).

    Notes
    -----
    Dot products and norms are accumulated in float64. Liang et al. (2022) measure the gap as
    the distance between the modality centroids instead (:func:`modality_gap_distance`); the
    median paired cosine is the convention of the seed study and is robust to outlier pairs.

    References
    ----------
    .. [1] Liang, Zhang, Kwon, Yeung, Zou. Mind the Gap: Understanding the Modality Gap in
       Multi-modal Contrastive Representation Learning. NeurIPS 2022.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> modality_gap(X, 2.0 * X)
    1.0
    """
    U, V = _unit_rows(X, Y, device)
    cosines = (U * V).sum(dim=1).clamp_(-1.0, 1.0)
    return float(np.median(cosines.cpu().numpy()))


def modality_gap_distance(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device | None = None,
) -> float:
    r"""Distance between the centroids of the L2-normalised rows of two views (Liang et al.).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        E.g. image representations.
    Y : array-like or torch.Tensor of shape (n_samples, n_features)
        The paired caption representations, in the same space (same width).
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        :math:`\|\frac1n \sum_i x_i / \|x_i\| - \frac1n \sum_i y_i / \|y_i\|\|_2`, in
        [0, 2]: 0 when the two normalised clouds share their centre. A distance: larger means
        a wider gap between the modalities.

    See Also
    --------
    modality_gap : the median cosine similarity of paired rows.

    Notes
    -----
    The gap vector of Liang et al. (2022) is the difference of the modality centroids of
    L2-normalised embeddings; this is its Euclidean norm. Unlike :func:`modality_gap` it does
    not use the pairing of rows (a shuffle of Y leaves it unchanged).

    References
    ----------
    .. [1] Liang, Zhang, Kwon, Yeung, Zou. Mind the Gap: Understanding the Modality Gap in
       Multi-modal Contrastive Representation Learning. NeurIPS 2022.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> round(modality_gap_distance(X, np.array([[0.0, 2.0], [0.0, 3.0]])), 6)
    1.414214
    """
    U, V = _unit_rows(X, Y, device)
    return float(torch.linalg.vector_norm(U.mean(dim=0) - V.mean(dim=0)))

"""Modality gap: how far apart paired image and text representations point."""

from __future__ import annotations

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device
from geomalign.metrics._errors import UndefinedMeasureError
from geomalign.metrics.cka import common_dtype

__all__ = ["modality_gap"]


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

    Notes
    -----
    Dot products and norms are accumulated in float64. Liang et al. (2022) measure the gap as
    the distance between the modality centroids instead; the median paired cosine is the
    convention of the seed study and is robust to outlier pairs.

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
    X = check_representations(X, name="X", context="the modality gap")
    Y = check_representations(Y, name="Y", context="the modality gap")
    check_paired(X, Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"the modality gap compares paired rows in one space, so X and Y must have the same "
            f"width; got X.shape={tuple(X.shape)}, Y.shape={tuple(Y.shape)}."
        )
    dev = resolve_device(X if isinstance(X, torch.Tensor) else Y, device)
    dtype = common_dtype(X, Y)
    Xt, Yt = as_tensor(X, dev, dtype), as_tensor(Y, dev, dtype)
    norms = []
    for name, T in (("X", Xt), ("Y", Yt)):
        sq = T.square().sum(dim=1, dtype=torch.float64)
        zero = torch.nonzero(sq == 0).flatten().cpu().numpy()
        if zero.size:
            raise UndefinedMeasureError(
                f"cosine similarity is undefined for all-zero rows; rows {zero[:10].tolist()} "
                f"of {name} are all zero."
            )
        norms.append(sq.sqrt())
    dots = (Xt * Yt).sum(dim=1, dtype=torch.float64)
    cosines = (dots / (norms[0] * norms[1])).clamp_(-1.0, 1.0)
    return float(np.median(cosines.cpu().numpy()))

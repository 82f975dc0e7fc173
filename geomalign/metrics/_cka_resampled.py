"""CKA on many resamples of the same rows at once (the bootstrap and half-sampling intervals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device, take_rows, unit_scaled
from geomalign.metrics.cka import (
    _check_options,
    _feature_h,
    _feature_view,
    _linear_gram,
    check_cka_samples,
    cka,
    cka_ratio,
    common_dtype,
    use_gram_form,
)

__all__ = ["resampled_cka"]


# float64 bytes per gathered Gram entry of one resample (both views' Grams and a product)
_GATHER_BYTES = 8 * 4
_GATHER_BUDGET = 256 * 2**20


def _gathered_grams(K: torch.Tensor, idx: torch.Tensor, debiased: bool):
    """Each resample's Gram matrices ``K[r][:, r]`` (S, m, m), in the form of ``_gram_view``:
    double-centred (biased), or with a zero diagonal and their row sums (debiased)."""
    G = K[idx[:, :, None], idx[:, None, :]]
    if debiased:
        G.diagonal(dim1=1, dim2=2).zero_()
        return G, G.sum(dim=2)
    G -= G.mean(dim=1, keepdim=True)
    G -= G.mean(dim=2, keepdim=True)
    return G, None


def _stacked_h(
    U: torch.Tensor, u1: torch.Tensor | None, V: torch.Tensor, v1: torch.Tensor | None
) -> torch.Tensor:
    """``_gram_h`` of every pair of a stack of Gram views (S,)."""
    h = (U * V).sum(dim=(1, 2))
    if u1 is not None and v1 is not None:
        m = U.shape[1]
        h += u1.sum(dim=1) * v1.sum(dim=1) / ((m - 1) * (m - 2))
        h -= 2.0 / (m - 2) * (u1 * v1).sum(dim=1)
    return h


def resampled_cka(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    sigma_factor: float = 1.0,
    sigma: float | None = None,
    median: str = "pairs",
    device: str | torch.device | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``rows -> [cka(X[r], Y[r], ...) for r in rows]`` (``rows`` of shape (S, m)).

    The arguments are checked once. Linear CKA of resamples smaller than the widths (the Gram
    form) gathers each resample's Gram entries ``K[r][:, r]`` from the two n x n Gram matrices
    computed once (re-centring them on the resample's rows), so a resample costs m^2 operations
    instead of two products; the feature form and the RBF kernel compute each resample afresh.
    """
    _check_options(kernel, debiased, sigma_factor, sigma, median)
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    options: dict[str, Any] = dict(kernel=kernel, debiased=debiased, sigma_factor=sigma_factor,
                                   sigma=sigma, median=median, device=device)  # fmt: skip
    dev = resolve_device(X if isinstance(X, torch.Tensor) else Y, device)
    dtype = common_dtype(X, Y)
    Xt, _ = unit_scaled(as_tensor(X, dev, dtype))
    Yt, _ = unit_scaled(as_tensor(Y, dev, dtype))
    p, q = Xt.shape[1], Yt.shape[1]
    grams: list[torch.Tensor] = []

    def at(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        m = rows.shape[1]
        check_cka_samples(m, debiased)
        if kernel != "linear":
            return np.array([cka(take_rows(Xt, r), take_rows(Yt, r), **options) for r in rows])
        if not use_gram_form(m, p, q):
            return np.array([_feature_cka(Xt[r], Yt[r], debiased) for r in rows])
        if not grams:
            grams.extend(_linear_gram(T) for T in (Xt, Yt))
        out = np.empty(len(rows))
        step = max(1, _GATHER_BUDGET // (_GATHER_BYTES * m * m))
        for start in range(0, len(rows), step):
            idx = torch.as_tensor(rows[start : start + step], device=dev)
            (U, u1), (V, v1) = (_gathered_grams(K, idx, debiased) for K in grams)
            h_xy, h_xx, h_yy = (
                _stacked_h(A, a1, B, b1).tolist()
                for A, a1, B, b1 in ((U, u1, V, v1), (U, u1, U, u1), (V, v1, V, v1))
            )
            out[start : start + len(idx)] = [
                cka_ratio(*h, ("X", "Y")) for h in zip(h_xy, h_xx, h_yy, strict=True)
            ]
        return out

    return at


def _feature_cka(A: torch.Tensor, B: torch.Tensor, debiased: bool) -> float:
    """Linear CKA of checked, scaled rows in the feature form."""
    u, v = _feature_view(A, debiased), _feature_view(B, debiased)
    return cka_ratio(_feature_h(u, v), u.self_h, v.self_h, ("X", "Y"))

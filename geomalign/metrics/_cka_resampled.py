"""CKA on many resamples or permutations of the same rows at once (intervals and nulls)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device, take_rows, unit_scaled
from geomalign.metrics._cka_terms import (
    _feature_h,
    _feature_view,
    _FeatureView,
    _GramView,
    _linear_gram,
    check_cka_samples,
    cka_norm,
    cka_ratio,
    common_dtype,
    use_gram_form,
)
from geomalign.metrics.cka import _check_options, _views, cka

__all__ = ["resampled_cka", "shuffled_cka"]


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


def shuffled_cka(
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
    """Return ``perms -> [cka(X, Y[perm], ...) for perm in perms]``, reusing both views'
    self-terms.

    Each permutation then costs one cross term: n^2 operations in the Gram form (all
    permutations' permuted Gram matrices gathered and reduced together), one X^T Y product in
    the feature form.
    """
    u, v = _views(X, Y, kernel, debiased, sigma_factor, sigma, median, device)
    norm = cka_norm(u.self_h, v.self_h, ("X", "Y"))

    def at(perms: np.ndarray) -> np.ndarray:
        perms = np.asarray(perms, dtype=np.int64)
        if isinstance(u, _GramView) and isinstance(v, _GramView):
            h = _permuted_gram_h(u, v, perms)
        else:
            dev = u.X.device  # type: ignore[union-attr]
            h = np.empty(len(perms))
            for i, perm in enumerate(perms):
                idx = torch.as_tensor(perm, device=dev)
                r = None if v.r is None else v.r[idx]  # type: ignore[union-attr]
                moved = _FeatureView(v.X[idx], v.mean, r, v.self_h)  # type: ignore[union-attr]
                h[i] = _feature_h(u, moved)  # type: ignore[arg-type]
        return h / norm

    return at


# float64 bytes of permuted Gram entries gathered at once
_PERMUTED_BYTES = 64 * 2**20


def _permuted_gram_h(u: _GramView, v: _GramView, perms: np.ndarray) -> np.ndarray:
    """``_gram_h(u, v permuted)`` for each row of ``perms`` (S, n): the entries ``K[p][:, p]``
    of all permutations gathered in chunks and reduced against ``u``'s in one product."""
    n = u.K.shape[0]
    flat_u = u.K.reshape(-1)
    out = np.empty(len(perms))
    step = max(1, _PERMUTED_BYTES // (8 * n * n))
    for start in range(0, len(perms), step):
        idx = torch.as_tensor(perms[start : start + step], device=u.K.device)
        moved = v.K[idx[:, :, None], idx[:, None, :]].reshape(len(idx), -1)
        h = moved @ flat_u
        if u.k1 is not None and v.k1 is not None:
            k1 = v.k1[idx]
            h += float(u.k1.sum()) * k1.sum(dim=1) / ((n - 1) * (n - 2))
            h -= 2.0 / (n - 2) * (k1 @ u.k1)
        out[start : start + len(idx)] = h.cpu().numpy()
    return out

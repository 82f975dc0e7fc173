"""Linear CKA between every pair of layers under many shuffles, from pieces computed once.

Under a permutation ``P`` of the second view's rows, biased linear CKA between layers ``i`` and
``j`` is ``<K_i, P L_j P^T> / (|K_i| |L_j|)`` with ``K_i, L_j`` the centred Gram matrices of the
layers (centring commutes with a permutation of rows, and the norms do not change). The Gram
matrices and their norms are computed once per map; each permutation then costs one product of
the stacked Gram matrices (n^2 per layer pair) instead of a fresh map of L^2 CKA evaluations.
When the stacked features are narrower than that, the products ``X_i^T P Y_j`` of the centred
features are formed in one multiplication instead (``|X_i^T P Y_j|_F^2 = <K_i, P L_j P^T>``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from geomalign.metrics._cka_terms import ACCUMULATION_ROWS, common_dtype

__all__ = ["linear_cka_on_resamples", "linear_cka_under_permutations"]

# Gram matrices of both views are kept while their float64 stack is at most this many bytes.
_GRAM_BYTES = 512 * 2**20


def _centred(layers: Sequence[np.ndarray], device: torch.device | None) -> list[torch.Tensor]:
    out = []
    for L in layers:
        t = torch.as_tensor(np.asarray(L), dtype=torch.float64, device=device)
        out.append(t - t.mean(dim=0, keepdim=True))
    return out


def _gram_form(Xc: list[torch.Tensor], Yc: list[torch.Tensor]) -> bool:
    """Whether the stacked Gram matrices fit in memory and cost less than the feature form."""
    n = Xc[0].shape[0]
    width_x, width_y = sum(x.shape[1] for x in Xc), sum(y.shape[1] for y in Yc)
    gram_cost, feature_cost = n * len(Xc) * len(Yc), width_x * width_y
    return gram_cost <= feature_cost and (len(Xc) + len(Yc)) * n * n * 8 <= _GRAM_BYTES


def linear_cka_on_resamples(
    Xs: Sequence[np.ndarray],
    Ys: Sequence[np.ndarray],
    resamples: Sequence[np.ndarray],
    *,
    device: torch.device | None = None,
) -> np.ndarray | None:
    """Biased linear CKA of every (Xs[i][r], Ys[j][r]) pair for each resample ``r`` of rows,
    shape (len(resamples), len(Xs), len(Ys)), or None where the Gram form does not pay.

    Each resample's centred Gram matrices are the entries ``K[r][:, r]`` of the full Gram
    matrices (computed once) centred again on the resample's rows; a resample then costs one
    product of the stacked gathered matrices. Equal to :func:`geomalign.metrics.cka_matrix` of
    the resampled layers up to rounding. Computed on ``device`` (default: the CPU).
    """
    Xc, Yc = _centred(Xs, device), _centred(Ys, device)
    if not _gram_form(Xc, Yc):
        return None
    K, L = torch.stack([x @ x.T for x in Xc]), torch.stack([y @ y.T for y in Yc])
    rows = np.asarray(resamples, dtype=np.int64).reshape(len(resamples), -1)
    out = np.empty((len(rows), len(Xc), len(Yc)))
    for start, idx in _chunks(rows, len(Xc) + len(Yc), K.device):
        Kb, Lb = (_recentred(_gathered(G, idx)) for G in (K, L))
        norms = Kb.norm(dim=2)[:, :, None] * Lb.norm(dim=2)[:, None, :]
        out[start : start + len(idx)] = (Kb @ Lb.transpose(1, 2) / norms).cpu().numpy()
    return out


# float64 bytes of gathered Gram entries held at once
_GATHER_BYTES = 64 * 2**20


def _chunks(
    rows: np.ndarray, n_grams: int, device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, rows[start:stop])`` on ``device``, so that gathering ``n_grams`` Gram matrices
    for the chunk's rows stays within :data:`_GATHER_BYTES`."""
    step = max(1, _GATHER_BYTES // (8 * n_grams * rows.shape[1] ** 2))
    for start in range(0, len(rows), step):
        yield start, torch.as_tensor(rows[start : start + step], device=device)


def _gathered(G: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``G[:, r][:, :, r]`` of stacked Gram matrices (S, n, n) for each row ``r`` of ``idx``
    (B, m): shape (B, S, m, m)."""
    return G[:, idx[:, :, None], idx[:, None, :]].transpose(0, 1)


def _recentred(G: torch.Tensor) -> torch.Tensor:
    """Stacked Gram matrices (B, S, m, m) double-centred, flattened to (B, S, m * m)."""
    G = G - G.mean(dim=2, keepdim=True)
    G -= G.mean(dim=3, keepdim=True)
    return G.reshape(*G.shape[:2], -1)


def linear_cka_under_permutations(
    Xs: Sequence[np.ndarray],
    Ys: Sequence[np.ndarray],
    perms: Sequence[np.ndarray],
    *,
    device: torch.device | None = None,
) -> np.ndarray:
    """Biased linear CKA of every (Xs[i], Ys[j][perm]) pair, shape (len(perms), len(Xs), len(Ys)).

    Equal to :func:`geomalign.metrics.cka_matrix` of ``Xs`` and the permuted ``Ys`` for each
    permutation, up to rounding; every layer must have some variance (the caller checked the
    observed map). Computed on ``device`` (default: the CPU).
    """
    Xc, Yc = _centred(Xs, device), _centred(Ys, device)
    n = Xc[0].shape[0]
    gram = _gram_form(Xc, Yc)
    out = np.empty((len(perms), len(Xc), len(Yc)))
    if gram:
        K = torch.stack([x @ x.T for x in Xc]).reshape(len(Xc), n * n)
        L = torch.stack([y @ y.T for y in Yc])
        norms = K.norm(dim=1)[:, None] * L.reshape(len(Yc), -1).norm(dim=1)[None, :]
        order = np.asarray(perms, dtype=np.int64).reshape(len(perms), n)
        for start, idx in _chunks(order, len(Yc), L.device):
            moved = _gathered(L, idx).reshape(len(idx), len(Yc), n * n)
            out[start : start + len(idx)] = (K @ moved.transpose(1, 2) / norms).cpu().numpy()
        return out
    # feature form: one product of the stacked centred features per permutation, taken in the
    # inputs' precision (float32 for float32 rows) and accumulated in float64 over row blocks
    dtype = common_dtype(*Xs, *Ys)
    A, B = torch.cat(Xc, dim=1).to(dtype), torch.cat(Yc, dim=1).to(dtype)
    ex = np.cumsum([0] + [x.shape[1] for x in Xc])[:-1]
    ey = np.cumsum([0] + [y.shape[1] for y in Yc])[:-1]
    self_x = np.array([float((x.T @ x).square().sum()) for x in Xc])
    self_y = np.array([float((y.T @ y).square().sum()) for y in Yc])
    norms_np = np.sqrt(self_x[:, None] * self_y[None, :])
    C = torch.empty((A.shape[1], B.shape[1]), dtype=torch.float64, device=B.device)
    for p, perm in enumerate(perms):
        moved = B[torch.as_tensor(np.asarray(perm, dtype=np.int64), device=B.device)]
        C.zero_()
        for start in range(0, n, ACCUMULATION_ROWS):
            stop = start + ACCUMULATION_ROWS
            C += (A[start:stop].T @ moved[start:stop]).to(torch.float64)
        squares = C.square().cpu().numpy()
        out[p] = np.add.reduceat(np.add.reduceat(squares, ex, axis=0), ey, axis=1) / norms_np
    return out

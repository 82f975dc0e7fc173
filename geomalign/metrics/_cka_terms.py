"""The HSIC terms behind CKA: centred products and Gram matrices, in the feature or the Gram form.

Products are taken in the input precision (float32 for float32/float16/bfloat16 inputs) over row
blocks, and every block's product, every reduction and every norm is accumulated in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geomalign.metrics._arrays import column_sums
from geomalign.metrics._errors import UndefinedMeasureError, check_min_samples

__all__ = [
    "centred_product",
    "check_cka_samples",
    "cka_norm",
    "cka_ratio",
    "common_dtype",
    "use_gram_form",
]

# Rows per float32 product before its result is added to a float64 accumulator.
ACCUMULATION_ROWS = 16384


def centred_product(
    A: torch.Tensor, mean_a: torch.Tensor, B: torch.Tensor, mean_b: torch.Tensor
) -> torch.Tensor:
    """Return ``(A - mean_a)^T (B - mean_b)`` in float64, accumulated over row blocks.

    The centred blocks and the block product go into buffers allocated once: fresh blocks of
    this size would cost a page fault per 4 KiB each time.
    """
    out = torch.zeros((A.shape[1], B.shape[1]), dtype=torch.float64, device=A.device)
    ma, mb = mean_a.to(A.dtype), mean_b.to(B.dtype)
    rows = min(ACCUMULATION_ROWS, A.shape[0])
    buf_a = torch.empty((rows, A.shape[1]), dtype=A.dtype, device=A.device)
    buf_b = buf_a if B is A else torch.empty((rows, B.shape[1]), dtype=B.dtype, device=B.device)
    product = torch.empty((A.shape[1], B.shape[1]), dtype=A.dtype, device=A.device)
    for start in range(0, A.shape[0], rows):
        size = min(rows, A.shape[0] - start)
        a = torch.sub(A[start : start + size], ma, out=buf_a[:size])
        b = a if B is A else torch.sub(B[start : start + size], mb, out=buf_b[:size])
        out.add_(torch.mm(a.T, b, out=product))  # accumulated in float64
    return out


def _sq(M: torch.Tensor) -> float:
    """Squared Frobenius norm in float64 (never ``Tensor.norm`` on float32, see DESIGN.md)."""
    flat = M.reshape(-1).to(torch.float64)
    return float(torch.dot(flat, flat))


def _debias_terms(n: int) -> tuple[float, float]:
    return n / (n - 2), 1.0 / ((n - 1) * (n - 2))


@dataclass
class _FeatureView:
    """One view in the feature-space form: its data, mean and HSIC pieces."""

    X: torch.Tensor
    mean: torch.Tensor
    r: torch.Tensor | None  # squared norms of centred rows (debiased only)
    self_h: float


@dataclass
class _GramView:
    """One view in the Gram form: its centred (biased) or zero-diagonal (debiased) Gram matrix."""

    K: torch.Tensor
    k1: torch.Tensor | None  # row sums (debiased only)
    self_h: float


def _feature_view(X: torch.Tensor, debiased: bool) -> _FeatureView:
    n = X.shape[0]
    mean = column_sums(X) / n
    self_h = _sq(centred_product(X, mean, X, mean))
    r = None
    if debiased:
        r = torch.empty(n, dtype=torch.float64, device=X.device)
        m = mean.to(X.dtype)
        for start in range(0, n, ACCUMULATION_ROWS):
            block = X[start : start + ACCUMULATION_ROWS] - m
            r[start : start + ACCUMULATION_ROWS] = block.square().sum(dim=1, dtype=torch.float64)
        a, b = _debias_terms(n)
        self_h += -a * float(r @ r) + b * float(r.sum()) ** 2
    return _FeatureView(X, mean, r, self_h)


def _feature_h(u: _FeatureView, v: _FeatureView) -> float:
    h = _sq(centred_product(u.X, u.mean, v.X, v.mean))
    if u.r is not None and v.r is not None:
        a, b = _debias_terms(u.X.shape[0])
        h += -a * float(u.r @ v.r) + b * float(u.r.sum()) * float(v.r.sum())
    return h


# Bytes of the centred layers stacked side by side for one product, and of its float64 result.
_STACK_BYTES = 256 * 2**20


def _stacks(vs: list[_FeatureView], out_rows: int) -> list[list[int]]:
    """Consecutive groups of ``vs`` whose centred stack (and its float64 product with
    ``out_rows`` columns) stay within :data:`_STACK_BYTES`."""
    n = vs[0].X.shape[0]
    per_column = max(n * vs[0].X.element_size(), 8 * out_rows)
    groups: list[list[int]] = [[]]
    width = 0
    for j, v in enumerate(vs):
        d = v.X.shape[1]
        if groups[-1] and (width + d) * per_column > _STACK_BYTES:
            groups.append([])
            width = 0
        groups[-1].append(j)
        width += d
    return groups


def feature_pair_h(
    us: list[_FeatureView], vs: list[_FeatureView], *, symmetric: bool
) -> np.ndarray:
    """``_feature_h(us[i], vs[j])`` for every pair, shape (len(us), len(vs)); with ``symmetric``
    (``vs`` is ``us``) only ``j >= i`` is filled.

    The layers of ``vs`` are centred once and stacked side by side, in groups of bounded
    memory; each layer of ``us`` meets a group in one product (row blocks accumulated in
    float64, as :func:`centred_product`) instead of one small product per pair.
    """
    n = us[0].X.shape[0]
    out = np.full((len(us), len(vs)), np.nan)
    rows = min(ACCUMULATION_ROWS, n)
    for group in _stacks(vs, max(u.X.shape[1] for u in us)):
        B = torch.cat([vs[j].X - vs[j].mean.to(vs[j].X.dtype) for j in group], dim=1)
        edges = np.cumsum([0] + [vs[j].X.shape[1] for j in group])
        for i, u in enumerate(us):
            first = next((k for k, j in enumerate(group) if j >= i), None) if symmetric else 0
            if first is None:
                continue
            A = u.X - u.mean.to(u.X.dtype)
            part = B[:, int(edges[first]) :]
            C = torch.zeros((A.shape[1], part.shape[1]), dtype=torch.float64, device=A.device)
            for start in range(0, n, rows):
                C += (A[start : start + rows].T @ part[start : start + rows]).to(torch.float64)
            squares = C.square_().sum(dim=0).cpu().numpy()
            sums = np.add.reduceat(squares, edges[first:-1] - edges[first])
            for k, h in zip(range(first, len(group)), sums, strict=True):
                v = vs[group[k]]
                if u.r is not None and v.r is not None:
                    a, b = _debias_terms(n)
                    h += -a * float(u.r @ v.r) + b * float(u.r.sum()) * float(v.r.sum())
                out[i, group[k]] = h
    return out


def gram_pair_h(us: list[_GramView], vs: list[_GramView], *, symmetric: bool) -> np.ndarray:
    """``_gram_h(us[i], vs[j])`` for every pair, shape (len(us), len(vs)).

    The Gram matrices are flattened and stacked in column chunks of bounded memory, and each
    chunk of every pair's inner products is one product of the two stacks, instead of one
    pass over two n x n matrices per pair.
    """
    n = us[0].K.shape[0]
    entries = n * n
    step = max(1, _STACK_BYTES // (8 * (len(us) + len(vs))))
    H = torch.zeros((len(us), len(vs)), dtype=torch.float64, device=us[0].K.device)
    for start in range(0, entries, step):
        A = torch.stack([u.K.reshape(-1)[start : start + step] for u in us])
        B = A if symmetric else torch.stack([v.K.reshape(-1)[start : start + step] for v in vs])
        H += A @ B.T
    if us[0].k1 is not None:  # debiased: the row-sum terms of _gram_h
        U1 = torch.stack([u.k1 for u in us])  # type: ignore[misc]
        V1 = U1 if symmetric else torch.stack([v.k1 for v in vs])  # type: ignore[misc]
        H += torch.outer(U1.sum(dim=1), V1.sum(dim=1)) / ((n - 1) * (n - 2))
        H -= 2.0 / (n - 2) * (U1 @ V1.T)
    return H.cpu().numpy()


def _gram_view(K: torch.Tensor, debiased: bool) -> _GramView:
    """Wrap a float64 Gram matrix (modified in place)."""
    n = K.shape[0]
    if debiased:
        K.fill_diagonal_(0.0)
        k1 = K.sum(dim=1)
        total = float(k1.sum())
        self_h = _sq(K) + total**2 / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ k1)
        return _GramView(K, k1, self_h)
    K -= K.mean(dim=0, keepdim=True)
    K -= K.mean(dim=1, keepdim=True)
    return _GramView(K, None, _sq(K))


def _gram_h(u: _GramView, v: _GramView) -> float:
    h = float(torch.dot(u.K.reshape(-1), v.K.reshape(-1)))
    if u.k1 is not None and v.k1 is not None:
        n = u.K.shape[0]
        h += float(u.k1.sum()) * float(v.k1.sum()) / ((n - 1) * (n - 2))
        h -= 2.0 / (n - 2) * float(u.k1 @ v.k1)
    return h


def _linear_gram(X: torch.Tensor) -> torch.Tensor:
    Xc = X - (column_sums(X) / X.shape[0]).to(X.dtype)
    return (Xc @ Xc.T).to(torch.float64)


def _median_sq_distance(D2: torch.Tensor, median: str) -> float:
    """Median squared distance: over distinct pairs (lower middle), or over all n^2 entries.

    ``"all"`` includes the zero diagonal and averages the two middle entries of an even count,
    as ``np.median`` of the full matrix in Kornblith et al.'s code.
    """
    if median == "pairs":
        iu = torch.triu_indices(D2.shape[0], D2.shape[0], offset=1, device=D2.device)
        return float(torch.median(D2[iu[0], iu[1]]))
    flat = D2.reshape(-1)
    half = flat.numel() // 2
    upper = float(torch.kthvalue(flat, half + 1).values)
    if flat.numel() % 2:
        return upper
    return 0.5 * (float(torch.kthvalue(flat, half).values) + upper)


def _rbf_gram(
    X: torch.Tensor, exponent: int, sigma: float | None, sigma_factor: float, median: str, name: str
) -> torch.Tensor:
    """RBF Gram matrix (float64) of rows scaled by ``2**-exponent`` (see ``unit_scaled``)."""
    Xc = X - (column_sums(X) / X.shape[0]).to(X.dtype)
    r = Xc.square().sum(dim=1, dtype=torch.float64)
    D2 = (Xc @ Xc.T).to(torch.float64).mul_(-2.0).add_(r).add_(r[:, None]).clamp_(min=0.0)
    D2.fill_diagonal_(0.0)
    if sigma is not None:  # the same bandwidth in the units of the scaled rows
        scaled_sigma = math.ldexp(sigma, -exponent)
        two_sigma2 = 2.0 * scaled_sigma * scaled_sigma
    else:
        median_d2 = _median_sq_distance(D2, median)
        if median_d2 == 0.0:
            raise UndefinedMeasureError(
                f"the RBF bandwidth is a multiple of the median pairwise distance, which is 0 "
                f"for {name} (more than half of its row pairs are duplicates)."
            )
        two_sigma2 = 2.0 * sigma_factor**2 * median_d2
    if not two_sigma2 > 0.0:  # a sigma far below the rows' scale underflows when squared
        raise ValueError(
            f"sigma={sigma!r} is too small for the scale of {name} (largest |x| about "
            f"2**{exponent}): every off-diagonal kernel entry is 0."
        )
    return D2.mul_(-1.0 / two_sigma2).exp_()


def common_dtype(*arrays: np.ndarray | torch.Tensor) -> torch.dtype:
    """float64 if any checked input is float64, else float32: the precision of the products."""
    wide = any(a.dtype in (np.float64, torch.float64) for a in arrays)
    return torch.float64 if wide else torch.float32


def use_gram_form(n: int, p: int, q: int) -> bool:
    """True when the Gram form (cost n^2 (p + q)) is cheaper than the feature form."""
    return n * (p + q) < p * p + q * q + p * q


def cka_ratio(h_xy: float, h_xx: float, h_yy: float, names: tuple[str, str]) -> float:
    """CKA from (possibly debiased) HSIC values; raise where the self-terms are not positive."""
    return float(h_xy / cka_norm(h_xx, h_yy, names))


def cka_norm(h_xx: float, h_yy: float, names: tuple[str, str]) -> float:
    """``sqrt(h_xx * h_yy)``, CKA's denominator; raise where the self-terms are not positive."""
    for h, name in ((h_xx, names[0]), (h_yy, names[1])):
        if not h > 0.0:
            raise UndefinedMeasureError(
                f"CKA is undefined: the HSIC of {name} with itself is {h:.3g} (expected > 0). "
                f"{name} has (almost) no variance across samples, or too few samples for the "
                "debiased estimator."
            )
    return math.sqrt(h_xx * h_yy)


def check_cka_samples(n: int, debiased: bool) -> None:
    """UndefinedMeasureError below the smallest n at which (debiased) CKA depends on the data."""
    if debiased:
        check_min_samples(n, 4, "debiased CKA", "the unbiased HSIC estimator divides by n (n - 3)")
    else:
        check_min_samples(
            n, 3, "CKA", "the centred kernel matrices of any two views of 2 samples are "
            "proportional, so CKA would be 1 whatever the data"
        )  # fmt: skip

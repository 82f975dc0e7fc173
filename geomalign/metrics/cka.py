"""Centered kernel alignment (CKA): linear, debiased and RBF, for one pair or a layer x layer map.

Products are taken in the input precision (float32 for float32/float16/bfloat16 inputs) over row
blocks, and every block's product, every reduction and every norm is accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, column_sums, resolve_device, unit_scaled
from geomalign.metrics._errors import UndefinedMeasureError, check_min_samples

__all__ = ["cka", "cka_matrix", "shuffled"]

KERNELS = ("linear", "rbf")
MEDIANS = ("pairs", "all")
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


def _positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, (int, float, np.integer, np.floating)) and 0 < value < math.inf
    ):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")


def _check_options(
    kernel: str, debiased: bool, sigma_factor: float, sigma: float | None, median: str
) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
    if not isinstance(debiased, bool):
        raise TypeError(f"debiased must be True or False; got {debiased!r}.")
    _positive(sigma_factor, "sigma_factor")
    if median not in MEDIANS:
        raise ValueError(f"median must be one of {MEDIANS}; got {median!r}.")
    if sigma is not None:
        _positive(sigma, "sigma")
        if sigma_factor != 1.0 or median != "pairs":
            raise ValueError(
                "sigma is an absolute bandwidth: sigma_factor and median set the median-based "
                f"one; got sigma={sigma!r} with sigma_factor={sigma_factor!r}, median={median!r}."
            )


def check_cka_samples(n: int, debiased: bool) -> None:
    """UndefinedMeasureError below the smallest n at which (debiased) CKA depends on the data."""
    if debiased:
        check_min_samples(n, 4, "debiased CKA", "the unbiased HSIC estimator divides by n (n - 3)")
    else:
        check_min_samples(
            n, 3, "CKA", "the centred kernel matrices of any two views of 2 samples are "
            "proportional, so CKA would be 1 whatever the data"
        )  # fmt: skip


def cka(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    sigma_factor: float = 1.0,
    sigma: float | None = None,
    median: str = "pairs",
    device: str | torch.device | None = None,
) -> float:
    r"""Centered kernel alignment between two representations of the same samples.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features_x)
    Y : array-like or torch.Tensor of shape (n_samples, n_features_y)
        Rows are the same stimuli in the same order; widths may differ.
    kernel : {"linear", "rbf"}, default="linear"
        Linear kernel, or Gaussian RBF ``exp(-|x - x'|^2 / (2 sigma^2))``.
    debiased : bool, default=False
        Use the unbiased HSIC estimator (Song et al. 2012), which removes the upward bias of
        CKA at small n; needs n >= 4 and can be slightly negative.
    sigma_factor : float, default=1.0
        RBF bandwidth ``sigma`` as a multiple of the median pairwise distance, computed per
        view. Ignored for the linear kernel.
    median : {"pairs", "all"}, default="pairs"
        RBF only: the median of the squared distances over distinct pairs (the lower middle
        value), or over all n^2 entries of the distance matrix, zero diagonal included, with
        the two middle values averaged (Kornblith et al.'s code, ``threshold`` =
        ``sigma_factor``).
    sigma : float, optional
        RBF only: an absolute bandwidth, in the units of the rows, used for both views instead
        of the median rule (then ``sigma_factor`` and ``median`` stay at their defaults). The
        measure is then not scale-invariant.
    device : str or torch.device, optional
        Where to compute; default: the device of a tensor input, else the CPU.

    Returns
    -------
    float
        CKA similarity, in [0, 1] for the biased estimator; 1 when ``Y`` is an orthogonal
        transform and isotropic scaling of ``X`` (plus any translation).

    Raises
    ------
    UndefinedMeasureError
        On fewer than 3 samples (4 when debiased), where CKA is 1 (or the estimator divides by
        0) whatever the data; or when a view has no variance.

    See Also
    --------
    cka_matrix : layer x layer maps that compute each layer's self-term once.
    StreamingLinearCKA : exact linear CKA accumulated over row blocks.

    Notes
    -----
    With centred :math:`X, Y`, linear CKA (Kornblith et al. 2019) is

    .. math:: \mathrm{CKA} = \frac{\|Y^\top X\|_F^2}{\|X^\top X\|_F \, \|Y^\top Y\|_F},

    computed in this feature-space form (cost :math:`O(n p q)`) unless the Gram form
    (:math:`O(n^2 (p + q))`) is cheaper. The debiased form replaces each HSIC by its unbiased
    estimate, in feature space
    :math:`\|Y^\top X\|_F^2 - \frac{n}{n-2} r_x \cdot r_y + \frac{\sum r_x \sum r_y}{(n-1)(n-2)}`
    with :math:`r` the squared norms of the centred rows (Nguyen et al. 2021). The RBF form
    always builds the two n x n Gram matrices. Departure: by default the RBF bandwidth uses
    the median of the distances between distinct samples (Kornblith et al. take the median
    including the zero diagonal: ``median="all"``).

    Each view is first divided by a power of two when its largest entry lies outside
    :math:`[2^{-24}, 2^{24}]`, so that float32 products neither overflow nor underflow; CKA
    (with a median bandwidth) is invariant to that scaling.

    References
    ----------
    .. [1] Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations
       Revisited. ICML 2019.
    .. [2] Song, Smola, Gretton, Bedo, Borgwardt. Feature Selection via Dependence Maximization.
       JMLR 13, 2012.
    .. [3] Nguyen, Raghu, Kornblith. Do Wide and Deep Networks Learn the Same Things? ICLR 2021.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((50, 8))
    >>> round(cka(X, 3.0 * X + 1.0), 6)
    1.0
    """
    u, v = _views(X, Y, kernel, debiased, sigma_factor, sigma, median, device)
    pair_h = _gram_h if isinstance(u, _GramView) else _feature_h
    return cka_ratio(pair_h(u, v), u.self_h, v.self_h, ("X", "Y"))  # type: ignore[arg-type]


def _views(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    kernel: str,
    debiased: bool,
    sigma_factor: float,
    sigma: float | None,
    median: str,
    device: str | torch.device | None,
) -> tuple[_FeatureView, _FeatureView] | tuple[_GramView, _GramView]:
    """Validate a pair and build both views in the cheaper form."""
    _check_options(kernel, debiased, sigma_factor, sigma, median)
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_paired(X, Y)
    check_cka_samples(X.shape[0], debiased)
    dev = resolve_device(X if isinstance(X, torch.Tensor) else Y, device)
    dtype = common_dtype(X, Y)
    (Xt, ex), (Yt, ey) = (
        unit_scaled(as_tensor(X, dev, dtype)),
        unit_scaled(as_tensor(Y, dev, dtype)),
    )
    (n, p), q = Xt.shape, Yt.shape[1]
    if kernel == "rbf":
        Kx = _rbf_gram(Xt, ex, sigma, sigma_factor, median, "X")
        Ky = _rbf_gram(Yt, ey, sigma, sigma_factor, median, "Y")
        return _gram_view(Kx, debiased), _gram_view(Ky, debiased)
    if use_gram_form(n, p, q):
        return _gram_view(_linear_gram(Xt), debiased), _gram_view(_linear_gram(Yt), debiased)
    return _feature_view(Xt, debiased), _feature_view(Yt, debiased)


def shuffled(
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


def cka_matrix(
    Xs: Sequence[np.ndarray | torch.Tensor],
    Ys: Sequence[np.ndarray | torch.Tensor] | None = None,
    *,
    debiased: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Linear CKA between every layer of ``Xs`` and every layer of ``Ys``.

    Each layer's self-term (its centred Gram matrix, or its :math:`X^\\top X`) is computed once,
    so each further pair costs one product: :math:`n^2` operations in the Gram form, one
    :math:`X^\\top Y` in the feature form.

    Parameters
    ----------
    Xs : sequence of array-like of shape (n_samples, n_features_l)
        Representations per layer (widths may differ between layers); all are held in memory.
    Ys : sequence of array-like of shape (n_samples, n_features_m), optional
        Second set of layers; default: ``Xs`` itself, giving a symmetric map (only the upper
        triangle is computed).
    debiased : bool, default=False
        Use unbiased HSIC, as in :func:`cka`.
    device : str or torch.device, optional
        Where to compute; default: the device of the first layer if it is a tensor, else CPU.

    Returns
    -------
    numpy.ndarray of shape (len(Xs), len(Ys))
        ``out[i, j] == cka(Xs[i], Ys[j], debiased=debiased)`` up to rounding.

    Notes
    -----
    The Gram form is used when it needs fewer multiply-adds (``n^2`` per width of each layer
    for its Gram matrix, then ``n^2`` per pair, against ``n d_x d_y`` per pair: up to n of a
    few thousand rows at width 128 for a 33 x 33 map) and its float64 n x n matrices, one per
    layer, fit in 1 GiB.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((40, 6))
    >>> cka_matrix([X, 2 * X]).round(6).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    _check_options("linear", debiased, 1.0, None, "pairs")
    symmetric = Ys is None
    groups: dict[str, Sequence[np.ndarray | torch.Tensor]] = (
        {"Xs": Xs} if Ys is None else {"Xs": Xs, "Ys": Ys}
    )
    checked: dict[str, list[np.ndarray | torch.Tensor]] = {}
    for group, layers in groups.items():
        if isinstance(layers, (np.ndarray, torch.Tensor)) or len(layers) == 0:
            raise ValueError(f"{group} must be a non-empty sequence of 2-D arrays (one per layer).")
        checked[group] = [
            check_representations(L, name=f"{group}[{i}]") for i, L in enumerate(layers)
        ]
    first = checked["Xs"][0]
    every = [L for layers in checked.values() for L in layers]
    for i, L in enumerate(every[1:], start=1):
        check_paired(first, L, x_name="Xs[0]", y_name=_layer_name(i, len(checked["Xs"])))
    check_cka_samples(first.shape[0], debiased)
    dev = resolve_device(first, device)
    dtype = common_dtype(*every)
    n = first.shape[0]
    widths = [[L.shape[1] for L in layers] for layers in checked.values()]
    gram = _gram_form_pays(n, widths[0], widths[-1], symmetric)

    def view(L: np.ndarray | torch.Tensor) -> _FeatureView | _GramView:
        t, _ = unit_scaled(as_tensor(L, dev, dtype))
        return _gram_view(_linear_gram(t), debiased) if gram else _feature_view(t, debiased)

    pair_h = _gram_h if gram else _feature_h
    us = [view(L) for L in checked["Xs"]]
    vs = us if symmetric else [view(L) for L in checked["Ys"]]
    out = np.empty((len(us), len(vs)))
    for i, u in enumerate(us):
        for j, v in enumerate(vs):
            if symmetric and j < i:
                out[i, j] = out[j, i]
                continue
            h = u.self_h if symmetric and i == j else pair_h(u, v)  # type: ignore[arg-type]
            names = (f"Xs[{i}]", f"Xs[{j}]" if symmetric else f"Ys[{j}]")
            out[i, j] = cka_ratio(h, u.self_h, v.self_h, names)
    return out


# The Gram form holds one float64 n x n matrix per layer: at most this many bytes in all.
_GRAM_BYTES = 2**30


def _gram_form_pays(n: int, widths_x: list[int], widths_y: list[int], symmetric: bool) -> bool:
    """Whether the layer pairs of :func:`cka_matrix` cost fewer multiply-adds in the Gram form
    (within :data:`_GRAM_BYTES`) than in the feature form."""
    views = widths_x if symmetric else widths_x + widths_y
    if 8 * n * n * len(views) > _GRAM_BYTES:
        return False
    if symmetric:
        pairs = [(a, b) for i, a in enumerate(widths_x) for b in widths_x[i + 1 :]]
    else:
        pairs = [(a, b) for a in widths_x for b in widths_y]
    gram = n * n * (sum(views) + len(pairs))
    feature = n * (sum(d * d for d in views) + sum(a * b for a, b in pairs))
    return gram < feature


def _layer_name(flat_index: int, n_xs: int) -> str:
    return f"Xs[{flat_index}]" if flat_index < n_xs else f"Ys[{flat_index - n_xs}]"

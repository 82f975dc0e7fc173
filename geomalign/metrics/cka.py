"""Centered kernel alignment (CKA): linear, debiased and RBF, for one pair or a layer x layer map.

Products are taken in the input precision (float32 for float32/float16/bfloat16 inputs) over row
blocks, and every block's product, every reduction and every norm is accumulated in float64 (the
terms are in :mod:`geomalign.metrics._cka_terms`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import as_tensor, resolve_device, unit_scaled
from geomalign.metrics._cka_terms import (
    _feature_h,
    _feature_view,
    _FeatureView,
    _gram_h,
    _gram_view,
    _GramView,
    _linear_gram,
    _rbf_gram,
    check_cka_samples,
    cka_ratio,
    common_dtype,
    feature_pair_h,
    gram_pair_h,
    use_gram_form,
)

__all__ = ["cka", "cka_matrix"]

KERNELS = ("linear", "rbf")
MEDIANS = ("pairs", "all")


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

    us = [view(L) for L in checked["Xs"]]
    vs = us if symmetric else [view(L) for L in checked["Ys"]]
    # every pair's cross term from a few stacked products
    pair_h = (gram_pair_h if gram else feature_pair_h)(us, vs, symmetric=symmetric)  # type: ignore[arg-type]
    out = np.empty((len(us), len(vs)))
    for i, u in enumerate(us):
        for j, v in enumerate(vs):
            if symmetric and j < i:
                out[i, j] = out[j, i]
                continue
            h = u.self_h if symmetric and i == j else pair_h[i, j]
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

"""Exact linear CKA accumulated over row blocks, for data that does not fit in memory."""

from __future__ import annotations

import numpy as np
import torch

from geomalign._validation import check_paired, check_representations
from geomalign.metrics._arrays import (
    as_tensor,
    column_sums,
    divide_by_power_of_two,
    resolve_device,
    safe_exponent,
)
from geomalign.metrics._cka_terms import (
    centred_product,
    check_cka_samples,
    cka_ratio,
    common_dtype,
)

__all__ = ["StreamingLinearCKA"]


class StreamingLinearCKA:
    r"""Linear CKA (biased or debiased) accumulated exactly over blocks of paired rows.

    Feed the rows of X and Y in matching blocks with :meth:`update`; :meth:`value` returns the
    same number as :func:`~geomalign.metrics.cka` on the stacked rows (to rounding; about
    1e-10 relative), while memory stays at O(p^2 + q^2 + pq) whatever the number of rows.

    Parameters
    ----------
    debiased : bool, default=False
        Use the unbiased HSIC estimator (needs at least 4 rows in all).
    device : str or torch.device, optional
        Where to accumulate; default: the device of the first block if it is a tensor, else CPU.

    Attributes
    ----------
    n_samples_ : int
        Rows seen so far.

    Notes
    -----
    Rows are shifted by the mean of the first block (a stable reference point) before the
    float64 sums :math:`\sum u u^\top, \sum v v^\top, \sum u v^\top, \sum u, \sum v` are
    accumulated; centring by the final mean is then an exact rank-one correction, e.g.
    :math:`C_{xy} = \sum u v^\top - n\, \delta_x \delta_y^\top` with :math:`\delta` the mean of
    the shifted rows. The debiased estimator also needs the squared norms :math:`r_i` of the
    centred rows, through :math:`r_x \cdot r_y` and :math:`\sum r`; these expand exactly into
    the sums of :math:`a_i = |u_i|^2`, :math:`a_i b_i`, :math:`a_i v_i` and :math:`b_i u_i`
    that are accumulated as well. This is the exact out-of-core form; the minibatch estimator of
    Nguyen et al. (2021), an average of per-batch HSICs, estimates a different quantity.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((100, 5))
    >>> acc = StreamingLinearCKA()
    >>> round(acc.update(X[:60], 2 * X[:60]).update(X[60:], 2 * X[60:]).value(), 6)
    1.0
    """

    def __init__(self, *, debiased: bool = False, device: str | torch.device | None = None):
        if not isinstance(debiased, bool):
            raise TypeError(f"debiased must be True or False; got {debiased!r}.")
        self.debiased = debiased
        self.device = device
        self.n_samples_ = 0
        self._n_blocks = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._exponents: dict[str, int] = {}
        self._on: torch.device  # the device of the sums, set by the first block

    def update(
        self, X_block: np.ndarray | torch.Tensor, Y_block: np.ndarray | torch.Tensor
    ) -> StreamingLinearCKA:
        """Add a block of paired rows; returns ``self`` so calls can be chained.

        Parameters
        ----------
        X_block : array-like of shape (n_rows, n_features_x)
        Y_block : array-like of shape (n_rows, n_features_y)
            The same widths in every call.
        """
        index = self._n_blocks
        X = check_representations(X_block, name=f"X_block (block {index})")
        Y = check_representations(Y_block, name=f"Y_block (block {index})")
        check_paired(X, Y, x_name="X_block", y_name="Y_block")
        if self._sums:
            p, q = self._sums["shift_x"].shape[0], self._sums["shift_y"].shape[0]
            if X.shape[1] != p or Y.shape[1] != q:
                raise ValueError(
                    f"block {index} has widths ({X.shape[1]}, {Y.shape[1]}) but earlier blocks "
                    f"had ({p}, {q}); every X_block/Y_block must keep the same widths."
                )
        else:
            self.device = self._on = resolve_device(X, self.device)
            for key, M in (("x", X), ("y", Y)):
                t = as_tensor(M, self._on)
                # every block is divided by the power of two that suits the first one
                self._exponents[key] = safe_exponent(t)
                t = divide_by_power_of_two(t, self._exponents[key])
                self._sums[f"shift_{key}"] = column_sums(t) / t.shape[0]
        dtype = common_dtype(X, Y)
        Xt = divide_by_power_of_two(as_tensor(X, self._on, dtype), self._exponents["x"])
        Yt = divide_by_power_of_two(as_tensor(Y, self._on, dtype), self._exponents["y"])
        sx, sy = self._sums["shift_x"], self._sums["shift_y"]
        parts = {
            "uu": centred_product(Xt, sx, Xt, sx),
            "vv": centred_product(Yt, sy, Yt, sy),
            "uv": centred_product(Xt, sx, Yt, sy),
            "u": column_sums(Xt) - X.shape[0] * sx,
            "v": column_sums(Yt) - Y.shape[0] * sy,
        }
        if self.debiased:
            U, V = Xt - sx.to(Xt.dtype), Yt - sy.to(Yt.dtype)
            a = U.square().sum(dim=1, dtype=torch.float64)
            b = V.square().sum(dim=1, dtype=torch.float64)
            parts.update(
                a=a.sum(), b=b.sum(), aa=a @ a, bb=b @ b, ab=a @ b,
                au=a @ U.to(torch.float64), bv=b @ V.to(torch.float64),
                av=a @ V.to(torch.float64), bu=b @ U.to(torch.float64),
            )  # fmt: skip
        for key, value in parts.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value
        self.n_samples_ += X.shape[0]
        self._n_blocks += 1
        return self

    def value(self) -> float:
        """Linear CKA of all rows seen so far.

        Raises
        ------
        UndefinedMeasureError
            If fewer than 3 rows (4 when debiased) were seen, or a view has no variance.
        """
        n, s = self.n_samples_, self._sums
        check_cka_samples(n, self.debiased)
        dx, dy = s["u"] / n, s["v"] / n
        c_xy = s["uv"] - n * torch.outer(dx, dy)
        c_xx = s["uu"] - n * torch.outer(dx, dx)
        c_yy = s["vv"] - n * torch.outer(dy, dy)
        h = [float(torch.dot(c.reshape(-1), c.reshape(-1))) for c in (c_xy, c_xx, c_yy)]
        if self.debiased:
            cx, cy = float(dx @ dx), float(dy @ dy)
            r_xy = (
                s["ab"] - 2 * s["av"] @ dy - 2 * s["bu"] @ dx + 4 * dx @ s["uv"] @ dy
                + cy * s["a"] + cx * s["b"] - 3 * n * cx * cy
            )  # fmt: skip
            r_xx = s["aa"] - 4 * s["au"] @ dx + 4 * dx @ s["uu"] @ dx + 2 * cx * s["a"]
            r_xx = r_xx - 3 * n * cx * cx
            r_yy = s["bb"] - 4 * s["bv"] @ dy + 4 * dy @ s["vv"] @ dy + 2 * cy * s["b"]
            r_yy = r_yy - 3 * n * cy * cy
            sum_rx, sum_ry = float(s["a"]) - n * cx, float(s["b"]) - n * cy
            a, b = n / (n - 2), 1.0 / ((n - 1) * (n - 2))
            h[0] += -a * float(r_xy) + b * sum_rx * sum_ry
            h[1] += -a * float(r_xx) + b * sum_rx**2
            h[2] += -a * float(r_yy) + b * sum_ry**2
        return cka_ratio(h[0], h[1], h[2], ("X", "Y"))

"""Optimal-transport distances between two point clouds: EMD and sliced through POT, Sinkhorn on
stacked torch solvers with POT's conventions (and POT as the reference of the tests).

The Gromov-Wasserstein discrepancy and the matching accuracy of a plan are in
:mod:`geomalign.metrics._ot_plans` (exported here too). POT is imported inside the functions
(``import ot`` is slow, and old releases grabbed GPU memory at import). Every solver's
convergence is checked: a solver that stops at its iteration limit raises
:class:`RuntimeError` instead of returning an inexact value.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from geomalign._validation import check_positive_int, check_representations
from geomalign.metrics._arrays import (
    resolve_device,
    take_rows,
)
from geomalign.metrics._ot_checks import check_number, check_same_width, common_scaled
from geomalign.metrics._ot_plans import gromov_wasserstein, ot_matching_accuracy
from geomalign.metrics._ot_solvers import (
    SINKHORN_VALUES,
    cost_matrix,
    emd_plan,
    sliced,
)
from geomalign.metrics._sinkhorn_batch import (
    StackSolution,
    Workspace,
    gathered_costs,
    sinkhorn_cost_stack,
    stack_budget,
)
from geomalign.metrics._sinkhorn_full import (
    cost_matrices,
    full_sample_solution,
    pairs_of,
    sinkhorn_value,
)

__all__ = ["gromov_wasserstein", "ot_distance", "ot_matching_accuracy", "resampled_ot_distance"]

_METHODS = ("emd", "sinkhorn", "sliced")


def _scaled_epsilon(epsilon: float, exponent: int, p: float) -> float:
    """An absolute regularisation (cost units) in the units of clouds divided by ``2**e``."""
    scaled = epsilon * 2.0 ** (-exponent * p)
    if not 0.0 < scaled < np.inf:
        raise ValueError(
            f"epsilon={epsilon!r} is out of float64 range for clouds whose largest |x| is about "
            f"2**{exponent}; give the regularisation relative to the cost (reg) instead."
        )
    return scaled


def _check_entropic(reg: float, epsilon: float | None, tol: float | None) -> None:
    if epsilon is not None:
        check_number(epsilon, "epsilon", 0.0, strict=True)
        if reg != 0.05:
            raise ValueError(
                "epsilon is an absolute regularisation and reg a relative one: give one of "
                f"them; got reg={reg!r} and epsilon={epsilon!r}."
            )
    if tol is not None:
        check_number(tol, "tol", 0.0, strict=True)


def ot_distance(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    method: Literal["emd", "sinkhorn", "sliced"] = "emd",
    p: float = 2.0,
    reg: float = 0.05,
    epsilon: float | None = None,
    sinkhorn: Literal["divergence", "entropic", "transport"] = "divergence",
    tol: float | None = None,
    max_iter: int | None = None,
    n_projections: int = 256,
    projections: np.ndarray | None = None,
    random_state: int | np.random.Generator | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Wasserstein distance :math:`W_p` between two point clouds with uniform weights.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples_x, n_features)
        First cloud.
    Y : array-like or torch.Tensor of shape (n_samples_y, n_features)
        Second cloud, same width as X (the sample counts may differ).
    method : {"emd", "sinkhorn", "sliced"}, default="emd"
        ``"emd"``: exact optimal transport (network simplex, on the CPU, roughly cubic in n);
        ``"sinkhorn"``: debiased entropic transport (Sinkhorn divergence, three Sinkhorn
        solves); ``"sliced"``: sliced Wasserstein over random directions.
    p : float, default=2.0
        Order: the ground cost is :math:`\|x - y\|^p`.
    reg : float, default=0.05
        Sinkhorn only: entropic regularisation relative to the cost scale: the regularisation
        is ``reg`` times the mean entry of the X-to-Y cost matrix.
    epsilon : float, optional
        Sinkhorn only: an absolute regularisation, in the units of the cost
        :math:`\|x - y\|^p`, instead of ``reg`` (POT's ``reg``, GeomLoss's ``blur ** p``).
        The distance is then not scale-equivariant.
    sinkhorn : {"divergence", "entropic", "transport"}, default="divergence"
        Sinkhorn only: which value. ``"divergence"``: the debiased Sinkhorn divergence
        :math:`S_\varepsilon` (Feydy et al. 2019); ``"entropic"``: the plain entropic cost
        :math:`OT_\varepsilon(X, Y) = \langle P, C \rangle + \varepsilon \mathrm{KL}(P | a b^T)`
        (Cuturi 2013, without the debiasing); ``"transport"``: :math:`\langle P, C \rangle`
        at the entropic plan, the value of POT's ``ot.sinkhorn2``. The p-th root is returned.
    tol : float, optional
        Sinkhorn only: stop when the L2 norm of the marginal violation is below ``tol`` (POT's
        ``stopThr``; its default is 1e-9). Default: 1e-4 of :math:`\|b\|_2`.
    max_iter : int, optional
        Iteration limit: network-simplex iterations for ``"emd"`` (default
        ``max(1e5, 10 n_x n_y)``; POT's 1e5 is already too small at 2,000 points), Sinkhorn
        iterations for ``"sinkhorn"`` (default 10,000). Not used by ``"sliced"``.
    n_projections : int, default=256
        Sliced only: number of random directions.
    projections : array-like of shape (n_features, n_directions), optional
        Sliced only: the directions to project on, one per column, used as given (POT's
        ``projections``); then ``n_projections`` and ``random_state`` are not used.
    random_state : int, numpy.random.Generator or None, default=None
        Sliced only: seed of the random directions.
    device : str or torch.device, optional
        Where to build the cost matrix, solve Sinkhorn and project for ``"sliced"`` (default:
        X's device for a tensor, else the CPU). The EMD solver runs on the CPU (POT's network
        simplex).

    Returns
    -------
    float
        :math:`W_p`, the p-th root of the optimal transport cost (a distance, 0 for equal clouds).
        For ``"sinkhorn"``, the p-th root of the Sinkhorn divergence :math:`S_\varepsilon`
        (0 for equal clouds, tends to :math:`W_p` as ``reg`` shrinks, a little below it for
        larger ``reg``). For ``"sliced"``,
        :math:`(\mathbb{E}_\theta W_p^p(\theta_\# X, \theta_\# Y))^{1/p}`, which is at most
        :math:`W_p`.

    Raises
    ------
    ValueError
        If X or Y is not a finite 2-D array, their widths differ, or an option is out of range.
    RuntimeError
        If EMD or Sinkhorn stops at ``max_iter`` before converging (never an inexact value).

    See Also
    --------
    gromov_wasserstein : compares clouds of different widths.
    ot_matching_accuracy : how often the plan pairs row i of X with row i of Y.

    Notes
    -----
    With uniform weights :math:`a = 1/n_x`, :math:`b = 1/n_y` and cost
    :math:`C_{ij} = \|x_i - y_j\|^p` (float64),

    .. math::
        W_p(X, Y) = \Big(\min_{P \ge 0,\, P 1 = a,\, P^T 1 = b} \langle P, C \rangle\Big)^{1/p}.

    Sinkhorn: with :math:`\varepsilon` = ``reg`` times the mean of :math:`C`,
    :math:`OT_\varepsilon(X, Y) = \min_P \langle P, C \rangle + \varepsilon\,
    \mathrm{KL}(P \,|\, a b^T)` is solved with the log-stabilised iterations of POT's
    ``sinkhorn_stabilized`` (safe for small ``reg``), run in torch
    (:mod:`~geomalign.metrics._sinkhorn_batch`), until the L2 norm of the marginal violation
    is below 1e-4 of :math:`\|b\|_2` (checked after every iteration; POT checks every 20th, so
    values agree with POT's to that tolerance), and debiased (Feydy et al. 2019):

    .. math::
        S_\varepsilon = OT_\varepsilon(X, Y)
        - \tfrac12 OT_\varepsilon(X, X) - \tfrac12 OT_\varepsilon(Y, Y).

    Without the correction the entropic blur dominates for nearby clouds (e.g. 3.9 times the
    exact W_2 for a cloud and a slightly noisy copy at ``reg=0.05``; 0.96 with it).
    :math:`S_\varepsilon \ge 0` holds for ``p`` = 1 or 2; for other ``p`` a negative value
    is clipped to 0. The self-problems :math:`OT_\varepsilon(X, X)`, :math:`OT_\varepsilon(Y,
    Y)` are solved by the symmetric fixed point (:mod:`~geomalign.metrics._sinkhorn_symmetric`;
    a few iterations, to the same tolerance), and :math:`S_\varepsilon(X, X) = 0` exactly. The
    full sample's solution is kept (:mod:`~geomalign.metrics._sinkhorn_full`): the same clouds
    and settings are not solved twice (an analysis asks for a curve's value, its resamples'
    start and the tuning change's terms), and give back the same value.

    Both clouds are first divided by one power of two when their largest entry lies outside
    :math:`[2^{-24}, 2^{24}]`, and the distance multiplied back, so that costs neither
    overflow nor fall below the network simplex's absolute tolerances (which it is given
    costs divided by their largest entry, the same plan): :math:`W_p(cX, cY) = c W_p(X, Y)`
    for every method (with ``reg``, not ``epsilon``).

    References
    ----------
    .. [1] R. Flamary et al., "POT: Python Optimal Transport", JMLR 22(78) (2021).
    .. [2] M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport",
       NeurIPS (2013).
    .. [3] J. Feydy et al., "Interpolating between optimal transport and MMD using Sinkhorn
       divergences", AISTATS (2019).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> round(ot_distance(X, X + [3.0, 4.0, 0.0]), 6)
    5.0
    """
    X, Y, options = _checked_distance_args(X, Y, method=method, p=p, reg=reg, epsilon=epsilon,
                                           sinkhorn=sinkhorn, tol=tol, max_iter=max_iter,
                                           n_projections=n_projections,
                                           projections=projections)  # fmt: skip
    dev = resolve_device(X, device)
    return _distance(X, Y, dev, random_state=random_state, **options)


def _checked_distance_args(
    X: Any, Y: Any, *, method: str, p: float, reg: float, epsilon: float | None, sinkhorn: str,
    tol: float | None, max_iter: int | None, n_projections: int, projections: Any,
) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """The checked clouds of :func:`ot_distance` and its checked options."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    if sinkhorn not in SINKHORN_VALUES:
        raise ValueError(f"sinkhorn must be one of {SINKHORN_VALUES}; got {sinkhorn!r}.")
    p = check_number(p, "p", 1.0)
    reg = check_number(reg, "reg", 0.0, strict=True)
    _check_entropic(reg, epsilon, tol)
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
    n_projections = check_positive_int(n_projections, "n_projections")
    X = check_representations(X, name="X")
    Y = check_representations(Y, name="Y")
    check_same_width(X, Y, method)
    if method == "sliced" and projections is not None:
        projections = _check_projections(projections, X.shape[1])
    options = dict(method=method, p=p, reg=reg, epsilon=epsilon, sinkhorn=sinkhorn, tol=tol,
                   max_iter=max_iter, n_projections=n_projections,
                   projections=projections)  # fmt: skip
    return X, Y, options


def _distance(
    X: Any, Y: Any, dev: torch.device, *, method: str, p: float, reg: float,
    epsilon: float | None, sinkhorn: str, tol: float | None, max_iter: int | None,
    n_projections: int, projections: np.ndarray | None, random_state: Any,
) -> float:  # fmt: skip
    """:func:`ot_distance` of checked clouds and options."""
    A, B, exponent = common_scaled(X, Y, dev)
    if method == "sliced":
        value = sliced(A, B, p, n_projections, random_state, dev, projections)
        return math.ldexp(value, exponent)
    if method == "sinkhorn":
        eps = None if epsilon is None else _scaled_epsilon(epsilon, exponent, p)
        if sinkhorn == "divergence" and torch.equal(A, B):  # its three problems are one
            return 0.0
        cost = sinkhorn_value(A, B, p, reg=reg, epsilon=eps, value=sinkhorn, max_iter=max_iter,
                              tol=tol)  # fmt: skip
    else:
        M = cost_matrix(A, B, p, dev)
        cost = float(np.sum(emd_plan(M, max_iter) * M))
    return math.ldexp(cost ** (1.0 / p), exponent)


def resampled_ot_distance(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    random_state: int | np.random.Generator | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``rows -> [ot_distance(X[r], Y[r], ...) for r in rows]`` for an int array
    ``rows`` of shape (n_resamples, m), checking the arguments once.

    Sinkhorn distances of all resamples are solved together
    (:func:`~geomalign.metrics._sinkhorn_batch.sinkhorn_stack`: the iterations of the
    one-problem solver, in stacks within 256 MiB, the divergence's three problems per resample
    counted) on cost matrices gathered from the full clouds' cost matrices, computed once: the
    same entries up to rounding (a resample's costs are otherwise computed about its own mean).
    A resample's rows are sorted first (the same clouds, read in order), and a resample solved
    alone in its stack (from about 1,000 rows) is solved on its distinct rows with their
    multiplicities as weights: the same iterates on 40% of the entries for a bootstrap
    resample. Each resample's problems start from the dual potentials of the full sample's,
    gathered at its rows (a repeated row starts from the same potential; POT's ``warmstart``),
    with their kernels in float32 (values within 1e-7 of the mean cost of a float64 solve), and
    stop at the first iteration whose marginal error is below the same threshold (POT checks
    every 20th): the same entropic problems solved to the same tolerance, in a third to a half
    fewer iterations on clouds with structure, so the values differ from a cold POT solve by
    about that tolerance (within 1e-4 of the mean cost, ``tests/metrics/test_resampled.py``,
    ``tests/metrics/test_sinkhorn_stack.py``), not by rounding. The divergence's self-problems
    ``OT(X, X)`` and ``OT(Y, Y)`` (symmetric costs, equal marginals: equal potentials) are solved
    by the symmetric fixed point (:mod:`~geomalign.metrics._sinkhorn_symmetric`), one product
    with the kernel per iteration and a few iterations where the alternating updates take
    hundreds, to the same tolerance (``tests/metrics/test_sinkhorn_symmetric.py``). The other
    methods run one resample at a time.
    """
    X, Y, opts = _checked_distance_args(X, Y, **{**_DISTANCE_DEFAULTS, **options})
    dev = resolve_device(X, device)
    if opts["method"] != "sinkhorn":
        return lambda rows: np.array(
            [_distance(take_rows(X, r), take_rows(Y, r), dev, random_state=random_state, **opts)
             for r in np.asarray(rows, dtype=np.int64)]
        )  # fmt: skip
    A, B, exponent = common_scaled(X, Y, dev)
    p, value = opts["p"], opts["sinkhorn"]
    if value == "divergence" and torch.equal(A, B):  # every resample: one cloud twice
        return lambda rows: np.zeros(len(rows))
    pairs = pairs_of(value)
    eps = None if opts["epsilon"] is None else _scaled_epsilon(opts["epsilon"], exponent, p)
    settings = {name: opts[name] for name in ("reg", "max_iter", "tol")}
    work = Workspace()
    matrices: list[torch.Tensor] = []  # the full clouds' cost matrices, computed when first needed
    full: list[StackSolution] = []  # the full sample's solution, where each resample starts from

    def costs() -> torch.Tensor:
        if not matrices:
            matrices.append(cost_matrices(A, B, p, value, dev))
        return matrices[0]

    def solve(idx: torch.Tensor, counts: torch.Tensor | None = None) -> np.ndarray:
        if not full:
            full.append(full_sample_solution(A, B, p, epsilon=eps, value=value, costs=costs,
                                             **settings)[1])  # fmt: skip
        # the full sample's potentials at the resample's rows, pair after pair
        f, g = (pot.view(len(pairs), -1)[:, idx].flatten(0, 1) for pot in (full[0].f, full[0].g))
        epsilon = None if eps is None else torch.full((len(idx),), eps, dtype=torch.float64,
                                                      device=dev)  # fmt: skip
        values, _ = sinkhorn_cost_stack(
            gathered_costs(costs(), idx, work), epsilon=epsilon, value=value, warm=(f, g),
            counts=counts, work=work, **settings,
        )  # fmt: skip
        return np.array([math.ldexp(c ** (1.0 / p), exponent) for c in values])

    def at(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(len(rows))
        step = stack_budget(rows.shape[1], rows.shape[1], len(pairs))
        for start in range(0, len(rows), step):
            # sorted rows: the same clouds, read in order from the full cost matrices
            idx = torch.as_tensor(np.sort(rows[start : start + step], axis=1), device=dev)
            if step == 1:  # a single resample: its distinct rows, repeats as weights
                distinct, counts = torch.unique(idx, return_counts=True)
                out[start] = solve(distinct[None], counts[None].to(torch.float64))[0]
            else:
                out[start : start + len(idx)] = solve(idx)
        return out

    return at


# ot_distance's options with their defaults (all but random_state and device)
_DISTANCE_DEFAULTS: dict[str, Any] = {
    name: param.default
    for name, param in inspect.signature(ot_distance).parameters.items()
    if param.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("random_state", "device")
}


def _check_projections(projections: Any, n_features: int) -> np.ndarray:
    theta = check_representations(projections, name="projections", allow_torch=False)
    if theta.shape[0] != n_features:
        raise ValueError(
            f"projections must have one row per feature of X and Y ({n_features}), one column "
            f"per direction; got projections.shape={theta.shape}."
        )
    return np.asarray(theta, dtype=np.float64)

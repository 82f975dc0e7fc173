"""Sinkhorn on symmetric problems: a cloud against itself, the debiasing terms of the divergence.

The problems ``OT_eps(X, X)`` and ``OT_eps(Y, Y)`` of the Sinkhorn divergence have a symmetric
cost and equal marginals, so their optimal dual potentials are equal (``f = g``) and so are
their scalings (``u = v``). The iteration here is the symmetric fixed point of Feydy et al.
(2019), GeomLoss's averaged update ``f <- (f + softmin(f)) / 2``, in scaling form: ``u <- (u a /
(K u))^(1/2)``, one product with the kernel per iteration where the alternating updates need
two. Its linearisation at the solution is ``(I - P') / 2`` for the row-normalised plan ``P'``,
whose eigenvalues lie in [-1, 1]: the slow modes of the alternating updates (eigenvalues of
``P'`` near 1, squared by a pair of updates) are the fast ones here, and a self-problem stops in
a few iterations instead of the 150 to 270 of the alternating ones on clouds with structure.

The problem, the value and the stopping rule are those of
:func:`~geomalign.metrics._sinkhorn_batch.sinkhorn_stack`: the plan ``diag(u) K diag(u)`` is
checked after every iteration, and a problem stops when the L2 norm of its marginal violation
(rows and columns alike) is below the tolerance; its value is ``<P, C> + eps KL(P | a a^T)`` at
that plan, ``2 sum_i r_i f_i + eps log(n^2) |P|`` at its marginal ``r``. So the value differs
from the alternating solver's by about the tolerance (both are within it of the optimum), not
by the definition. Scalings above the same absorption threshold are moved into the potentials
without changing the plan (the scalings restart at ``a``). Distinct rows with multiplicities
(``counts``), warm starts and float32 kernels are as in
:func:`~geomalign.metrics._sinkhorn_batch.sinkhorn_stack`.
"""

from __future__ import annotations

import torch

from geomalign.metrics._ot_solvers import _SINKHORN_RTOL, ABSORPTION_PER_ROW
from geomalign.metrics._sinkhorn_parts import (
    StackSolution,
    Workspace,
    compact,
    fill_kernel,
    retried,
    times,
    weighted_means,
)

__all__ = ["symmetric_stack"]


def symmetric_stack(
    M: torch.Tensor,
    epsilon: torch.Tensor,
    *,
    max_iter: int | None,
    tol: float | None = None,
    warm: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    kernel: torch.dtype = torch.float64,
    work: Workspace | None = None,
) -> StackSolution:
    """Entropic problems for symmetric costs ``M`` (B, n, n, float64; not modified) with
    regularisations ``epsilon`` (B,) and equal uniform marginals.

    Each problem starts from zero potentials or from ``warm`` (B, n) in cost units (the
    potential ``f = g``); ``counts`` (B, n), if given, repeats each row and column that many
    times. ``kernel`` is the dtype of the kernel, its products and the scalings (float32
    only for warm-started problems). Returns the entropic costs with ``f = g`` (no transport
    term). A problem that meets a NaN is solved again by the one-problem solver (which then
    raises); a problem still above the tolerance at ``max_iter`` raises RuntimeError.
    """
    B, n, _ = M.shape
    work = Workspace() if work is None else work
    limit = 10_000 if max_iter is None else max_iter
    entropic = M.new_zeros(B)  # a zero cost: every point on every other, the product plan
    f = M.new_zeros((B, n))
    rows = M.new_ones((B, n)) if counts is None else counts
    idx = torch.nonzero(weighted_means(M, rows, rows) != 0.0).flatten()
    rows, eps, size = rows[idx], epsilon[idx], rows[idx].sum(dim=1)
    alpha = M.new_zeros((len(idx), n))
    if warm is not None:  # shifted by eps log n: the scalings start at a, as a solved problem's
        start = warm[idx] + (eps * size.log())[:, None]
        alpha = torch.where(torch.isfinite(start), start, torch.zeros_like(start))
    a = (rows / size[:, None]).to(kernel)
    weights = rows.to(kernel)
    tau = (ABSORPTION_PER_ROW * size[:, None] * rows).to(kernel)
    tol2 = _SINKHORN_RTOL**2 / size if tol is None else torch.full_like(size, tol**2)
    tol2 = tol2.to(kernel)
    K = work.get("K", (len(idx), n, n), kernel, M.device)
    fill_kernel(M if len(idx) == B else M[idx], alpha, alpha, eps, K, work)
    u = a.clone()
    slot = torch.arange(len(idx), device=M.device)  # the live problems' places in idx
    retry: list[int] = []
    err2 = torch.ones_like(tol2)
    for _ in range(limit + 1):
        if not len(slot):
            break
        Ku = times(u, K)  # K is symmetric: u^T K = (K u)^T
        r = u * Ku  # the plan's row sums, and its column sums
        err2 = ((r - a[slot]).square_() / weights[slot]).sum(dim=1)
        stop = (err2 <= tol2[slot]) | torch.isnan(err2)  # NaN: a NaN scaling
        if bool(stop.any()):
            done = torch.nonzero(stop & ~torch.isnan(err2)).flatten()
            solved = slot[done]
            F = alpha[solved] + eps[solved, None] * torch.log(u[done] / weights[solved]).double()
            mass = r[done].double()
            entropic[idx[solved]] = 2.0 * (mass * F).sum(dim=1) + (
                eps[solved] * 2.0 * size[solved].log() * mass.sum(dim=1)
            )
            f[idx[solved]] = F
            retry += idx[slot[stop & torch.isnan(err2)]].tolist()
            keep = torch.nonzero(~stop).flatten()
            slot, u, Ku, K = slot[keep], u[keep], Ku[keep], compact(K, keep)
            if not len(slot):
                break
        u = torch.sqrt(u * a[slot] / Ku)
        big = (u > tau[slot]).any(dim=1)
        if bool(big.any()):
            _absorb(M, idx, slot, big, alpha, eps, u, a, K, work)
    if len(slot):
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{float(err2.max().sqrt()):.2e} > {float(tol2.min().sqrt()):.2e}) on "
            f"{len(slot)} of {B} problems. Raise max_iter or the regularisation."
        )
    repeats = None if counts is None else (counts, counts)
    for i, terms in retried(M, epsilon, retry, repeats, max_iter, tol):
        entropic[i], f[i] = sum(terms), float("nan")
    return StackSolution(None, entropic, f, f)


def _absorb(
    M: torch.Tensor, idx: torch.Tensor, slot: torch.Tensor, big: torch.Tensor,
    alpha: torch.Tensor, eps: torch.Tensor, u: torch.Tensor, a: torch.Tensor, K: torch.Tensor,
    work: Workspace,
) -> None:  # fmt: skip
    """Move the scalings of the live problems ``big`` into their potentials (the plan does not
    change) and rebuild their kernels; their scalings restart at ``a``."""
    for j in torch.nonzero(big).flatten().tolist():
        s = int(slot[j])
        alpha[s] += eps[s] * torch.log(u[j] / a[s]).double()
        u[j] = a[s]
        at = alpha[s, None]
        fill_kernel(M[idx[s]][None], at, at, eps[s, None], K[j, None], work)

"""Sinkhorn over a stack of cost matrices at once: the resamples of one entropic OT distance.

A bootstrap of the Sinkhorn divergence solves three problems per resample. The iterations here
are those of POT's ``sinkhorn_stabilized`` (the solver of
:func:`~geomalign.metrics._ot_solvers.sinkhorn_plan`) run on every problem of the stack together
in torch: the same scaling updates, the same absorption of large scalings into the log-domain
potentials (per problem, when its scaling exceeds the threshold given to POT,
:func:`~geomalign.metrics._ot_solvers.absorption_threshold`) and the same stopping rule (the L2
norm of the marginal violation below the tolerance), each problem stopping on its own.

Four things differ from POT's defaults, none of them the problem, the tolerance or the threshold:

- the marginal error is checked after every iteration (POT's ``print_period=1``; POT checks
  every 20th by default), where it costs nothing: the product ``u^T K`` it needs is the next
  update's. A problem stops at the first iteration below the threshold instead of the next
  multiple of 20, so values differ from POT's default run by about the tolerance;
- the marginal error is read from the scalings (``v * (K^T u)``, the column sums of the plan)
  and the entropic cost from the dual potentials, ``<P, C> + eps KL(P | a b^T) = sum_i r_i f_i
  + sum_j c_j g_j + eps log(nm) |P|`` at the plan's marginals ``r, c`` (an identity for any plan
  ``diag(u) K diag(v)``), so that no plan is formed;
- a problem may start from given potentials (POT's ``warmstart``), e.g. a resample's from the
  full sample's solution gathered at its rows, and then its kernel may be kept in float32
  (``kernel=torch.float32``): the products ``u^T K`` read half the memory, with relative errors
  near 1e-7, three orders of magnitude below the stopping tolerance (a kernel warm-started near
  its solution holds ``n m`` times the plan's entries, so no row underflows);
- a problem may be given on its distinct rows with their multiplicities (``counts``): a bootstrap
  resample repeats about a third of its rows, and repeated rows of the uniform problem have
  equal costs, potentials and scalings at every iteration, so the iterates are those of the
  problem on the distinct rows with weights ``count / n`` (POT's resets ``1/n`` of a scaling
  become ``count / n``), and its marginal error that of the full problem, ``sqrt(sum_j (c_j -
  w_j)^2 / count_j)``: the same problem on 40% of the entries.

From the same start the iterates are those of POT's ``sinkhorn_stabilized(...,
print_period=1)`` to rounding (``tests/metrics/test_resampled.py``). The divergence's
self-problems, ``OT(X, X)`` and ``OT(Y, Y)``, go to the symmetric solver
(:func:`~geomalign.metrics._sinkhorn_symmetric.symmetric_stack`). Large tensors are kept in a
:class:`Workspace` and reused from stack to stack: a fresh tensor of a few hundred MiB costs more
in page faults than an exponential over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
from geomalign.metrics._sinkhorn_symmetric import symmetric_stack

__all__ = [
    "StackSolution",
    "Workspace",
    "gathered_costs",
    "sinkhorn_cost_stack",
    "sinkhorn_stack",
    "stack_budget",
]

# Bytes per entry of each problem: gathered costs, kernel (float64 at most), and the gather's
# int64 index (shared by a resample's problems, counted for each).
_BYTES_PER_ENTRY = 8 * 3


def stack_budget(n: int, m: int, problems: int = 1, working_memory: float = 256.0) -> int:
    """Resamples of ``problems`` problems of ``n x m`` costs each solved together within
    ``working_memory`` MiB (>= 1)."""
    return max(1, int(working_memory * 2**20) // (problems * n * m * _BYTES_PER_ENTRY))


def gathered_costs(matrices: torch.Tensor, idx: torch.Tensor, work: Workspace) -> torch.Tensor:
    """The costs ``matrices[p][idx[s]][:, idx[s]]`` of each matrix p (P, N, N) in turn at each
    row set s (S, m), as (P S, m, m) in ``work``'s buffer ``"costs"``. Sorted rows read each
    row of the matrices in order (two to three times faster than random rows)."""
    P, N = matrices.shape[:2]
    S, m = idx.shape
    at = work.get("at", (S, m, m), torch.int64, idx.device)
    torch.add((idx * N)[:, :, None], idx[:, None, :], out=at)
    out = work.get("costs", (P, S, m, m), matrices.dtype, matrices.device)
    for p in range(P):
        torch.gather(matrices[p].view(-1), 0, at.view(-1), out=out[p].view(-1))
    return out.view(P * S, m, m)


@dataclass
class _Live:
    """The problems still iterating, slot by slot (``idx``: their place in the stack). The
    scalings and marginals are in the kernel's dtype, the potentials in float64."""

    idx: torch.Tensor
    eps: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    tol2: torch.Tensor  # squared tolerance
    tau_rows: torch.Tensor  # absorption thresholds of the scalings
    tau_cols: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    uK: torch.Tensor
    err2: torch.Tensor
    live: torch.Tensor

    def keep(self, keep: torch.Tensor) -> _Live:
        return _Live(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))


def _start(
    M: torch.Tensor, epsilon: torch.Tensor, tol: float | None,
    warm: tuple[torch.Tensor, ...] | None, counts: tuple[torch.Tensor, torch.Tensor] | None,
    dtype: torch.dtype,
) -> _Live:  # fmt: skip
    """The problems of nonzero costs at their start: zero potentials or ``warm``'s shifted by
    ``eps log n``, ``eps log m`` (so that the scalings start at ``1/n, 1/m``, the fixed point of
    a solved problem; non-finite potentials start at zero)."""
    B, n, m = M.shape
    rows, cols = (M.new_ones((B, n)), M.new_ones((B, m))) if counts is None else counts
    n_rows, n_cols = rows.sum(dim=1), cols.sum(dim=1)  # of the repeated problems
    idx = torch.nonzero(weighted_means(M, rows, cols) != 0.0).flatten()
    rows, cols, n_rows, n_cols, eps = rows[idx], cols[idx], n_rows[idx], n_cols[idx], epsilon[idx]
    tau = ABSORPTION_PER_ROW * torch.maximum(n_rows, n_cols)  # absorption_threshold's
    tol2 = _SINKHORN_RTOL**2 / n_cols if tol is None else torch.full_like(n_cols, tol**2)
    potentials = [M.new_zeros((len(idx), n)), M.new_zeros((len(idx), m))]
    if warm is not None:
        for i, size in enumerate((n_rows, n_cols)):
            start = warm[i][idx] + (eps * size.log())[:, None]
            potentials[i] = torch.where(torch.isfinite(start), start, torch.zeros_like(start))
    a, b = (rows / n_rows[:, None]).to(dtype), (cols / n_cols[:, None]).to(dtype)
    return _Live(
        idx=idx, eps=eps, a=a, b=b, rows=rows.to(dtype), cols=cols.to(dtype), tol2=tol2.to(dtype),
        tau_rows=(tau[:, None] * rows).to(dtype), tau_cols=(tau[:, None] * cols).to(dtype),
        alpha=potentials[0], beta=potentials[1], u=a.clone(), v=b.clone(), uK=b,
        err2=torch.ones_like(tol2, dtype=dtype),
        live=torch.ones(len(idx), dtype=torch.bool, device=M.device),
    )  # fmt: skip


def sinkhorn_stack(
    M: torch.Tensor,
    epsilon: torch.Tensor,
    *,
    max_iter: int | None,
    tol: float | None = None,
    warm: tuple[torch.Tensor, torch.Tensor] | None = None,
    transport: bool = False,
    counts: tuple[torch.Tensor, torch.Tensor] | None = None,
    kernel: torch.dtype = torch.float64,
    work: Workspace | None = None,
) -> StackSolution:
    """Entropic problems for costs ``M`` (B, n, m, float64; not modified) with regularisations
    ``epsilon`` (B,), uniform weights: problem b is ``sinkhorn_plan(M[b], epsilon[b])``'s.

    Each problem starts from zero potentials or from ``warm = (f, g)`` (B, n), (B, m) in cost
    units; ``counts = (row_counts, col_counts)`` (B, n), (B, m), if given, repeat each row and
    column that many times (the problem is that of the repeated matrix; ``f, g`` are returned
    per distinct row). ``kernel`` is the dtype of the kernel, its products and the scalings
    (float32 only for warm-started problems). ``transport=True`` also returns ``<P, C>`` (one
    more pass over the costs). A problem that meets a NaN is solved again by the one-problem
    solver (which then raises); a problem still above the tolerance at ``max_iter`` raises
    RuntimeError.
    """
    B, n, m = M.shape
    work = Workspace() if work is None else work
    limit = 10_000 if max_iter is None else max_iter
    entropic = M.new_zeros(B)  # a zero cost: every point on every other, the product plan
    cost = M.new_zeros(B) if transport else None
    f, g = M.new_zeros((B, n)), M.new_zeros((B, m))
    s = _start(M, epsilon, tol, warm, counts, kernel)
    K = work.get("K", (len(s.idx), n, m), kernel, M.device)
    fill_kernel(M if len(s.idx) == B else M[s.idx], s.alpha, s.beta, s.eps, K, work)
    retry: list[int] = []
    s.uK = times(s.u, K)
    for _ in range(limit):
        if not len(s.idx):
            break
        s.v = s.b / s.uK
        s.u = s.a / times(s.v, K, transposed=True)  # the plan's row sums are now a
        if bool((s.u > s.tau_rows).any()) or bool((s.v > s.tau_cols).any()):
            _absorb(M, s, K, work)
        s.uK = times(s.u, K)  # the next update's product, and the plan's column sums over v
        col = s.v * s.uK
        s.err2 = ((col - s.b).square_() / s.cols).sum(dim=1)
        stop = ((s.err2 <= s.tol2) | torch.isnan(s.err2)) & s.live  # NaN: a NaN scaling
        if not bool(stop.any()):
            continue
        done = stop & ~torch.isnan(s.err2)
        if bool(done.any()):
            d = torch.nonzero(done).flatten()
            solved = s.idx[d]
            entropic[solved], f[solved], g[solved] = _values(s, col, d)
            if cost is not None:
                Kd = K[d].to(M.dtype).mul_(M[solved])
                cost[solved] = (times(s.u[d].to(M.dtype), Kd) * s.v[d]).sum(dim=1)
        retry += s.idx[stop & ~done].tolist()
        s.live &= ~stop
        if 2 * int(s.live.sum()) <= len(s.live):  # drop the stopped problems
            keep = torch.nonzero(s.live).flatten()
            s = s.keep(keep)
            K = compact(K, keep)
    if len(s.idx[s.live]):
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{float(s.err2[s.live].max().sqrt()):.2e} > {float(s.tol2.min().sqrt()):.2e}) on "
            f"{len(s.idx[s.live])} of {B} problems. Raise max_iter or the regularisation."
        )
    for i, terms in retried(M, epsilon, retry, counts, max_iter, tol):
        entropic[i] = sum(terms)
        if cost is not None:
            cost[i] = terms[0]
        f[i], g[i] = np.nan, np.nan
    return StackSolution(cost, entropic, f, g)


def _absorb(M: torch.Tensor, s: _Live, K: torch.Tensor, work: Workspace) -> None:
    """Move the scalings of problems with one above the threshold into their potentials and
    rebuild their kernels (POT's absorption; the scalings restart at ``1/n, 1/m``)."""
    big = (s.u > s.tau_rows).any(dim=1) | (s.v > s.tau_cols).any(dim=1)
    w = torch.nonzero(big).flatten()
    s.alpha[w] += s.eps[w, None] * torch.log(s.u[w] / s.rows[w])
    s.beta[w] += s.eps[w, None] * torch.log(s.v[w] / s.cols[w])
    s.u[w], s.v[w] = s.a[w], s.b[w]
    for j in w.tolist():
        fill_kernel(M[s.idx[j]][None], s.alpha[j, None], s.beta[j, None], s.eps[j, None],
                K[j, None], work)  # fmt: skip


def _values(
    s: _Live, col: torch.Tensor, d: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The entropic cost and the dual potentials ``f, g`` (of the repeated problem) of the
    problems in slots ``d``, in cost units: ``sum_i r_i f_i + sum_j c_j g_j + eps log(nm) |P|``
    at the plan's row sums ``r = a`` (after the update of ``u``) and column sums ``c``
    (``col``)."""
    eps = s.eps[d]
    F = s.alpha[d] + eps[:, None] * torch.log(s.u[d] / s.rows[d])
    G = s.beta[d] + eps[:, None] * torch.log(s.v[d] / s.cols[d])
    row, col = s.a[d].to(F.dtype), col[d].to(F.dtype)
    size = s.rows[d].sum(dim=1).to(F.dtype) * s.cols[d].sum(dim=1).to(F.dtype)
    dual = (row * F).sum(dim=1) + (col * G).sum(dim=1) + eps * size.log() * row.sum(dim=1)
    return dual, F, G


def sinkhorn_cost_stack(
    stack: torch.Tensor,
    *,
    reg: float,
    epsilon: torch.Tensor | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
    warm: tuple[torch.Tensor, torch.Tensor] | None = None,
    counts: torch.Tensor | None = None,
    work: Workspace | None = None,
) -> tuple[np.ndarray, StackSolution]:
    """An entropic transport cost of each of S pairs of clouds (in cost units, before the p-th
    root), and the solution of each problem solved.

    ``value``: ``"divergence"``, the debiased ``OT(X, Y) - (OT(X, X) + OT(Y, Y)) / 2`` (one
    regularisation for the three, clipped at 0); ``"entropic"``, ``OT(X, Y) = <P, C> + eps
    KL``; ``"transport"``, ``<P, C>`` alone (POT's ``sinkhorn2``).

    ``stack`` (P S, n, n) holds the cost matrices of each pair in turn: ``"xy"``, X to Y, and for
    the divergence (P = 3) ``"xx"`` and ``"yy"``, each cloud with itself. ``epsilon`` (S,) holds
    absolute regularisations, or None for ``reg`` times each problem's mean X-to-Y cost.
    ``warm``, if given, holds the potentials (P S, n) that the problems start from (their kernels
    then in float32); ``counts`` (S, n) the multiplicities of the rows, if not all 1.
    """
    P = 3 if value == "divergence" else 1
    S = stack.shape[0] // P
    rows = None if counts is None else counts.repeat(P, 1)
    if rows is None:
        means = stack[:S].mean(dim=(1, 2))
    else:
        means = weighted_means(stack[:S], rows[:S], rows[:S])
    # reg relative to a zero mean cost: every point on every other, all three costs 0
    eps = reg * means if epsilon is None else epsilon
    kernel = torch.float64 if warm is None else torch.float32
    solution = sinkhorn_stack(
        stack[:S], eps, max_iter=max_iter, tol=tol,
        warm=None if warm is None else (warm[0][:S], warm[1][:S]),
        transport=value == "transport", counts=None if rows is None else (rows[:S], rows[:S]),
        kernel=kernel, work=work,
    )  # fmt: skip
    if P == 3:  # each cloud with itself: f = g at the solution, from the mean of f and g
        own = symmetric_stack(
            stack[S:], eps.repeat(2), max_iter=max_iter, tol=tol,
            warm=None if warm is None else 0.5 * (warm[0][S:] + warm[1][S:]),
            counts=None if rows is None else rows[S:], kernel=kernel, work=work,
        )  # fmt: skip
        solution = StackSolution(
            None,
            torch.cat([solution.entropic, own.entropic]),
            torch.cat([solution.f, own.f]),
            torch.cat([solution.g, own.g]),
        )
    if value == "transport":
        assert solution.transport is not None
        total = solution.transport
    elif value == "entropic":
        total = solution.entropic
    else:
        xy, xx, yy = solution.entropic.chunk(3)
        total = (xy - 0.5 * (xx + yy)).clamp_(min=0.0)
    return total.cpu().numpy(), solution

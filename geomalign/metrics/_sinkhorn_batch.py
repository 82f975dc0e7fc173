"""Sinkhorn over a stack of cost matrices at once: the resamples of one entropic OT distance.

A bootstrap of the Sinkhorn divergence solves three problems per resample, each of a few hundred
iterations on small matrices, where POT's solver spends its time in per-call overhead. The
iterations here are those of POT's ``sinkhorn_stabilized`` (the solver of
:func:`~geomalign.metrics._ot_solvers.sinkhorn_plan`) run on every problem of the stack together
in torch: the same scaling updates, the same absorption of large scalings into the log-domain
potentials (per problem, when its scaling exceeds the threshold given to POT,
:func:`~geomalign.metrics._ot_solvers.absorption_threshold`) and the same stopping rule (the L2
norm of the marginal violation below the tolerance), each problem stopping on its own.

Three things differ from POT's defaults, none of them the problem or the threshold:

- the marginal error is checked after every iteration (POT's ``print_period=1``; POT checks
  every 20th by default), where it costs nothing: the product ``u^T K`` it needs is the next
  update's. A problem stops at the first iteration below the threshold instead of the next
  multiple of 20, so values differ from POT's default run by about the tolerance;
- the marginal error is read from the scalings (``v * (K^T u)``, the column sums of the plan)
  and the entropic cost from the dual potentials, ``<P, C> + eps KL(P | a b^T) = sum_i r_i f_i
  + sum_j c_j g_j + eps log(nm) |P|`` at the plan's marginals ``r, c`` (an identity for any plan
  ``diag(u) K diag(v)``), so that no plan is formed;
- a problem may start from given potentials (POT's ``warmstart``), e.g. a resample's from the
  full sample's solution gathered at its rows.

From the same start the iterates are those of POT's ``sinkhorn_stabilized(...,
print_period=1)`` to rounding (``tests/metrics/test_resampled.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from geomalign.metrics._ot_solvers import _SINKHORN_RTOL, absorption_threshold, entropic_terms

__all__ = ["StackSolution", "sinkhorn_cost_stack", "sinkhorn_stack", "stack_budget"]

# Bytes of float64 temporaries per problem entry (gathered and scaled costs, kernel and its
# transpose, products).
_BYTES_PER_ENTRY = 8 * 6


def stack_budget(n: int, m: int, working_memory: float = 256.0) -> int:
    """Problems of ``n x m`` costs solved together within ``working_memory`` MiB (>= 1)."""
    return max(1, int(working_memory * 2**20) // (n * m * _BYTES_PER_ENTRY))


@dataclass(frozen=True)
class StackSolution:
    """Solutions of a stack of entropic problems, in the units of their costs.

    ``transport`` (B,) is ``<P, C>`` and ``entropic`` (B,) ``<P, C> + eps KL(P | a b^T)`` at
    each problem's plan P; ``f`` (B, n) and ``g`` (B, m) are its dual potentials (POT's
    ``log["warmstart"]``), NaN for a problem solved by POT after meeting a NaN here.
    """

    transport: torch.Tensor | None
    entropic: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor


def _kernel(
    M: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, reg: torch.Tensor
) -> torch.Tensor:
    """``exp(-(M - alpha_i - beta_j) / reg)`` per problem (POT's ``get_K``)."""
    K = M - alpha[:, :, None]
    K.sub_(beta[:, None, :]).div_(-reg[:, None, None])
    return K.exp_()


def _times(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``u_b^T K_b`` per problem (batched row vector times matrix: several times faster in
    torch than the batched matrix times column vector, hence K and its transpose are kept)."""
    return torch.matmul(u[:, None, :], K)[:, 0]


def _start(
    Ms: torch.Tensor, reg: torch.Tensor, scale: torch.Tensor, warm: tuple[torch.Tensor, ...] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial log potentials ``alpha, beta`` (scaled units): zero, or the given potentials
    (cost units) shifted by ``reg log n`` and ``reg log m`` so that the scalings start at their
    fixed point ``1/n, 1/m`` of a solved problem (non-finite potentials start at zero)."""
    _, n, m = Ms.shape
    if warm is None:
        return Ms.new_zeros(Ms.shape[:2]), Ms.new_zeros((Ms.shape[0], m))
    starts = []
    for potential, size in zip(warm, (n, m), strict=True):
        start = potential / scale[:, None] + reg[:, None] * math.log(size)
        starts.append(torch.where(torch.isfinite(start), start, torch.zeros_like(start)))
    return starts[0], starts[1]


def _values(
    Ms: torch.Tensor, KT: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
    u: torch.Tensor, v: torch.Tensor, col: torch.Tensor, reg: torch.Tensor, scale: torch.Tensor,
    d: torch.Tensor, *, transport: bool,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """The entropic cost, the dual potentials ``f, g`` and, if asked, ``<P, C>`` of problems
    ``d`` of the stack, in cost units: ``sum_i r_i f_i + sum_j c_j g_j + eps log(nm) |P|`` at
    the plan's row and column sums ``r, c`` (``col``). The products run over the whole stack
    (cheaper than gathering the problems' matrices)."""
    n, m = Ms.shape[1:]
    vKT = _times(v, KT)[d]
    vCKT = _times(v, KT * Ms.transpose(1, 2))[d] if transport else None  # sum_j K_ij C_ij v_j
    u, v, reg, scale = u[d], v[d], reg[d], scale[d]
    F = alpha[d] + reg[:, None] * torch.log(u)
    G = beta[d] + reg[:, None] * torch.log(v)
    row = u * vKT
    dual = (row * F).sum(dim=1) + (col[d] * G).sum(dim=1) + reg * math.log(n * m) * row.sum(dim=1)
    out = (dual * scale, F * scale[:, None], G * scale[:, None])
    return out if vCKT is None else (*out, (u * vCKT).sum(dim=1) * scale)


def sinkhorn_stack(
    M: torch.Tensor,
    epsilon: torch.Tensor,
    *,
    max_iter: int | None,
    tol: float | None = None,
    warm: tuple[torch.Tensor, torch.Tensor] | None = None,
    transport: bool = False,
) -> StackSolution:
    """Entropic problems for costs ``M`` (B, n, m, float64) with regularisations ``epsilon``
    (B,), uniform weights: problem b is ``sinkhorn_plan(M[b], epsilon[b])``'s.

    Each problem runs on its cost divided by its mean (as the one-problem solver), from zero
    potentials or from ``warm = (f, g)`` (B, n), (B, m) in cost units; ``transport=True`` also
    returns ``<P, C>`` (one more pass over the costs). A problem that meets a NaN is solved
    again by the one-problem solver (which then raises); a problem still above the tolerance
    at ``max_iter`` raises RuntimeError.
    """
    B, n, m = M.shape
    limit = 10_000 if max_iter is None else max_iter
    tol = _SINKHORN_RTOL / math.sqrt(m) if tol is None else tol
    tau = absorption_threshold(n, m)
    entropic = M.new_zeros(B)  # a zero cost: every point on every other, the product plan
    cost = M.new_zeros(B) if transport else None
    f, g = M.new_zeros((B, n)), M.new_zeros((B, m))
    scale = M.mean(dim=(1, 2))
    idx = torch.nonzero(scale != 0.0).flatten()
    scale = scale[idx]
    Ms = (M if len(idx) == B else M[idx]) / scale[:, None, None]
    reg = epsilon[idx] / scale
    alpha, beta = _start(Ms, reg, scale, None if warm is None else (warm[0][idx], warm[1][idx]))
    a, b = 1.0 / n, torch.full((m,), 1.0 / m, dtype=M.dtype, device=M.device)
    u, v = torch.full_like(alpha, 1.0 / n), torch.full_like(beta, 1.0 / m)
    K = _kernel(Ms, alpha, beta, reg)
    KT = K.transpose(1, 2).contiguous()
    retry: list[int] = []
    err = torch.ones(len(idx), dtype=M.dtype, device=M.device)
    uK = _times(u, K)
    live = torch.ones(len(idx), dtype=torch.bool, device=M.device)  # not yet stopped
    for _ in range(limit):
        if not len(idx):
            break
        v = b / uK
        u = a / _times(v, KT)
        big = torch.maximum(u.amax(dim=1), v.amax(dim=1)) > tau  # scalings are positive
        if bool(big.any()):
            w = torch.nonzero(big).flatten()
            alpha[w] += reg[w, None] * torch.log(u[w])
            beta[w] += reg[w, None] * torch.log(v[w])
            u[w], v[w] = 1.0 / n, 1.0 / m
            K[w] = _kernel(Ms[w], alpha[w], beta[w], reg[w])
            KT[w] = K[w].transpose(1, 2)
        uK = _times(u, K)  # the next update's product, and the plan's column sums over v
        col = v * uK
        err = torch.linalg.vector_norm(col - b, dim=1)
        done = (err <= tol) & live
        bad = torch.isnan(err) & live  # a NaN scaling reaches the marginal error
        stop = done | bad
        if not bool(stop.any()):
            continue
        if bool(done.any()):
            d = torch.nonzero(done).flatten()
            values = _values(Ms, KT, alpha, beta, u, v, col, reg, scale, d,
                             transport=cost is not None)  # fmt: skip
            solved = idx[done]
            entropic[solved], f[solved], g[solved] = values[:3]
            if cost is not None:
                cost[solved] = values[3]
        retry += idx[bad].tolist()
        live &= ~stop
        if 2 * int(live.sum()) <= len(live):  # drop the stopped problems (a copy of the rest)
            idx, Ms, reg, scale, alpha, beta, u, v, K, KT, err, uK, live = (
                t[live] for t in (idx, Ms, reg, scale, alpha, beta, u, v, K, KT, err, uK, live)
            )
    idx, err = idx[live], err[live]
    if len(idx):
        worst = float(err.max())
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{worst:.2e} > {tol:.2e}) on {len(idx)} of {B} resamples. Raise max_iter or the "
            "regularisation."
        )
    for i in retry:  # NaN: the one-problem solver reports it
        terms = entropic_terms(M[i].cpu().numpy(), float(epsilon[i]), max_iter, tol)
        entropic[i] = sum(terms)
        if cost is not None:
            cost[i] = terms[0]
        f[i], g[i] = np.nan, np.nan
    return StackSolution(cost, entropic, f, g)


Potentials = dict[str, tuple[torch.Tensor, torch.Tensor]]


def sinkhorn_cost_stack(
    costs: Callable[[tuple[str, ...]], torch.Tensor],
    *,
    reg: float,
    epsilon: torch.Tensor | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
    warm: Callable[[str], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[np.ndarray, Potentials]:
    """:func:`~geomalign.metrics._ot_solvers.sinkhorn_cost` of a stack of S problems, and the
    dual potentials of each problem solved, by pair.

    ``costs(pairs)`` is the stack (len(pairs) S, n, m) of the cost matrices of each pair in
    turn: ``"xy"``, X to Y, and for the divergence ``"xx"`` and ``"yy"``, each cloud with
    itself. ``epsilon`` (S,) holds absolute regularisations, or None for ``reg`` times each
    problem's mean X-to-Y cost. ``warm(pair)``, if given, returns the potentials (S, n),
    (S, m) that pair's problems start from.
    """
    pairs = ("xy", "xx", "yy") if value == "divergence" else ("xy",)
    stack = costs(pairs)
    S = stack.shape[0] // len(pairs)
    # reg relative to a zero mean cost: every point on every other, all three costs 0
    eps = reg * stack[:S].mean(dim=(1, 2)) if epsilon is None else epsilon
    start = None
    if warm is not None:
        given = [warm(pair) for pair in pairs]
        start = (torch.cat([f for f, _ in given]), torch.cat([g for _, g in given]))
    solution = sinkhorn_stack(stack, eps.repeat(len(pairs)), max_iter=max_iter, tol=tol,
                              warm=start, transport=value == "transport")  # fmt: skip
    f, g = solution.f.chunk(len(pairs)), solution.g.chunk(len(pairs))
    potentials = {pair: (f[i], g[i]) for i, pair in enumerate(pairs)}
    if value == "transport":
        assert solution.transport is not None
        total = solution.transport
    elif value == "entropic":
        total = solution.entropic
    else:
        xy, xx, yy = solution.entropic.chunk(3)
        total = (xy - 0.5 * (xx + yy)).clamp_(min=0.0)
    return total.cpu().numpy(), potentials

"""Sinkhorn over a stack of cost matrices at once: the resamples of one entropic OT distance.

A bootstrap of the Sinkhorn divergence solves three problems per resample, each of a few hundred
iterations on small matrices, where POT's solver spends its time in per-call overhead. The
iterations here are those of POT's ``sinkhorn_stabilized`` (the solver of
:func:`~geomalign.metrics._ot_solvers.sinkhorn_plan`) run on every problem of the stack together
in torch: the same scaling updates, the same absorption of large scalings into the log-domain
potentials (per problem, when its scaling exceeds ``1e3``), the same marginal-error check every
20 iterations and the same stopping rule, each problem stopping on its own. Started from zero
potentials, the iterates are POT's to rounding (``tests/metrics/test_resampled.py``).

Two things differ from POT's code, neither the iterates nor the problem: the marginal error is
read from the scalings (``v * (K^T u)``, the column sums of the plan) and the entropic cost from
the dual potentials, ``<P, C> + eps KL(P | a b^T) = sum_i r_i f_i + sum_j c_j g_j + eps log(nm)
|P|`` at the plan's marginals ``r, c`` (an identity for any plan ``diag(u) K diag(v)``), so that
no plan is formed; and a problem may start from given potentials (POT's ``warmstart``), e.g. a
resample's from the full sample's solution gathered at its rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from geomalign.metrics._ot_solvers import _SINKHORN_RTOL, entropic_terms

__all__ = ["StackSolution", "sinkhorn_cost_stack", "sinkhorn_stack", "stack_budget"]

# POT's sinkhorn_stabilized: absorption threshold and iterations between marginal checks.
_TAU = 1e3
_CHECK_EVERY = 20
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
    *, transport: bool,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """The entropic cost, the dual potentials ``f, g`` and, if asked, ``<P, C>`` of solved
    problems, in cost units: ``sum_i r_i f_i + sum_j c_j g_j + eps log(nm) |P|`` at the
    plan's row and column sums ``r, c`` (``col``)."""
    n, m = Ms.shape[1:]
    F = alpha + reg[:, None] * torch.log(u)
    G = beta + reg[:, None] * torch.log(v)
    row = u * _times(v, KT)
    dual = (row * F).sum(dim=1) + (col * G).sum(dim=1) + reg * math.log(n * m) * row.sum(dim=1)
    out = (dual * scale, F * scale[:, None], G * scale[:, None])
    if not transport:
        return out
    # <P, C> = sum_ij u_i K_ij C_ij v_j
    return (*out, (u * _times(v, KT * Ms.transpose(1, 2))).sum(dim=1) * scale)


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
    entropic = M.new_zeros(B)  # a zero cost: every point on every other, the product plan
    cost = M.new_zeros(B) if transport else None
    f, g = M.new_zeros((B, n)), M.new_zeros((B, m))
    scale = M.mean(dim=(1, 2))
    idx = torch.nonzero(scale != 0.0).flatten()
    scale = scale[idx]
    Ms = M[idx] / scale[:, None, None]
    reg = epsilon[idx] / scale
    alpha, beta = _start(Ms, reg, scale, None if warm is None else (warm[0][idx], warm[1][idx]))
    a, b = 1.0 / n, torch.full((m,), 1.0 / m, dtype=M.dtype, device=M.device)
    u, v = torch.full_like(alpha, 1.0 / n), torch.full_like(beta, 1.0 / m)
    K = _kernel(Ms, alpha, beta, reg)
    KT = K.transpose(1, 2).contiguous()
    retry: list[int] = []
    err = torch.ones(len(idx), dtype=M.dtype, device=M.device)
    for ii in range(limit):
        if not len(idx):
            break
        v = b / _times(u, K)
        u = a / _times(v, KT)
        big = (u.abs().amax(dim=1) > _TAU) | (v.abs().amax(dim=1) > _TAU)
        if bool(big.any()):
            w = torch.nonzero(big).flatten()
            alpha[w] += reg[w, None] * torch.log(u[w])
            beta[w] += reg[w, None] * torch.log(v[w])
            u[w], v[w] = 1.0 / n, 1.0 / m
            K[w] = _kernel(Ms[w], alpha[w], beta[w], reg[w])
            KT[w] = K[w].transpose(1, 2)
        done = torch.zeros(len(idx), dtype=torch.bool, device=M.device)
        if ii % _CHECK_EVERY == 0:
            col = v * _times(u, K)  # the plan's column sums
            err = torch.linalg.vector_norm(col - b, dim=1)
            done = err <= tol
            if bool(done.any()):
                d = torch.nonzero(done).flatten()
                values = _values(Ms[d], KT[d], alpha[d], beta[d], u[d], v[d], col[d], reg[d],
                                 scale[d], transport=cost is not None)  # fmt: skip
                solved = idx[done]
                entropic[solved], f[solved], g[solved] = values[:3]
                if cost is not None:
                    cost[solved] = values[3]
        bad = ~done & (torch.isnan(u).any(dim=1) | torch.isnan(v).any(dim=1))
        retry += idx[bad].tolist()
        keep = ~(done | bad)
        if not bool(keep.all()):
            idx, Ms, reg, scale, alpha, beta, u, v, K, KT, err = (
                t[keep] for t in (idx, Ms, reg, scale, alpha, beta, u, v, K, KT, err)
            )
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
    costs: Callable[[str], torch.Tensor],
    *,
    reg: float,
    epsilon: torch.Tensor | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
    warm: Callable[[str], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[np.ndarray, Potentials]:
    """:func:`~geomalign.metrics._ot_solvers.sinkhorn_cost` of a stack of problems (S,), and
    the dual potentials of each problem solved, by pair.

    ``costs("xy")`` is the stack (S, n, m) of X-to-Y cost matrices; ``costs("xx")`` and
    ``costs("yy")`` those of each cloud with itself (read for the divergence only).
    ``epsilon`` (S,) holds absolute regularisations, or None for ``reg`` times each problem's
    mean X-to-Y cost. ``warm(pair)``, if given, returns the potentials (S, n), (S, m) that
    pair's problems start from.
    """
    M = costs("xy")
    eps = reg * M.mean(dim=(1, 2)) if epsilon is None else epsilon
    out = np.zeros(M.shape[0])
    pairs = ("xy", "xx", "yy") if value == "divergence" else ("xy",)
    live = torch.nonzero(eps != 0.0).flatten()  # reg relative to a zero mean cost: 0
    potentials = {
        pair: (M.new_full(M.shape[:2], np.nan), M.new_full((M.shape[0], M.shape[2]), np.nan))
        for pair in pairs
    }
    if not len(live):
        return out, potentials
    stack = torch.cat([M[live]] + [costs(pair)[live] for pair in pairs[1:]])
    start = None
    if warm is not None:
        given = [warm(pair) for pair in pairs]
        start = (torch.cat([f[live] for f, _ in given]), torch.cat([g[live] for _, g in given]))
    solution = sinkhorn_stack(stack, eps[live].repeat(len(pairs)), max_iter=max_iter, tol=tol,
                              warm=start, transport=value == "transport")  # fmt: skip
    for pair, f, g in zip(pairs, solution.f.chunk(len(pairs)), solution.g.chunk(len(pairs)),
                          strict=True):  # fmt: skip
        potentials[pair][0][live], potentials[pair][1][live] = f, g
    if value == "transport":
        assert solution.transport is not None
        total = solution.transport
    elif value == "entropic":
        total = solution.entropic
    else:
        xy, xx, yy = solution.entropic.chunk(3)
        total = (xy - 0.5 * (xx + yy)).clamp_(min=0.0)
    out[live.cpu().numpy()] = total.cpu().numpy()
    return out, potentials

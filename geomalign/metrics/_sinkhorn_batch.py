"""Sinkhorn over a stack of cost matrices at once: the resamples of one entropic OT distance.

A bootstrap of the Sinkhorn divergence solves three problems per resample, each of a few hundred
iterations on small matrices, where POT's solver spends its time in per-call overhead. The
iterations here are those of POT's ``sinkhorn_stabilized`` (the solver of
:func:`~geomalign.metrics._ot_solvers.sinkhorn_plan`) run on every problem of the stack together
in torch: the same scaling updates, the same absorption of large scalings into the log-domain
potentials (per problem, when its scaling exceeds ``1e3``), the same marginal-error check every
20 iterations and the same stopping rule, each problem stopping on its own. Plans agree with the
one-problem solver to rounding (about 1e-15 relative, ``tests/metrics/test_sinkhorn_batch.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from geomalign.metrics._ot_solvers import _SINKHORN_RTOL, sinkhorn_plan

__all__ = ["sinkhorn_cost_stack", "sinkhorn_plans", "stack_budget"]

# POT's sinkhorn_stabilized: absorption threshold and iterations between marginal checks.
_TAU = 1e3
_CHECK_EVERY = 20
# Bytes of float64 temporaries per problem entry (cost, kernel and its transpose, plan, ...).
_BYTES_PER_ENTRY = 8 * 8


def stack_budget(n: int, m: int, working_memory: float = 256.0) -> int:
    """Problems of ``n x m`` costs solved together within ``working_memory`` MiB (>= 1)."""
    return max(1, int(working_memory * 2**20) // (n * m * _BYTES_PER_ENTRY))


def _kernel(
    M: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, reg: torch.Tensor
) -> torch.Tensor:
    return torch.exp(-(M - alpha[:, :, None] - beta[:, None, :]) / reg)


def _plan(
    M: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    reg: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
) -> torch.Tensor:
    """The plan of potentials ``alpha, beta`` and scalings ``u, v`` (POT's ``get_Gamma``)."""
    log_uv = torch.log(u)[:, :, None] + torch.log(v)[:, None, :]
    return torch.exp(-(M - alpha[:, :, None] - beta[:, None, :]) / reg + log_uv)


def sinkhorn_plans(
    M: torch.Tensor, epsilon: torch.Tensor, max_iter: int | None, tol: float | None = None
) -> torch.Tensor:
    """Entropic plans (B, n, m) for costs ``M`` (B, n, m, float64) with regularisations
    ``epsilon`` (B,), uniform weights: problem b's plan is ``sinkhorn_plan(M[b], epsilon[b])``.

    Each problem runs on its cost divided by its mean (as the one-problem solver); a problem
    that meets a NaN is solved again by the one-problem solver (which then raises); a problem
    still above the tolerance at ``max_iter`` raises RuntimeError.
    """
    B, n, m = M.shape
    limit = 10_000 if max_iter is None else max_iter
    tol = _SINKHORN_RTOL / math.sqrt(m) if tol is None else tol
    plans = torch.empty_like(M)
    scale = M.mean(dim=(1, 2))
    flat = scale == 0.0  # every point on every other: the product plan
    plans[flat] = 1.0 / (n * m)
    idx = torch.nonzero(~flat).flatten()
    Ms = M[idx] / scale[idx, None, None]
    reg = (epsilon[idx] / scale[idx])[:, None, None]
    a = torch.full((n,), 1.0 / n, dtype=M.dtype, device=M.device)
    b = torch.full((m,), 1.0 / m, dtype=M.dtype, device=M.device)
    alpha = M.new_zeros((len(idx), n))
    beta = M.new_zeros((len(idx), m))
    u, v = torch.full_like(alpha, 1.0 / n), torch.full_like(beta, 1.0 / m)
    K = _kernel(Ms, alpha, beta, reg)
    KT = K.transpose(1, 2).contiguous()
    retry: list[int] = []
    err = torch.ones(len(idx), dtype=M.dtype, device=M.device)
    for ii in range(limit):
        if not len(idx):
            break
        v_new = b / torch.matmul(u[:, None, :], K)[:, 0]
        u = a / torch.matmul(v_new[:, None, :], KT)[:, 0]
        v = v_new
        big = (u.abs().amax(dim=1) > _TAU) | (v.abs().amax(dim=1) > _TAU)
        if bool(big.any()):
            w = torch.nonzero(big).flatten()
            alpha[w] += reg[w, :, 0] * torch.log(u[w])
            beta[w] += reg[w, :, 0] * torch.log(v[w])
            u[w], v[w] = 1.0 / n, 1.0 / m
            K[w] = _kernel(Ms[w], alpha[w], beta[w], reg[w])
            KT[w] = K[w].transpose(1, 2)
        done = torch.zeros(len(idx), dtype=torch.bool, device=M.device)
        if ii % _CHECK_EVERY == 0:
            G = _plan(Ms, alpha, beta, reg, u, v)
            err = torch.linalg.vector_norm(G.sum(dim=1) - b, dim=1)
            done = err <= tol
            plans[idx[done]] = G[done]
        bad = ~done & (torch.isnan(u).any(dim=1) | torch.isnan(v).any(dim=1))
        retry += idx[bad].tolist()
        keep = ~(done | bad)
        if not bool(keep.all()):
            idx, Ms, reg, alpha, beta, u, v, K, KT, err = (
                t[keep] for t in (idx, Ms, reg, alpha, beta, u, v, K, KT, err)
            )
    if len(idx):
        worst = float(err.max())
        raise RuntimeError(
            f"Sinkhorn did not converge in max_iter={limit} iterations (marginal error "
            f"{worst:.2e} > {tol:.2e}) on {len(idx)} of {B} resamples. Raise max_iter or the "
            "regularisation."
        )
    for i in retry:  # NaN: the one-problem solver reports it
        plan = sinkhorn_plan(M[i].cpu().numpy(), float(epsilon[i]), max_iter, tol)
        plans[i] = torch.from_numpy(np.asarray(plan)).to(M.device)
    return plans


def _entropic_terms(
    M: torch.Tensor, epsilon: torch.Tensor, max_iter: int | None, tol: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(<P, M>, epsilon KL(P | a b^T))`` (each of shape (S,)) at each problem's plan."""
    plan = sinkhorn_plans(M, epsilon, max_iter, tol)
    size = plan.shape[1] * plan.shape[2]
    logs = torch.where(plan > 0.0, torch.log(plan * size), torch.zeros_like(plan))
    kl = (plan * logs).sum(dim=(1, 2))
    return (plan * M).sum(dim=(1, 2)), epsilon * kl


def sinkhorn_cost_stack(
    costs: Callable[[str], torch.Tensor],
    *,
    reg: float,
    epsilon: torch.Tensor | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
) -> np.ndarray:
    """:func:`~geomalign.metrics._ot_solvers.sinkhorn_cost` of a stack of problems (S,).

    ``costs("xy")`` is the stack (S, n, m) of X-to-Y cost matrices; ``costs("xx")`` and
    ``costs("yy")`` those of each cloud with itself (read for the divergence only).
    ``epsilon`` (S,) holds absolute regularisations, or None for ``reg`` times each problem's
    mean X-to-Y cost.
    """
    M = costs("xy")
    eps = reg * M.mean(dim=(1, 2)) if epsilon is None else epsilon
    out = np.zeros(M.shape[0])
    live = torch.nonzero(eps != 0.0).flatten()  # reg relative to a zero mean cost: 0
    if not len(live):
        return out
    M, eps = M[live], eps[live]
    if value != "divergence":
        transport, entropy = _entropic_terms(M, eps, max_iter, tol)
        total = transport if value == "transport" else transport + entropy
    else:
        stack = torch.cat([M, costs("xx")[live], costs("yy")[live]])
        transport, entropy = _entropic_terms(stack, eps.repeat(3), max_iter, tol)
        xy, xx, yy = (transport + entropy).chunk(3)
        total = (xy - 0.5 * (xx + yy)).clamp_(min=0.0)
    out[live.cpu().numpy()] = total.cpu().numpy()
    return out

"""The full sample's entropic problems of a Sinkhorn distance, solved once per clouds and settings.

An analysis of one layer asks for the same full-sample problems several times: the point value
of a curve, the start of its resamples (their warm start), and again in the tuning change, whose
terms are the cross-modal curves' values. :func:`full_sample_solution` keeps the latest
solutions, found again by a digest of the bytes of both clouds and every setting (as ``knn``
finds its neighbour lists; :mod:`geomalign.metrics._memo`): the same clouds and settings give
back the same value and potentials, bit for bit, and callers get copies.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace

import torch

from geomalign.metrics._memo import Memo, digest
from geomalign.metrics._ot_solvers import cost_matrix
from geomalign.metrics._sinkhorn_batch import sinkhorn_cost_stack
from geomalign.metrics._sinkhorn_parts import StackSolution
from geomalign.metrics._sinkhorn_symmetric import symmetric_stack

__all__ = [
    "SOLUTIONS",
    "cost_matrices",
    "full_sample_solution",
    "pairs_of",
    "sinkhorn_value",
    "solution_key",
    "solution_memo",
]

# MiB of full-sample solutions kept: 3 problems x 2 potentials x 2,000 rows take 96 KiB, so an
# analysis of 33 layers x 4 pairs of views keeps all of its own (13 MiB).
_MEMO_MIB = 64


def pairs_of(value: str) -> tuple[str, ...]:
    """The problems of a Sinkhorn value: ``"xy"`` (X to Y), and ``"xx"``, ``"yy"`` (each cloud
    with itself) for the divergence."""
    return ("xy", "xx", "yy") if value == "divergence" else ("xy",)


def cost_matrices(
    A: torch.Tensor, B: torch.Tensor, p: float, value: str, device: torch.device
) -> torch.Tensor:
    """The full clouds' cost matrices of the problems of ``value``, stacked (P, n, n)."""
    clouds = {"xy": (A, B), "xx": (A, A), "yy": (B, B)}
    return torch.stack(
        [torch.from_numpy(cost_matrix(*clouds[pair], p, device)) for pair in pairs_of(value)]
    ).to(device)


def solution_key(A: torch.Tensor, B: torch.Tensor, settings: tuple[object, ...]) -> Hashable | None:
    """The key of the problems between ``A`` and ``B`` with ``settings`` (None on an
    accelerator: not kept)."""
    a, b = digest(A, ()), digest(B, ())
    return None if a is None or b is None else (a, b, settings)


def _tensors(solution: StackSolution) -> list[torch.Tensor]:
    parts = [solution.entropic, solution.f, solution.g]
    return parts if solution.transport is None else [solution.transport, *parts]


def _size(solution: StackSolution) -> int:
    return sum(T.numel() * T.element_size() for T in _tensors(solution))


def _copied(solution: StackSolution) -> StackSolution:
    transport = None if solution.transport is None else solution.transport.clone()
    return replace(
        solution,
        transport=transport,
        entropic=solution.entropic.clone(),
        f=solution.f.clone(),
        g=solution.g.clone(),
    )


def solution_memo(max_bytes: int) -> Memo[tuple[float, StackSolution]]:
    """A memo of (cost, solution) pairs holding at most ``max_bytes`` of their tensors."""
    return Memo(
        max_bytes, size=lambda kept: _size(kept[1]), copy=lambda kept: (kept[0], _copied(kept[1]))
    )


#: The latest full-sample solutions.
SOLUTIONS = solution_memo(_MEMO_MIB * 2**20)


def full_sample_solution(
    A: torch.Tensor,
    B: torch.Tensor,
    p: float,
    *,
    reg: float,
    epsilon: float | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
    costs: Callable[[], torch.Tensor],
) -> tuple[float, StackSolution]:
    """The Sinkhorn cost of ``value`` between the full clouds (cost units, before the p-th
    root) and the solution of its problems, pair after pair (:func:`pairs_of`), solved from
    zero potentials with float64 kernels, or found in :data:`SOLUTIONS`.

    ``costs()`` gives the problems' cost matrices (:func:`cost_matrices`; called only when
    the problems are solved). ``epsilon`` is an absolute regularisation or None for ``reg``
    times the mean X-to-Y cost.
    """
    key = solution_key(A, B, (p, reg, epsilon, value, max_iter, tol, str(A.device)))
    found = SOLUTIONS.get(key)
    if found is not None:
        return found
    eps = None if epsilon is None else torch.full((1,), epsilon, dtype=torch.float64)
    total, solution = sinkhorn_cost_stack(
        costs(), reg=reg, epsilon=None if eps is None else eps.to(A.device), value=value,
        max_iter=max_iter, tol=tol,
    )  # fmt: skip
    SOLUTIONS.put(key, (float(total[0]), solution))
    return float(total[0]), solution


def sinkhorn_value(
    A: torch.Tensor,
    B: torch.Tensor,
    p: float,
    *,
    reg: float,
    epsilon: float | None,
    value: str,
    max_iter: int | None,
    tol: float | None,
) -> float:
    """The Sinkhorn cost of ``value`` between two clouds, of equal sizes or not (cost units,
    before the p-th root; see :func:`full_sample_solution`)."""
    if A.shape[0] == B.shape[0]:
        return full_sample_solution(
            A, B, p, reg=reg, epsilon=epsilon, value=value, max_iter=max_iter, tol=tol,
            costs=lambda: cost_matrices(A, B, p, value, A.device),
        )[0]  # fmt: skip
    # clouds of different sizes: each problem alone (no resamples start from them)
    xy = torch.from_numpy(cost_matrix(A, B, p, A.device)).to(A.device)[None]
    eps = reg * xy.mean(dim=(1, 2)) if epsilon is None else xy.new_full((1,), epsilon)
    kind = "entropic" if value == "divergence" else value
    total = float(sinkhorn_cost_stack(xy, reg=reg, epsilon=eps, value=kind, max_iter=max_iter,
                                      tol=tol)[0][0])  # fmt: skip
    if value != "divergence":
        return total
    own = [
        float(symmetric_stack(cost_matrices(V, V, p, "entropic", A.device), eps,
                              max_iter=max_iter, tol=tol).entropic[0])
        for V in (A, B)
    ]  # fmt: skip
    return max(total - 0.5 * (own[0] + own[1]), 0.0)

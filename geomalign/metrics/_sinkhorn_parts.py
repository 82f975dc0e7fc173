"""What the stacked Sinkhorn solvers share: reused buffers, the kernel, the batched products,
the solution they return and the one-problem solve of a problem that met a NaN."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from geomalign.metrics._ot_solvers import entropic_terms

__all__ = [
    "StackSolution",
    "Workspace",
    "compact",
    "fill_kernel",
    "retried",
    "times",
    "weighted_means",
]

# Entries of the float64 exponents computed at once for a float32 kernel.
_CHUNK = 2**22


class Workspace:
    """Large tensors reused by name and dtype: ``get`` returns a view of the named buffer, grown
    when a larger shape is asked for (its contents are not kept)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        size = math.prod(shape)
        buffer = self._buffers.get((name, dtype))
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=dtype, device=device)
            self._buffers[name, dtype] = buffer
        return buffer[:size].view(shape)


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


def fill_kernel(
    M: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, eps: torch.Tensor,
    out: torch.Tensor, work: Workspace,
) -> torch.Tensor:  # fmt: skip
    """``exp((alpha_i + beta_j - M_ij) / eps)`` per problem into ``out`` (POT's ``get_K``, in
    cost units); the exponent in float64 (by chunks of problems in ``work`` for a float32
    ``out``)."""
    B, n, m = M.shape
    narrow = out.dtype != M.dtype
    step = max(1, _CHUNK // (n * m)) if narrow else B
    ones_n, ones_m = M.new_ones(n), M.new_ones(m)
    for start in range(0, B, step):
        at = slice(start, start + step)
        k = len(range(B)[at])
        exponent = work.get("exponent", (k, n, m), M.dtype, M.device) if narrow else out[at]
        for i, b in enumerate(range(B)[at]):  # one pass: -M/eps + (alpha/eps) 1^T + 1 (beta/eps)^T
            scale = 1.0 / float(eps[b])
            rows = torch.stack([alpha[b] * scale, ones_n], dim=1)
            cols = torch.stack([ones_m, beta[b] * scale])
            torch.addmm(M[b], rows, cols, beta=-scale, out=exponent[i])
        _exp_(exponent)
        if narrow:
            out[at].copy_(exponent)
    return out


def _exp_(T: torch.Tensor) -> None:
    """``T.exp_()``, by NumPy on the CPU: its vectorised exponential is four times torch's there
    (float64; and torch's writing to a float32 output is three times slower again)."""
    if T.device.type == "cpu":
        array = T.numpy()
        np.exp(array, out=array)
    else:
        T.exp_()


def compact(buffer: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The slots ``keep`` (ascending indices) of ``buffer`` moved to its front, in place: the
    live problems' kernels, once others have stopped."""
    buffer[: len(keep)] = buffer[keep]
    return buffer[: len(keep)]


# Problems of fewer rows than this are multiplied in one batched product, larger ones one by one.
_BATCHED_ROWS = 256


def times(u: torch.Tensor, K: torch.Tensor, *, transposed: bool = False) -> torch.Tensor:
    """``u_b^T K_b`` per problem, or ``K_b u_b`` (``transposed=True``).

    Small problems (a resample of tens of rows, in stacks of a hundred) take one batched
    product: a loop would pay a call per problem, 20 times the product's cost at 100 x 20 x 20.
    Large ones take one matrix-vector product per problem (torch's batched product of a stack
    of vectors was up to four to eight times slower there on shared cores; a transposed matrix
    costs ``mv`` nothing)."""
    if K.shape[1] < _BATCHED_ROWS:
        return torch.bmm(u[:, None, :], K.transpose(1, 2) if transposed else K)[:, 0]
    out = u.new_empty(K.shape[:2] if transposed else (K.shape[0], K.shape[2]))
    for b in range(K.shape[0]):
        torch.mv(K[b] if transposed else K[b].T, u[b], out=out[b])
    return out


def weighted_means(M: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Mean entry of each problem's full cost matrix, its rows and columns repeated."""
    return (times(rows, M) * cols).sum(dim=1) / (rows.sum(dim=1) * cols.sum(dim=1))


def retried(
    M: torch.Tensor,
    epsilon: torch.Tensor,
    retry: list[int],
    counts: tuple[torch.Tensor, torch.Tensor] | None,
    max_iter: int | None,
    tol: float | None,
) -> Iterator[tuple[int, tuple[float, float]]]:
    """``(i, (<P, C>, eps KL))`` of each problem ``i`` in ``retry`` (one that met a NaN) by the
    one-problem solver, on the repeated matrix (which reports the failure)."""
    for i in retry:
        full = M[i]
        if counts is not None:
            rows, cols = counts
            full = full.repeat_interleave(rows[i].long(), 0).repeat_interleave(cols[i].long(), 1)
        yield i, entropic_terms(full.cpu().numpy(), float(epsilon[i]), max_iter, tol)

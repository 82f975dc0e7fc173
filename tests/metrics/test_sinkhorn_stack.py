"""The stacked Sinkhorn's shortcuts: distinct rows with multiplicities, float32 kernels of
warm-started problems, sorted gathers and the memory budget of a stack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign import metrics, stats
from geomalign.metrics import _sinkhorn_batch, ot
from geomalign.metrics._ot_solvers import cost_matrix
from geomalign.metrics._sinkhorn_batch import (
    Workspace,
    gathered_costs,
    sinkhorn_stack,
    stack_budget,
)

CPU = torch.device("cpu")


def _structured(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clouds sharing a low-rank signal: hundreds of Sinkhorn iterations at small reg."""
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, 3)) @ rng.normal(size=(3, 6))
    return S + 0.2 * rng.normal(size=(n, 6)), S + 0.2 * rng.normal(size=(n, 6)) + 0.3


def _costs(X: np.ndarray, Y: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(cost_matrix(A, B, 2.0, CPU))
                        for A, B in ((X, Y), (X, X), (Y, Y))])  # fmt: skip


@pytest.mark.parametrize("warm", [False, True])
def test_distinct_rows_with_counts_iterate_as_the_repeated_problem(warm):
    X, Y = _structured(30)
    full = _costs(X, Y)
    rows = np.sort(np.random.default_rng(0).integers(0, 30, 30))  # a bootstrap resample
    distinct, counts = np.unique(rows, return_counts=True)
    repeated = full[:, rows][:, :, rows]
    eps = torch.full((3,), 0.02) * repeated[0].mean()
    start = None
    if warm:  # the full sample's potentials, where a resample starts from
        solution = sinkhorn_stack(full, eps, max_iter=None)
        start = (solution.f, solution.g)
    at = torch.from_numpy(rows)
    plain = sinkhorn_stack(
        repeated,
        eps,
        max_iter=None,
        warm=None if start is None else (start[0][:, at], start[1][:, at]),
    )
    c = torch.from_numpy(counts).to(torch.float64).expand(3, -1)
    d = torch.from_numpy(distinct)
    weighted = sinkhorn_stack(full[:, distinct][:, :, distinct], eps, max_iter=None,
                              warm=None if start is None else (start[0][:, d], start[1][:, d]),
                              counts=(c, c))  # fmt: skip
    # the same iterates, so the same stopping iteration and values to rounding
    np.testing.assert_allclose(weighted.entropic.numpy(), plain.entropic.numpy(), rtol=1e-10)
    first = np.searchsorted(rows, distinct)  # each distinct row's first place in the resample
    np.testing.assert_allclose(weighted.f.numpy(), plain.f[:, first].numpy(), rtol=1e-9,
                               atol=1e-12 * float(eps[0]))  # fmt: skip


def test_float32_kernel_changes_values_far_below_the_tolerance():
    # a warm-started kernel in float32 is the kernel of costs perturbed by eps times its
    # relative rounding, and its products round at about 1e-7: the iterations still reach a
    # marginal error 100 times below the default tolerance, and the values move by 1e-8 of the
    # mean cost, not by the tolerance (1e-4)
    X, Y = _structured(80, seed=1)
    full = _costs(X, Y)
    rows = torch.from_numpy(np.sort(np.random.default_rng(2).integers(0, 80, 80)))
    stack = full[:, rows][:, :, rows]
    eps = 0.05 * stack[0].mean().repeat(3)
    start = sinkhorn_stack(full, eps, max_iter=None)
    warm = (start.f[:, rows], start.g[:, rows])
    mean_cost = stack.mean(dim=(1, 2)).numpy()
    for tol in (None, 1e-6 / np.sqrt(80)):  # the default, 1e-4 / sqrt(m), and 100 times less
        wide = sinkhorn_stack(stack, eps, max_iter=None, warm=warm, tol=tol)
        narrow = sinkhorn_stack(stack, eps, max_iter=None, warm=warm, tol=tol,
                                kernel=torch.float32)  # fmt: skip
        assert np.all(np.abs(narrow.entropic.numpy() - wide.entropic.numpy()) <= 1e-7 * mean_cost)


def test_gathered_costs_are_the_sub_matrices():
    X, Y = _structured(12)
    full = _costs(X, Y)
    idx = torch.from_numpy(np.sort(np.random.default_rng(0).integers(0, 12, (4, 9)), axis=1))
    got = gathered_costs(full, idx, Workspace()).view(3, 4, 9, 9)
    for p in range(3):
        for s in range(4):
            r = idx[s]
            torch.testing.assert_close(got[p, s], full[p][r][:, r], rtol=0, atol=0)


def test_a_stack_of_the_divergence_counts_its_three_problems():
    budget = 256 * 2**20
    per_entry = _sinkhorn_batch._BYTES_PER_ENTRY
    for m in (40, 400, 1000):
        step = stack_budget(m, m, 3)
        assert step * 3 * m * m * per_entry <= budget < (step + 1) * 3 * m * m * per_entry
    assert stack_budget(3000, 3000, 3) == 1  # at least one resample


@pytest.mark.parametrize(("value", "problems"), [("divergence", 3), ("entropic", 1)])
def test_resampled_sinkhorn_stacks_within_the_budget(monkeypatch, value, problems):
    asked = []

    def recorded(n, m, problems=1):
        asked.append(problems)
        return stack_budget(n, m, problems)

    monkeypatch.setattr(ot, "stack_budget", recorded)
    X, Y = _structured(20)
    ot.resampled_ot_distance(X, Y, method="sinkhorn", sinkhorn=value)(np.zeros((2, 20), int))
    assert asked == [problems]


@pytest.mark.parametrize("scheme", ["bootstrap", "half-sampling"])
def test_one_resample_per_stack_agrees_with_cold_solves_to_the_tolerance(monkeypatch, scheme):
    # large resamples are solved one per stack, on their distinct rows with multiplicities
    monkeypatch.setattr(ot, "stack_budget", lambda n, m, problems=1: 1)
    X, Y = _structured(60, seed=3)
    rows = np.stack(list(stats.resample_indices(60, 4, scheme=scheme,
                                                rng=np.random.default_rng(1))))  # fmt: skip
    fast = ot.resampled_ot_distance(X, Y, method="sinkhorn")(rows)
    cold = np.array([metrics.ot_distance(X[r], Y[r], method="sinkhorn") for r in rows])
    mean_cost = np.array([cost_matrix(X[r], Y[r], 2.0, CPU).mean() for r in rows])
    assert np.all(np.abs(fast**2 - cold**2) <= 1e-4 * mean_cost)
    # the row order of a resample does not matter (its rows are sorted before the gather)
    shuffled = np.random.default_rng(2).permuted(rows, axis=1)
    again = ot.resampled_ot_distance(X, Y, method="sinkhorn")(shuffled)
    np.testing.assert_allclose(again, fast, rtol=1e-12)


def test_workspace_reuses_its_buffers():
    work = Workspace()
    first = work.get("K", (3, 4, 5), torch.float32, CPU)
    smaller = work.get("K", (2, 4, 5), torch.float32, CPU)
    assert smaller.data_ptr() == first.data_ptr()
    assert work.get("K", (3, 4, 5), torch.float64, CPU).dtype == torch.float64  # by dtype too
    assert work.get("K", (4, 4, 5), torch.float32, CPU).numel() == 80  # grown

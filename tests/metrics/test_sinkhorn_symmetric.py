"""The symmetric Sinkhorn of a cloud against itself: the same entropic value as the alternating
updates and POT to the tolerance, on weighted problems and float32 kernels too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign.metrics import _sinkhorn_symmetric
from geomalign.metrics._ot_solvers import cost_matrix, entropic_terms
from geomalign.metrics._sinkhorn_batch import sinkhorn_stack
from geomalign.metrics._sinkhorn_symmetric import symmetric_stack

CPU = torch.device("cpu")


def _clouds(n: int, seed: int) -> list[np.ndarray]:
    """A cloud with a low-rank signal (hundreds of alternating iterations), a Gaussian one, a
    clustered one and a cloud with repeated rows."""
    rng = np.random.default_rng(seed)
    low_rank = rng.normal(size=(n, 3)) @ rng.normal(size=(3, 6)) + 0.2 * rng.normal(size=(n, 6))
    clusters = rng.normal(size=(4, 5))[rng.integers(0, 4, n)] * 3 + rng.normal(size=(n, 5))
    repeated = rng.normal(size=(n // 3, 4))[rng.integers(0, n // 3, n)]
    return [low_rank, rng.normal(size=(n, 8)), clusters, repeated]


def _self_costs(clouds: list[np.ndarray], p: float = 2.0) -> torch.Tensor:
    return torch.stack([torch.from_numpy(cost_matrix(V, V, p, CPU)) for V in clouds])


@pytest.mark.parametrize(("reg", "p"), [(0.05, 2.0), (0.01, 2.0), (0.05, 1.0)])
def test_symmetric_solve_agrees_with_the_alternating_one_and_pot(reg, p):
    M = _self_costs(_clouds(50, seed=0), p)
    eps = reg * M.mean(dim=(1, 2))
    got = symmetric_stack(M, eps, max_iter=None)
    alternating = sinkhorn_stack(M, eps, max_iter=None)
    mean_cost = M.mean(dim=(1, 2)).numpy()
    # both stop at a marginal error of 1e-4 |a|: the values agree to that share of the cost
    assert np.all(np.abs(got.entropic - alternating.entropic).numpy() <= 1e-4 * mean_cost)
    for b, cost in enumerate(M.numpy()):
        pot = sum(entropic_terms(cost, float(eps[b]), None, None))
        assert abs(float(got.entropic[b]) - pot) <= 1e-4 * mean_cost[b]
    assert torch.equal(got.f, got.g)
    # f = g is the symmetric potential: the alternating solver's f and g straddle it
    centre = 0.5 * (alternating.f + alternating.g)
    np.testing.assert_allclose(got.f.numpy(), centre.numpy(), atol=1e-3 * mean_cost.max())


def test_distinct_rows_with_counts_iterate_as_the_repeated_problem():
    X = _clouds(30, seed=1)[0]
    rows = np.sort(np.random.default_rng(0).integers(0, 30, 30))  # a bootstrap resample
    distinct, counts = np.unique(rows, return_counts=True)
    full = _self_costs([X])
    repeated = full[:, rows][:, :, rows]
    eps = 0.02 * repeated.mean(dim=(1, 2))
    plain = symmetric_stack(repeated, eps, max_iter=None)
    weighted = symmetric_stack(
        full[:, distinct][:, :, distinct],
        eps,
        max_iter=None,
        counts=torch.from_numpy(counts).to(torch.float64)[None],
    )
    np.testing.assert_allclose(weighted.entropic.numpy(), plain.entropic.numpy(), rtol=1e-10)
    first = np.searchsorted(rows, distinct)
    np.testing.assert_allclose(weighted.f.numpy(), plain.f[:, first].numpy(), rtol=1e-9,
                               atol=1e-12 * float(eps[0]))  # fmt: skip


def test_warm_float32_kernel_changes_values_far_below_the_tolerance():
    clouds = _clouds(80, seed=2)
    full = _self_costs(clouds)
    eps = 0.05 * full.mean(dim=(1, 2))
    start = symmetric_stack(full, eps, max_iter=None)
    rows = torch.from_numpy(np.sort(np.random.default_rng(3).integers(0, 80, 80)))
    stack = full[:, rows][:, :, rows]
    warm = start.f[:, rows]
    mean_cost = stack.mean(dim=(1, 2)).numpy()
    for tol in (None, 1e-6 / np.sqrt(80)):
        wide = symmetric_stack(stack, eps, max_iter=None, warm=warm, tol=tol)
        narrow = symmetric_stack(stack, eps, max_iter=None, warm=warm, tol=tol,
                                 kernel=torch.float32)  # fmt: skip
        assert np.all(np.abs(narrow.entropic - wide.entropic).numpy() <= 1e-7 * mean_cost)
    cold = symmetric_stack(stack, eps, max_iter=None)
    assert np.all(np.abs(narrow.entropic - cold.entropic).numpy() <= 1e-4 * mean_cost)


def test_far_start_absorbs_scalings_without_changing_the_value(monkeypatch):
    absorbed = []
    absorb = _sinkhorn_symmetric._absorb
    monkeypatch.setattr(_sinkhorn_symmetric, "_absorb",
                        lambda *args: absorbed.append(1) or absorb(*args))  # fmt: skip
    M = _self_costs(_clouds(40, seed=4)[:2])
    eps = 0.05 * M.mean(dim=(1, 2))
    cold = symmetric_stack(M, eps, max_iter=None)
    assert not absorbed
    # potentials 60 eps too low: the first update multiplies the scalings by exp(60) (a
    # uniform shift is undone in one averaged step), above the threshold
    far = symmetric_stack(M, eps, max_iter=None, warm=cold.f - 60.0 * eps[:, None])
    assert absorbed
    mean_cost = M.mean(dim=(1, 2)).numpy()
    assert np.all(np.abs(far.entropic - cold.entropic).numpy() <= 1e-4 * mean_cost)


def test_own_solution_stops_at_once_and_non_convergence_raises():
    M = _self_costs(_clouds(40, seed=5))
    eps = 0.01 * M.mean(dim=(1, 2))
    cold = symmetric_stack(M, eps, max_iter=None)
    again = symmetric_stack(M, eps, max_iter=0, warm=cold.f)  # checked before any update
    np.testing.assert_allclose(again.entropic.numpy(), cold.entropic.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="did not converge in max_iter=1"):
        symmetric_stack(M, eps, max_iter=1)


def test_a_zero_cost_is_the_product_plan():
    M = torch.zeros((2, 5, 5), dtype=torch.float64)
    M[1] = _self_costs([np.arange(5.0)[:, None]])[0]
    got = symmetric_stack(M, torch.tensor([0.1, 0.1], dtype=torch.float64), max_iter=None)
    assert float(got.entropic[0]) == 0.0
    assert float(got.entropic[1]) > 0.0

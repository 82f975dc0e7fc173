"""Sinkhorn point values on the stacked solvers (POT as the reference), and the full-sample
solutions kept for the same clouds and settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign import metrics, stats
from geomalign.metrics import _sinkhorn_full
from geomalign.metrics._ot_solvers import cost_matrix, entropic_terms
from geomalign.metrics._sinkhorn_full import SOLUTIONS, solution_key, solution_memo
from geomalign.metrics._sinkhorn_parts import StackSolution

CPU = torch.device("cpu")


def _pair(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(max(n, m), 3)) @ rng.normal(size=(3, 5))
    X = S[:n] + 0.3 * rng.normal(size=(n, 5))
    return X, S[:m] + 0.3 * rng.normal(size=(m, 5)) + 0.5


def _pot(X: np.ndarray, Y: np.ndarray, value: str, reg: float = 0.05) -> tuple[float, float]:
    """POT's value of ``value`` (cost units) and the mean X-to-Y cost."""
    C = cost_matrix(X, Y, 2.0, CPU)
    eps = reg * float(C.mean())
    transport, entropy = entropic_terms(C, eps, None, None)
    if value == "transport":
        return transport, float(C.mean())
    own = [sum(entropic_terms(cost_matrix(V, V, 2.0, CPU), eps, None, None)) for V in (X, Y)]
    total = transport + entropy - (0.5 * (own[0] + own[1]) if value == "divergence" else 0.0)
    return max(total, 0.0), float(C.mean())


@pytest.mark.parametrize("value", ["divergence", "entropic", "transport"])
@pytest.mark.parametrize(("n", "m", "seed"), [(40, 40, 0), (60, 60, 1), (30, 45, 2)])
def test_point_values_agree_with_pot_to_the_tolerance(value, n, m, seed):
    X, Y = _pair(n, m, seed)
    got = metrics.ot_distance(X, Y, method="sinkhorn", sinkhorn=value) ** 2
    pot, mean_cost = _pot(X, Y, value)
    assert abs(got - pot) <= 1e-4 * mean_cost


def test_the_divergence_of_a_cloud_with_itself_is_zero():
    X, _ = _pair(50, 50, 3)
    assert metrics.ot_distance(X, X.copy(), method="sinkhorn") == 0.0
    rows = np.random.default_rng(0).integers(0, 50, (4, 50))
    at = metrics.ot.resampled_ot_distance(X, X, method="sinkhorn")
    assert np.array_equal(at(rows), np.zeros(4))


def test_the_full_sample_is_solved_once_and_gives_the_same_values(monkeypatch):
    SOLUTIONS.clear()
    X, Y = _pair(50, 50, 4)
    rows = np.stack(list(stats.resample_indices(50, 5, scheme="bootstrap",
                                                rng=np.random.default_rng(1))))  # fmt: skip
    alone = metrics.ot.resampled_ot_distance(X, Y, method="sinkhorn")(rows)
    SOLUTIONS.clear()
    solved = []
    solve = _sinkhorn_full.sinkhorn_cost_stack

    def counted(*args, **kwargs):
        solved.append(1)
        return solve(*args, **kwargs)

    monkeypatch.setattr(_sinkhorn_full, "sinkhorn_cost_stack", counted)
    value = metrics.ot_distance(X, Y, method="sinkhorn")
    after = metrics.ot.resampled_ot_distance(X, Y, method="sinkhorn")(rows)
    again = metrics.ot_distance(X, Y, method="sinkhorn")
    assert len(solved) == 1  # the point value's solve, kept for the resamples' start
    assert np.array_equal(after, alone)
    assert value == again
    # other settings, or other rows, are other problems
    metrics.ot_distance(X, Y, method="sinkhorn", reg=0.1)
    metrics.ot_distance(X, Y + 1e-9, method="sinkhorn")
    assert len(solved) == 3


def _solution(n: int, fill: float) -> StackSolution:
    f = torch.full((3, n), fill, dtype=torch.float64)
    return StackSolution(None, torch.zeros(3, dtype=torch.float64), f, f.clone())


def test_memo_hands_out_copies_and_keeps_its_bound():
    A, B = (torch.from_numpy(V) for V in _pair(10, 10, 5))
    memo = solution_memo(2 * 8 * (3 + 2 * 3 * 10))  # two solutions of 10 rows
    keys = [solution_key(A, B, (reg,)) for reg in (0.1, 0.2, 0.3)]
    memo.put(keys[0], (1.0, _solution(10, 1.0)))
    found = memo.get(keys[0])
    assert found is not None
    found[1].f.fill_(7.0)  # a caller changing its copy does not change the memo's
    again = memo.get(keys[0])
    assert again is not None
    assert float(again[1].f.max()) == 1.0
    memo.put(keys[1], (2.0, _solution(10, 2.0)))
    memo.get(keys[0])  # the most recent now
    memo.put(keys[2], (3.0, _solution(10, 3.0)))
    assert memo.get(keys[1]) is None  # the least recent went
    assert memo.get(keys[0]) is not None
    assert memo.get(keys[2]) is not None
    assert solution_key(A, B, ()) != solution_key(B, A, ())

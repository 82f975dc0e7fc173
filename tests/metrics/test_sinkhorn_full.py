"""Sinkhorn point values on the stacked solvers, POT as the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign import metrics
from geomalign.metrics._ot_solvers import cost_matrix, entropic_terms

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

"""Measures on many resamples at once agree with the measure on each resample's rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from geomalign import metrics, stats
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._neighbors import knn
from geomalign.metrics._ot_solvers import cost_matrix, entropic_terms
from geomalign.metrics._sinkhorn_batch import sinkhorn_stack
from geomalign.metrics.ot import resampled_ot_distance

# float32 products in CKA (a resample's Gram entries are centred on other rows); Sinkhorn's
# resamples start from the full sample's potentials and stop at the same marginal error, so they
# agree with a cold start to that tolerance (tested on the costs below), not to rounding
TOLERANCE = {"cka-linear": 1e-5, "cka-linear-debiased": 1e-5, "cka-rbf": 1e-12, "ot-sinkhorn": 1e-4}
WITH_HELPER = sorted(name for name in metrics.available() if metrics.get(name).resampled)


def _pair(n: int, width: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 4)) @ rng.standard_normal((4, width))
    Y = X + 0.5 * rng.standard_normal((n, width)) + 1.0
    return X.astype(np.float32), Y.astype(np.float32)


def test_every_neighbourhood_and_kernel_measure_has_the_helper():
    assert {"cka-linear", "mutual-knn", "cknna", "ot-sinkhorn", "id-gride"} <= set(WITH_HELPER)


@pytest.mark.parametrize("name", WITH_HELPER)
@pytest.mark.parametrize("scheme", ["bootstrap", "half-sampling"])
def test_equals_the_measure_on_each_resample(name, scheme):
    m = metrics.get(name)
    X, Y = _pair(70)
    views = (X,) if m.n_views == 1 else (X, Y)
    rng = np.random.default_rng(1)
    rows = np.stack(list(stats.resample_indices(70, 6, scheme=scheme, rng=rng)))
    with warnings.catch_warnings():  # bootstrap rows repeat: dimensions drop the duplicates
        warnings.simplefilter("ignore", UserWarning)
        fast = stats.resampled_values(m, views, rows)
        slow = np.array([m(*(V[r] for V in views)) for r in rows])
    assert fast.shape == (6,)
    np.testing.assert_allclose(fast, slow, rtol=TOLERANCE.get(name, 1e-10), atol=1e-12)


def test_undefined_resample_raises_as_the_measure_does():
    # half-samples of 40 rows are below GRIDE's 33 rows; the analysis then drops the CI
    X, _ = _pair(40)
    rows = np.stack(list(stats.resample_indices(40, 3, scheme="half-sampling",
                                                rng=np.random.default_rng(0))))  # fmt: skip
    with pytest.raises(ValueError, match="at least 33 samples"):
        stats.resampled_values("id-gride", (X,), rows)


def test_half_sample_neighbours_are_the_subset_search():
    X, _ = _pair(200, 6)
    lists = HalfSampleNeighbours(X, k=5, metric="euclidean", working_memory=None, device=None,
                                 name="X")  # fmt: skip
    rows = np.sort(np.random.default_rng(0).choice(200, 100, replace=False))
    other = np.sort(np.random.default_rng(1).choice(200, 100, replace=False))
    repeated = np.array([0, 0, *range(1, 99)])  # repeated rows: no shortcut
    found = lists.within_each(np.stack([rows, repeated, other]))
    for subset, got in ((rows, found[0]), (other, found[2])):
        direct = knn(X[subset], k=5)
        np.testing.assert_array_equal(got.indices, direct.indices)
        np.testing.assert_array_equal(got.distances, direct.distances)
    assert found[1] is None
    assert lists.within_each(rows[None, :5]) == [None]  # fewer rows than neighbours
    told, indices, distances = lists.within_all(np.stack([rows, repeated, other]))
    np.testing.assert_array_equal(told, [True, False, True])
    np.testing.assert_array_equal(indices, [found[0].indices, found[2].indices])
    np.testing.assert_array_equal(distances, [found[0].distances, found[2].distances])


def _pot_stabilized(M, epsilon, warmstart=None):
    """POT's sinkhorn_stabilized on ``M`` divided by its mean, as the one-problem solver, its
    marginal error checked after every iteration."""
    import ot

    n, m = M.shape
    scale = M.mean()
    ws = None if warmstart is None else tuple(w / scale for w in warmstart)
    plan, log = ot.bregman.sinkhorn_stabilized(
        np.full(n, 1 / n), np.full(m, 1 / m), M / scale, epsilon / scale, numItermax=10_000,
        stopThr=1e-4 / np.sqrt(m), warmstart=ws, log=True, warn=False, print_period=1,
        tau=1e3 * max(n, m),
    )  # fmt: skip
    kl = np.sum(plan[plan > 0] * np.log(plan[plan > 0] * n * m))
    return np.sum(plan * M) + epsilon * kl, [w * scale for w in log["warmstart"]]


def _costs(reg):
    rng = np.random.default_rng(0)
    costs = []
    for shift in (0.0, 0.3, 3.0):
        A, B = rng.normal(size=(15, 3)), rng.normal(size=(12, 3)) + shift
        costs.append(cost_matrix(A, B, 2.0, torch.device("cpu")))
    M = np.stack(costs)
    return M, reg * M.mean(axis=(1, 2))


@pytest.mark.parametrize("reg", [0.05, 0.005])  # the small one absorbs scalings into potentials
def test_stacked_sinkhorn_iterates_are_pot_s(reg):
    M, eps = _costs(reg)
    M = np.concatenate([M, np.zeros((1, 15, 12))])  # every point on every other: cost 0
    eps = np.append(eps, 0.1)
    got = sinkhorn_stack(torch.from_numpy(M), torch.from_numpy(eps), max_iter=None,
                         transport=True)  # fmt: skip
    for b, (cost, e) in enumerate(zip(M[:-1], eps[:-1], strict=True)):
        value, (f, g) = _pot_stabilized(cost, e)
        np.testing.assert_allclose(float(got.entropic[b]), value, rtol=1e-10)
        # the one-problem solver checks every 20th iteration: it stops within the tolerance
        transport, entropy = entropic_terms(cost, e, None, None)
        np.testing.assert_allclose(float(got.transport[b]), transport, rtol=1e-4)
        np.testing.assert_allclose(float(got.entropic[b]), transport + entropy, rtol=1e-4)
        np.testing.assert_allclose(got.f[b].numpy(), f, rtol=1e-9, atol=1e-12 * cost.mean())
        np.testing.assert_allclose(got.g[b].numpy(), g, rtol=1e-9, atol=1e-12 * cost.mean())
    assert float(got.entropic[-1]) == 0.0
    assert float(got.transport[-1]) == 0.0


def test_warm_started_stack_iterates_as_pot_from_the_same_start():
    M, eps = _costs(0.05)
    rng = np.random.default_rng(3)
    f = torch.from_numpy(rng.normal(size=(3, 15)))
    g = torch.from_numpy(rng.normal(size=(3, 12)))
    got = sinkhorn_stack(torch.from_numpy(M), torch.from_numpy(eps), max_iter=None, warm=(f, g))
    for b in range(3):  # the stack starts from the potentials shifted by eps log n, eps log m
        start = (f[b].numpy() + eps[b] * np.log(15), g[b].numpy() + eps[b] * np.log(12))
        value, _ = _pot_stabilized(M[b], eps[b], start)
        np.testing.assert_allclose(float(got.entropic[b]), value, rtol=1e-10)


def test_a_problem_warm_started_from_its_own_solution_stops_at_the_first_check():
    M, eps = torch.from_numpy(_costs(0.05)[0]), torch.from_numpy(_costs(0.05)[1])
    cold = sinkhorn_stack(M, eps, max_iter=None)
    with pytest.raises(RuntimeError, match="did not converge in max_iter=1"):
        sinkhorn_stack(M, eps, max_iter=1)
    warm = sinkhorn_stack(M, eps, max_iter=1, warm=(cold.f, cold.g))
    # one more iteration from a solution within the tolerance: a change of that order
    np.testing.assert_allclose(warm.entropic.numpy(), cold.entropic.numpy(), rtol=1e-4)


@pytest.mark.parametrize("scheme", ["bootstrap", "half-sampling"])
def test_warm_started_resamples_agree_with_cold_solves_to_the_tolerance(scheme):
    # clouds with structure: hundreds of iterations, so a warm start changes where they stop
    rng = np.random.default_rng(0)
    S = rng.normal(size=(40, 6))
    X, Y = S + 0.3 * rng.normal(size=(40, 6)), S + 0.3 * rng.normal(size=(40, 6)) + 0.3
    rows = np.stack(list(stats.resample_indices(40, 8, scheme=scheme,
                                                rng=np.random.default_rng(1))))  # fmt: skip
    fast = resampled_ot_distance(X, Y, method="sinkhorn")(rows)
    cold = np.array([metrics.ot_distance(X[r], Y[r], method="sinkhorn") for r in rows])
    mean_cost = np.array([cost_matrix(X[r], Y[r], 2.0, torch.device("cpu")).mean() for r in rows])
    # both stop at a marginal error of 1e-4 |b|: the divergences agree to that share of the cost
    assert np.all(np.abs(fast**2 - cold**2) <= 1e-4 * mean_cost)
    assert not np.array_equal(fast, cold)  # a different start, not the same iterates


def test_stacked_sinkhorn_reports_non_convergence():
    X, Y = _pair(30)
    with pytest.raises(RuntimeError, match="did not converge in max_iter=3"):
        metrics.ot_distance(X, Y, method="sinkhorn", reg=0.001, max_iter=3)
    at = resampled_ot_distance(X, Y, method="sinkhorn", reg=0.001, max_iter=3)
    with pytest.raises(RuntimeError, match="did not converge in max_iter=3"):
        at(np.arange(30)[None, :])


@pytest.mark.parametrize(
    "options",
    [{"sinkhorn": "entropic"}, {"sinkhorn": "transport"}, {"epsilon": 0.5, "reg": 0.05},
     {"method": "sliced", "random_state": 0}, {"method": "emd"}],
)  # fmt: skip
def test_resampled_ot_options(options):
    X, Y = _pair(25)
    options = {"method": "sinkhorn", **options}
    rows = np.random.default_rng(0).integers(0, 25, (3, 25))
    fast = resampled_ot_distance(X, Y, **options)(rows)
    slow = [metrics.ot_distance(X[r], Y[r], **options) for r in rows]
    warm = options["method"] == "sinkhorn"  # started from the full sample's potentials
    np.testing.assert_allclose(fast, slow, rtol=1e-4 if warm else 1e-10)


@pytest.mark.parametrize("name", WITH_HELPER)
def test_cpu_tensors_on_a_given_device_take_the_same_path(name):
    m = metrics.on_device(metrics.get(name), "cpu")
    X, Y = _pair(70)
    views = (X,) if m.n_views == 1 else (X, Y)
    rows = np.stack(list(stats.resample_indices(70, 3, scheme=m.resampling,
                                                rng=np.random.default_rng(2))))  # fmt: skip
    tensors = tuple(torch.from_numpy(V) for V in views)
    np.testing.assert_allclose(
        stats.resampled_values(m, tensors, rows),
        stats.resampled_values(metrics.get(name), views, rows),
        rtol=1e-12,
    )

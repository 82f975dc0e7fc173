"""Measures on many resamples at once agree with the measure on each resample's rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from geomalign import metrics, stats
from geomalign.metrics._half_neighbours import HalfSampleNeighbours
from geomalign.metrics._neighbors import knn
from geomalign.metrics._ot_solvers import cost_matrix, sinkhorn_plan
from geomalign.metrics._sinkhorn_batch import sinkhorn_plans
from geomalign.metrics.ot import resampled_ot_distance

# float32 products in CKA (a resample's Gram entries are centred on other rows), float64 in OT
TOLERANCE = {"cka-linear": 1e-5, "cka-linear-debiased": 1e-5, "cka-rbf": 1e-12}
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
    found = lists.within(rows)
    direct = knn(X[rows], k=5)
    np.testing.assert_array_equal(found.indices, direct.indices)
    np.testing.assert_array_equal(found.distances, direct.distances)
    assert lists.within(np.array([0, 0, *range(1, 60)])) is None  # repeated rows: no shortcut
    assert lists.within(rows[:5]) is None  # fewer rows than neighbours


@pytest.mark.parametrize("reg", [0.05, 0.005])  # the small one absorbs scalings into potentials
def test_stacked_sinkhorn_plans_equal_pot(reg):
    rng = np.random.default_rng(0)
    costs = []
    for shift in (0.0, 0.3, 3.0):
        A, B = rng.normal(size=(15, 3)), rng.normal(size=(15, 3)) + shift
        costs.append(cost_matrix(A, B, 2.0, torch.device("cpu")))
    costs.append(np.zeros((15, 15)))  # every point on every other: the product plan
    M = np.stack(costs)
    eps = reg * np.maximum(M.mean(axis=(1, 2)), 1e-3)
    plans = sinkhorn_plans(torch.from_numpy(M), torch.from_numpy(eps), None).numpy()
    for plan, cost, e in zip(plans, M, eps, strict=True):
        np.testing.assert_allclose(
            plan, sinkhorn_plan(cost, float(e), None), rtol=1e-10, atol=1e-15
        )


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
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


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

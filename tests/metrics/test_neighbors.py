import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from geomalign.metrics import _neighbors
from geomalign.metrics._exact_search import _column_smallest
from geomalign.metrics._neighbors import knn


def _brute(X, metric):
    D = cdist(X.astype(np.float64), X.astype(np.float64), metric=metric)
    np.fill_diagonal(D, np.inf)
    return D


def _assert_matches_brute(nb, X, k, metric):
    D = _brute(X, metric)
    ref = np.sort(D, axis=1)[:, :k]
    np.testing.assert_allclose(nb.distances, ref, rtol=1e-6, atol=1e-6)
    # the listed indices are at the listed distances (ties may be listed in either order)
    np.testing.assert_allclose(
        np.take_along_axis(D, nb.indices, axis=1), nb.distances, rtol=1e-6, atol=1e-6
    )
    assert not (nb.indices == np.arange(len(X))[:, None]).any()
    assert (np.diff(nb.distances, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(metric, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((200, 16)).astype(dtype)
    nb = knn(X, k=7, metric=metric)
    assert nb.indices.dtype == np.int64
    assert nb.distances.dtype == np.float64
    assert nb.indices.shape == nb.distances.shape == (200, 7)
    _assert_matches_brute(nb, X, 7, metric)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("working_memory", [1e-4, 0.003, 0.05])
def test_blocked_equals_one_shot(metric, working_memory):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((301, 9)).astype(np.float32)
    one = knn(X, k=12, metric=metric)
    blocked = knn(X, k=12, metric=metric, working_memory=working_memory)
    np.testing.assert_array_equal(blocked.indices, one.indices)
    np.testing.assert_array_equal(blocked.distances, one.distances)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_grouped_column_selection_matches_brute_force(metric):
    # blocks of about 200 rows: the later rows' candidates in a block are picked group-wise
    rng = np.random.default_rng(8)
    X = rng.standard_normal((1500, 8)).astype(np.float32)
    X[700:710] = X[100]  # duplicates spread over blocks and groups
    nb = knn(X, k=5, metric=metric, working_memory=1500 * 8 * 200 / 2**20)
    _assert_matches_brute(nb, X, 5, metric)


@pytest.mark.parametrize("group", [1, 2, 5, 10])
def test_column_smallest_equals_topk_with_ties(group):
    # small integers: many ties, including across groups and at the k-th value
    S = torch.from_numpy(np.random.default_rng(9).integers(0, 4, size=(100, 300))).float()
    values, rows = _column_smallest(S, 7, group)
    direct = torch.topk(S, 7, dim=0, largest=False).values
    assert torch.equal(values.sort(dim=0).values, direct)
    assert torch.equal(torch.gather(S, 0, rows), values)
    assert (rows.sort(dim=0).values.diff(dim=0) > 0).all()  # no row listed twice


def test_distances_recomputed_on_two_threads_equal_one_thread():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((600, 512)).astype(np.float32)  # several recompute chunks
    one = knn(X, k=8)
    torch.set_num_threads(2)  # the suite's fixture restores the count
    two = knn(X, k=8)
    np.testing.assert_array_equal(two.indices, one.indices)
    np.testing.assert_array_equal(two.distances, one.distances)
    _assert_matches_brute(two, X, 8, "euclidean")


def test_k_larger_than_block():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 3))
    nb = knn(X, k=39, working_memory=1e-4)  # one row per block
    _assert_matches_brute(nb, X, 39, "euclidean")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_duplicates_are_neighbours_at_exactly_zero(metric):
    rng = np.random.default_rng(5)
    X = (100 + rng.standard_normal((50, 64))).astype(np.float32)  # large norms, close points
    X[10] = X[20]
    X[30] = X[20]
    nb = knn(X, k=3, metric=metric)
    for row, others in [(10, {20, 30}), (20, {10, 30}), (30, {10, 20})]:
        assert set(nb.indices[row, :2]) == others
        assert (nb.distances[row, :2] == 0.0).all()
        assert nb.distances[row, 2] > 0.0


def test_near_points_keep_precision():
    # ||x||^2 + ||y||^2 - 2 x.y in float32 cannot resolve a 1e-3 distance at norm 1e3
    rng = np.random.default_rng(6)
    base = rng.standard_normal(256)
    base *= 1e3 / np.linalg.norm(base)
    near = base + 1e-3 * rng.standard_normal(256)
    far = base + 50 * rng.standard_normal(256)
    X = np.stack([base, near, far]).astype(np.float32)
    nb = knn(X, k=1)
    expected = np.linalg.norm(X[0].astype(np.float64) - X[1].astype(np.float64))
    assert nb.indices[0, 0] == 1
    np.testing.assert_allclose(nb.distances[0, 0], expected, rtol=1e-6)


def test_torch_input_and_device():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    a = knn(torch.from_numpy(X), k=4, metric="cosine")
    b = knn(X, k=4, metric="cosine", device="cpu")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_read_only_input_is_accepted():
    X = np.broadcast_to(np.arange(6.0)[:, None], (6, 2))
    nb = knn(X, k=1)
    assert nb.distances[:, 0] == pytest.approx(np.full(6, np.sqrt(2.0)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, r"1 <= k < n_samples; got k=0 with n_samples=10"),
        ({"k": 10}, ValueError, r"got k=10 with n_samples=10"),
        ({"k": 2.0}, TypeError, r"k must be an integer"),
        ({"k": 2, "metric": "manhattan"}, ValueError, r"metric must be one of"),
        ({"k": 2, "working_memory": 0}, ValueError, r"working_memory must be a positive"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        knn(np.random.default_rng(0).standard_normal((10, 3)), **kwargs)


def test_zero_row_with_cosine():
    X = np.ones((5, 3))
    X[2] = 0
    with pytest.raises(ValueError, match=r"all-zero rows; X has 1 of them \(rows \[2\]\)"):
        knn(X, k=2, metric="cosine")


def test_repeated_searches_are_found_by_the_rows_contents(monkeypatch):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((80, 6)).astype(np.float32)
    first = knn(X, k=5)
    searched, select = [], _neighbors.exact_candidates
    monkeypatch.setattr(_neighbors, "exact_candidates", lambda *a: searched.append(1) or select(*a))
    again = knn(X.copy(), k=5)  # the same rows in another array: not searched again
    np.testing.assert_array_equal(again.indices, first.indices)
    np.testing.assert_array_equal(again.distances, first.distances)
    assert not searched
    again.indices[:] = 0  # a caller's lists are its own
    np.testing.assert_array_equal(knn(X, k=5).indices, first.indices)
    knn(X, k=6)  # other settings, other rows: searched
    X[3, 0] += 1.0
    changed = knn(X, k=5)
    assert len(searched) == 2
    _assert_matches_brute(changed, X, 5, "euclidean")

"""Options that reproduce other tools' conventions, each against its reference's formula.

Each reference formula is written out here from the paper or the reference code's definition
(plain NumPy, dense matrices), independently of the package's implementation.
"""

import numpy as np
import ot
import pytest

from geomalign import metrics


def _pair(n: int = 50, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.tanh(X @ rng.standard_normal((d, d))) + 0.3 * rng.standard_normal((n, d))


def _sq_distances(X: np.ndarray) -> np.ndarray:
    return ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)


def _centred(K: np.ndarray) -> np.ndarray:
    H = np.eye(len(K)) - 1.0 / len(K)
    return H @ K @ H


def _biased_cka(K: np.ndarray, L: np.ndarray) -> float:
    Kc, Lc = _centred(K), _centred(L)
    return float((Kc * Lc).sum() / np.sqrt((Kc * Kc).sum() * (Lc * Lc).sum()))


# --- RBF CKA --------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_cka_kornblith_median(threshold):
    # Kornblith et al.'s gram_rbf: exp(-d^2 / (2 threshold^2 median(d^2))), the median taken
    # over all n^2 squared distances (zero diagonal included), np.median averaging the middle two
    X, Y = _pair()

    def gram(A):
        D2 = _sq_distances(A)
        return np.exp(-D2 / (2.0 * threshold**2 * np.median(D2)))

    expected = _biased_cka(gram(X), gram(Y))
    got = metrics.cka(X, Y, kernel="rbf", median="all", sigma_factor=threshold)
    assert got == pytest.approx(expected, rel=1e-9)
    # the default median over distinct pairs is a different number
    assert metrics.cka(X, Y, kernel="rbf", sigma_factor=threshold) != pytest.approx(got, rel=1e-6)


def test_rbf_cka_absolute_sigma():
    # platonic-rep's cka(kernel_metric="rbf", rbf_sigma=s): exp(-cdist^2 / (2 s^2)), biased
    # HSIC trace(K H L H) (its 1e-6 added to the denominator left out)
    X, Y = _pair()
    sigma = 1.7
    expected = _biased_cka(
        np.exp(-_sq_distances(X) / (2 * sigma**2)), np.exp(-_sq_distances(Y) / (2 * sigma**2))
    )
    assert metrics.cka(X, Y, kernel="rbf", sigma=sigma) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="sigma is an absolute bandwidth"):
        metrics.cka(X, Y, kernel="rbf", sigma=sigma, sigma_factor=2.0)


# --- Sinkhorn, sliced, Gromov-Wasserstein ------------------------------------------------------


def _sinkhorn_plan(C: np.ndarray, eps: float) -> np.ndarray:
    """Cuturi's iterations u = a / K v, v = b / K^T u, in the log domain, to convergence."""
    n, m = C.shape
    log_a, log_b = np.full(n, -np.log(n)), np.full(m, -np.log(m))
    f, g = np.zeros(n), np.zeros(m)
    for _ in range(20_000):
        f = eps * log_a - eps * np.logaddexp.reduce((g[None, :] - C) / eps, axis=1)
        g = eps * log_b - eps * np.logaddexp.reduce((f[:, None] - C) / eps, axis=0)
        P = np.exp((f[:, None] + g[None, :] - C) / eps)
        if np.abs(P.sum(axis=1) - 1.0 / n).sum() < 1e-11:
            return P
    raise AssertionError("reference Sinkhorn did not converge")


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_sinkhorn_absolute_epsilon_transport_and_entropic_costs(eps):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) + 0.5
    C = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
    P = _sinkhorn_plan(C, eps)
    transport = float((P * C).sum())
    entropic = transport + eps * float((P * np.log(P * P.size)).sum())  # KL(P | a b^T)
    options = {"method": "sinkhorn", "epsilon": eps, "tol": 1e-12}
    got = metrics.ot_distance(X, Y, sinkhorn="transport", **options)
    assert got**2 == pytest.approx(transport, rel=1e-7)
    # POT's sinkhorn2 returns the same <P, C>
    pot = ot.sinkhorn2(np.full(30, 1 / 30), np.full(25, 1 / 25), C, eps, stopThr=1e-12)
    assert got**2 == pytest.approx(float(pot), rel=1e-6)
    got = metrics.ot_distance(X, Y, sinkhorn="entropic", **options)
    assert got**2 == pytest.approx(entropic, rel=1e-7)
    with pytest.raises(ValueError, match="give one of them"):
        metrics.ot_distance(X, Y, method="sinkhorn", epsilon=eps, reg=0.1)


def test_sinkhorn_divergence_at_an_absolute_epsilon():
    # Feydy et al.: OT_eps(X, Y) - (OT_eps(X, X) + OT_eps(Y, Y)) / 2, one epsilon for all three
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) + 0.5
    eps = 2.0

    def entropic(A, B):
        C = ((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
        P = _sinkhorn_plan(C, eps)
        return float((P * C).sum()) + eps * float((P * np.log(P * P.size)).sum())

    expected = entropic(X, Y) - 0.5 * (entropic(X, X) + entropic(Y, Y))
    got = metrics.ot_distance(X, Y, method="sinkhorn", epsilon=eps, tol=1e-12)
    assert got**2 == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_sliced_wasserstein_with_given_projections(p):
    # POT's sliced_wasserstein_distance(projections=theta): mean over the columns theta of the
    # 1-D W_p^p between the sorted projections, then the p-th root; directions used as given
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((40, 5)), 2.0 * rng.standard_normal((40, 5))
    theta = rng.standard_normal((5, 7))
    per_direction = [np.mean(np.abs(np.sort(X @ t) - np.sort(Y @ t)) ** p) for t in theta.T]
    expected = np.mean(per_direction) ** (1.0 / p)
    got = metrics.ot_distance(X, Y, method="sliced", p=p, projections=theta)
    assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match=r"one row per feature of X and Y \(5\)"):
        metrics.ot_distance(X, Y, method="sliced", projections=theta[:4])


@pytest.mark.parametrize("normalisation", ["max", "none"])
def test_gromov_wasserstein_normalisations(normalisation):
    # POT's example: C1 / C1.max() (or the raw distances) into gromov_wasserstein2; its value is
    # the minimum of sum (C1_ik - C2_jl)^2 T_ij T_kl, and d_GW = sqrt(that) / 2
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((25, 4)), rng.standard_normal((20, 2))
    C1, C2 = np.sqrt(_sq_distances(X)), np.sqrt(_sq_distances(Y))
    if normalisation == "max":
        C1, C2 = C1 / C1.max(), C2 / C2.max()
    loss = ot.gromov.gromov_wasserstein2(
        C1, C2, np.full(25, 1 / 25), np.full(20, 1 / 20), "square_loss", tol_rel=1e-9,
        tol_abs=1e-9,
    )  # fmt: skip
    got = metrics.gromov_wasserstein(X, Y, normalisation=normalisation)
    assert got == pytest.approx(0.5 * np.sqrt(float(loss)), rel=1e-5)


# --- modality gap ---------------------------------------------------------------------------


def test_centroid_modality_gap_of_liang_et_al():
    # Liang et al.: gap = mean of normalised image embeddings - mean of normalised text ones
    X, Y = _pair(d=6)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    expected = np.linalg.norm(Xn.mean(axis=0) - Yn.mean(axis=0))
    assert metrics.modality_gap_distance(X, Y) == pytest.approx(expected, rel=1e-12)
    # unpaired: a shuffle of Y changes the median paired cosine, not the centroid distance
    perm = np.random.default_rng(0).permutation(len(Y))
    assert metrics.modality_gap_distance(X, Y[perm]) == pytest.approx(expected, rel=1e-12)


# --- SVCCA ----------------------------------------------------------------------------------


def _canonical_correlations(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """CCA of two centred views by QR: singular values of Q_A^T Q_B."""
    qa = np.linalg.qr(A - A.mean(axis=0))[0]
    qb = np.linalg.qr(B - B.mean(axis=0))[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def test_svcca_per_view_component_counts():
    # Raghu et al.: project each centred view on its top r principal directions, then CCA
    X, Y = _pair(n=80, d=10)

    def top(A, r):
        Ac = A - A.mean(axis=0)
        return Ac @ np.linalg.svd(Ac, full_matrices=False)[2][:r].T

    expected = _canonical_correlations(top(X, 3), top(Y, 6))[:3].mean()
    assert metrics.svcca(X, Y, n_components=(3, 6)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("accept_rate", [0.6, 0.9, 0.99])
def test_svcca_anatome_sum_of_singular_values_rule(accept_rate):
    # anatome's svcca_distance: SVD of the uncentred view, keep the directions whose cumulative
    # share of the sum of singular values is below accept_rate, project, then CCA of the
    # centred projections; distance = 1 - mean canonical correlation
    X, Y = _pair(n=80, d=10)
    X, Y = X + 3.0, Y - 1.0  # a mean, which the uncentred SVD sees

    def reduce(A):
        _, s, vt = np.linalg.svd(A, full_matrices=False)
        return A @ vt[: int((np.cumsum(s) / s.sum() < accept_rate).sum())].T

    rx, ry = reduce(X), reduce(Y)
    distance = 1.0 - _canonical_correlations(rx, ry).sum() / min(rx.shape[1], ry.shape[1])
    got = metrics.svcca(X, Y, n_components=accept_rate, reduction="anatome")
    assert 1.0 - got == pytest.approx(distance, rel=1e-9, abs=1e-12)


# --- information imbalance ------------------------------------------------------------------


def test_information_imbalance_both_directions():
    # Glielmo et al.: Delta(A -> B) = 2 / n^2 sum_i rank_B(i, nearest_A(i)), dense ranks
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 3))
    Y = X[:, :2] + 0.1 * rng.standard_normal((60, 2))

    def delta(A, B):
        DA, DB = _sq_distances(A), _sq_distances(B)
        np.fill_diagonal(DA, np.inf)
        np.fill_diagonal(DB, np.inf)
        nearest = DA.argmin(axis=1)
        target = DB[np.arange(60), nearest]
        ranks = (DB < target[:, None]).sum(axis=1) + 1
        return 2.0 * ranks.mean() / 60

    both = metrics.information_imbalances(X, Y)
    assert both.x_to_y == pytest.approx(delta(X, Y), abs=1e-12)
    assert both.y_to_x == pytest.approx(delta(Y, X), abs=1e-12)
    assert both.x_to_y < both.y_to_x  # X holds Y's information, not the reverse


# --- platonic-rep's neighbour lists ---------------------------------------------------------


def _platonic_knn(feats: np.ndarray, k: int) -> np.ndarray:
    """platonic-rep's compute_nearest_neighbors: rows of feats @ feats.T, self set to -1e8,
    sorted in descending order."""
    S = feats @ feats.T
    np.fill_diagonal(S, -1e8)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _lcs(x, y) -> int:
    table = np.zeros((len(x) + 1, len(y) + 1), dtype=int)
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                table[i, j] = table[i - 1, j - 1] + 1
            else:
                table[i, j] = max(table[i - 1, j], table[i, j - 1])
    return int(table[-1, -1])


def _levenshtein(x, y) -> int:
    previous = list(range(len(y) + 1))
    for i in range(1, len(x) + 1):
        current = [i]
        for j in range(1, len(y) + 1):
            cost = 0 if x[i - 1] == y[j - 1] else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


def _unit(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
def test_platonic_knn_measures(metric):
    # compute_score(normalize=True) feeds L2-normalised rows (cosine); normalize=False the raw
    # rows, whose neighbours are then by raw inner product
    rng = np.random.default_rng(5)
    X = rng.standard_normal((70, 5)) * rng.uniform(0.2, 3.0, size=(70, 1))
    Y = X @ rng.standard_normal((5, 5)) + 0.8 * rng.standard_normal((70, 5))
    k = 6
    prep = _unit if metric == "cosine" else (lambda A: A)
    a, b = _platonic_knn(prep(X), k), _platonic_knn(prep(Y), k)
    mutual = np.mean([len(set(a[i]) & set(b[i])) / k for i in range(70)])
    lcs = np.mean([_lcs(a[i], b[i]) for i in range(70)])
    edit = 1.0 - np.mean([_levenshtein(a[i], b[i]) for i in range(70)]) / k
    assert metrics.mutual_knn(X, Y, k=k, metric=metric) == pytest.approx(mutual, abs=1e-12)
    assert metrics.lcs_knn(X, Y, k=k, metric=metric) * k == pytest.approx(lcs, abs=1e-12)
    assert metrics.edit_distance_knn(X, Y, k=k, metric=metric) == pytest.approx(edit, abs=1e-12)
    if metric == "inner_product":  # raw inner products rank differently from cosines
        assert metrics.mutual_knn(X, Y, k=k) != pytest.approx(mutual, abs=1e-3)


@pytest.mark.parametrize("exact", [False, True])
def test_platonic_global_outlier_clip(exact):
    # remove_outliers on feats of shape (N, L, D): exact sorts all |x| and takes entry
    # int(q * numel); otherwise the per-sample quantile over its L x D values, averaged
    rng = np.random.default_rng(6)
    feats = rng.standard_t(3, size=(30, 4, 7))
    q = 0.95
    if exact:
        expected = np.sort(np.abs(feats).reshape(-1))[int(q * feats.size)]
    else:
        expected = np.quantile(np.abs(feats).reshape(30, -1), q, axis=1).mean()
    layers = [feats[:, i, :] for i in range(4)]
    assert metrics.outlier_clip_threshold(layers, quantile=q, exact=exact) == pytest.approx(
        expected, rel=1e-12
    )
    assert metrics.outlier_clip_threshold(feats, quantile=q, exact=exact) == pytest.approx(
        expected, rel=1e-12
    )


def test_platonic_best_layer_pair():
    # compute_score: every layer pair, the largest score and the first (i, j) reaching it
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((60, 5)) for _ in range(3)]
    ys = [xs[1] @ rng.standard_normal((5, 5)) + s * rng.standard_normal((60, 5)) for s in (2, 0.1)]
    best = metrics.best_layer_pair(xs, ys, measure="mutual-knn", k=5)
    expected = np.array([[metrics.mutual_knn(x, y, k=5) for y in ys] for x in xs])
    np.testing.assert_array_equal(best.scores, expected)
    i, j = np.unravel_index(np.argmax(expected), expected.shape)
    assert (best.x_layer, best.y_layer, best.score) == (i, j, expected[i, j])
    assert (best.x_layer, best.y_layer) == (1, 1)
    low = metrics.best_layer_pair(xs, ys, measure="ot-emd")  # a distance: the smallest
    assert low.score == low.scores.min()


def _hsic_song(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012, eq. 5: the unbiased HSIC, diagonals set to 0."""
    n = len(K)
    K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    total = np.trace(K @ L) + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2 * (K @ L).sum() / (n - 2)
    return float(total / (n * (n - 3)))


def _hsic_trace(K: np.ndarray, L: np.ndarray) -> float:
    """The biased HSIC of the original CKA, trace(K H L H)."""
    H = np.eye(len(K)) - 1.0 / len(K)
    return float(np.trace(K @ H @ L @ H))


def _platonic_cknna(A, B, k, unbiased, distance_agnostic):
    """platonic-rep's cknna on features A, B: kernels A A^T, B B^T; each row's top-k entries
    (diagonal excluded when unbiased, included otherwise); HSIC of the masked kernels, or of the
    masks alone when distance-agnostic; CKA normalisation without the 1e-6."""
    n = len(A)
    K, L = A @ A.T, B @ B.T

    def top(S):
        S = S.copy()
        if unbiased:
            np.fill_diagonal(S, -np.inf)
        M = np.zeros((n, n))
        M[np.arange(n)[:, None], np.argsort(-S, axis=1, kind="stable")[:, :k]] = 1.0
        return M

    hsic = _hsic_song if unbiased else _hsic_trace

    def sim(S, T):
        mask = top(S) * top(T)
        if distance_agnostic:
            return hsic(mask, mask)
        return hsic(mask * S, mask * T)

    return sim(K, L) / np.sqrt(sim(K, K) * sim(L, L)), top(K)


@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("distance_agnostic", [False, True])
def test_platonic_cknna_variants(metric, unbiased, distance_agnostic):
    # cknna(feats_A, feats_B, topk, distance_agnostic, unbiased) after compute_score's optional
    # L2 normalisation (metric="cosine" <-> normalize=True)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((70, 5)) * rng.uniform(0.2, 3.0, size=(70, 1))
    Y = X @ rng.standard_normal((5, 5)) + 0.8 * rng.standard_normal((70, 5))
    k = 7
    prep = _unit if metric == "cosine" else (lambda A: A)
    expected, mask_x = _platonic_cknna(prep(X), prep(Y), k, unbiased, distance_agnostic)
    options = dict(k=k, metric=metric, unbiased=unbiased, distance_agnostic=distance_agnostic)
    got = metrics.cknna(X, Y, **options)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    shuffled = metrics.get("cknna").shuffled(X, Y, **options)
    perm = rng.permutation(70)
    (null,) = shuffled(perm[None, :])
    assert null == pytest.approx(metrics.cknna(X, Y[perm], **options), abs=1e-12)
    if not unbiased:  # the diagonal is kept: always for cosines, for large-norm rows only else
        own = np.diag(mask_x)
        assert own.all() if metric == "cosine" else 0 < own.sum() < 70


def test_platonic_cknna_options_are_distinct_values():
    X, Y = _pair(n=60)
    values = [
        metrics.cknna(X, Y, k=8, unbiased=unbiased, distance_agnostic=agnostic)
        for unbiased in (True, False)
        for agnostic in (True, False)
    ]
    assert len({round(v, 9) for v in values}) == 4
    with pytest.raises(ValueError, match="CKNNA's metric must be one of"):
        metrics.cknna(X, Y, metric="euclidean")
    with pytest.raises(TypeError, match="unbiased must be True or False"):
        metrics.cknna(X, Y, unbiased=1)

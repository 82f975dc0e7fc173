import subprocess
import sys

import numpy as np
import pytest

import geomalign.metrics as gm
from geomalign.metrics import Measure, available, get

OURS = {
    "cka-linear": "similarity",
    "cka-linear-debiased": "similarity",
    "cka-rbf": "similarity",
    "mutual-knn": "similarity",
    "cycle-knn": "similarity",
    "cknna": "similarity",
    "svcca": "similarity",
    "distance-correlation": "similarity",
    "information-imbalance": "distance",
    "modality-gap": "similarity",
    "modality-gap-distance": "distance",
    "lcs-knn": "similarity",
    "edit-similarity-knn": "similarity",
    "information-imbalance-reverse": "distance",
    "ot-emd": "distance",
    "ot-sinkhorn": "distance",
    "ot-sliced": "distance",
    "gromov-wasserstein": "distance",
    "ot-matching-accuracy": "similarity",
    "id-twonn": "dimension",
    "id-gride": "dimension",
    "id-mle": "dimension",
    "id-pr": "dimension",
}


def test_stable_names_and_kinds():
    names = available()
    assert names == sorted(names)
    for name, kind in OURS.items():
        m = get(name)
        assert m.name == name
        assert m.kind == kind
        assert m.n_views == (1 if kind == "dimension" else 2)
        assert m.description
    assert set(available("dimension")) >= {"id-twonn", "id-gride", "id-mle", "id-pr"}
    assert set(available("distance")) >= {"information-imbalance"}
    assert not set(available("similarity")) & set(available("distance"))


def test_entries_call_the_library_functions_with_their_defaults():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    Y = X @ rng.standard_normal((6, 6)) + rng.standard_normal((80, 6))
    assert get("cka-linear")(X, Y) == gm.cka(X, Y)
    assert get("cka-linear-debiased")(X, Y) == gm.cka(X, Y, debiased=True)
    assert get("cka-rbf")(X, Y) == gm.cka(X, Y, kernel="rbf")
    assert get("mutual-knn")(X, Y) == gm.mutual_knn(X, Y, k=10, metric="cosine")
    assert get("mutual-knn")(X, Y, k=5) == gm.mutual_knn(X, Y, k=5)
    assert get("cycle-knn")(X, Y) == gm.cycle_knn(X, Y)
    assert get("cknna")(X, Y) == gm.cknna(X, Y)
    assert get("svcca")(X, Y) == gm.svcca(X, Y)
    assert get("distance-correlation")(X, Y) == gm.distance_correlation(X, Y)
    assert get("information-imbalance")(X, Y) == gm.information_imbalance(X, Y)
    assert get("modality-gap")(X, Y) == gm.modality_gap(X, Y)
    assert get("modality-gap-distance")(X, Y) == gm.modality_gap_distance(X, Y)
    assert get("lcs-knn")(X, Y) == gm.lcs_knn(X, Y)
    assert get("edit-similarity-knn")(X, Y) == gm.edit_distance_knn(X, Y)
    assert get("information-imbalance-reverse")(X, Y) == gm.information_imbalance(Y, X)
    assert not get("modality-gap-distance").paired
    assert get("ot-emd")(X, Y) == gm.ot_distance(X, Y, method="emd")
    assert get("ot-sinkhorn")(X, Y) == gm.ot_distance(X, Y, method="sinkhorn", reg=0.05)
    assert get("ot-sliced")(X, Y) == gm.ot_distance(X, Y, method="sliced", random_state=0)
    assert get("gromov-wasserstein")(X, Y) == gm.gromov_wasserstein(X, Y)
    assert get("ot-matching-accuracy")(X, Y) == gm.ot_matching_accuracy(X, Y)
    assert not get("ot-emd").paired
    assert get("ot-matching-accuracy").paired
    Z = rng.standard_normal((300, 3)) @ rng.standard_normal((3, 10))
    assert get("id-pr")(Z) <= 3.0 + 1e-9
    assert get("id-twonn")(Z) == pytest.approx(3.0, rel=0.2)


def test_permutation_shortcuts_are_attached():
    for name in (
        "cka-linear",
        "cka-linear-debiased",
        "cka-rbf",
        "mutual-knn",
        "cycle-knn",
        "cknna",
    ):
        assert callable(get(name).shuffled), name
        assert get(name).paired is True


def test_measure_is_frozen_and_params_read_only():
    m = get("mutual-knn")
    with pytest.raises(AttributeError):
        m.name = "other"
    with pytest.raises(TypeError):
        m.params["k"] = 3


def test_custom_measure_and_validation():
    m = Measure("neg-gap", "distance", 2, lambda X, Y: -gm.modality_gap(X, Y), "minus the gap")
    X = np.random.default_rng(1).standard_normal((10, 2))
    assert m(X, X) == pytest.approx(-1.0)
    with pytest.raises(TypeError, match=r"'neg-gap' takes 2 array\(s\) \(X and Y\); got 1"):
        m(X)
    with pytest.raises(ValueError, match=r"kind must be one of"):
        Measure("x", "score", 2, abs, "")
    with pytest.raises(ValueError, match=r"n_views must be 1 for a dimension"):
        Measure("x", "dimension", 2, abs, "")
    with pytest.raises(TypeError, match=r"paired must be True or False"):
        Measure("x", "distance", 2, abs, "", paired=abs)
    with pytest.raises(ValueError, match=r"resampling must be one of"):
        Measure("x", "distance", 2, abs, "", resampling="jackknife")


def test_unknown_names():
    with pytest.raises(
        ValueError, match=r"unknown measure 'cka-liner'\. Did you mean 'cka-linear'"
    ):
        get("cka-liner")
    with pytest.raises(ValueError, match=r"unknown measure 'cka'\. Did you mean 'cka-linear', "):
        get("cka")  # a family's members first, its default first among them
    with pytest.raises(ValueError, match=r"Available: .*mutual-knn"):
        get("nope")
    with pytest.raises(ValueError, match=r"kind must be one of"):
        available("similar")


def test_importing_metrics_does_not_import_pot():
    code = "import geomalign.metrics as m, sys; m.available(); print('ot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

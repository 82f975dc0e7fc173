"""The device argument of the analysis: the same results on the CPU, clear errors, CUDA if any."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign import metrics
from geomalign.analysis import Calibration, analyze_store
from geomalign.cli import main

MEASURES = ["cka-linear", "mutual-knn", "id-twonn"]  # Sinkhorn: tests/metrics/test_resampled.py
CALIBRATION = Calibration(n_permutations=5, n_resamples=4)
NO_CUDA = not torch.cuda.is_available()


def _columns(table):
    fields = ("analysis", "measure", "layer", "layer_b", "statistic", "value", "ci_low")
    return [tuple(getattr(r, f) for f in (*fields, "ci_high", "p_value")) for r in table]


def _same(a, b, rtol):
    assert [row[:5] for row in a] == [row[:5] for row in b]
    got = np.array([[np.nan if v is None else v for v in row[5:]] for row in a], dtype=float)
    want = np.array([[np.nan if v is None else v for v in row[5:]] for row in b], dtype=float)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6)


def test_cpu_device_gives_the_results_of_no_device(planted_store):
    # a device bound to every measure takes the tensor paths of the kernels (as_tensor on it)
    plain = analyze_store(planted_store, measures=MEASURES, calibration=CALIBRATION)
    on_cpu = analyze_store(planted_store, measures=MEASURES, calibration=CALIBRATION, device="cpu")
    _same(_columns(on_cpu), _columns(plain), rtol=1e-9)


@pytest.mark.parametrize(
    ("device", "match"),
    [("nonsense", "must be a torch device such as 'cpu'.* got 'nonsense'"),
     pytest.param("cuda:0", "is not available: this machine has 0 CUDA devices",
                  marks=pytest.mark.skipif(not NO_CUDA, reason="CUDA present"))],
)  # fmt: skip
def test_bad_device_is_refused_before_any_work(planted_store, device, match):
    with pytest.raises(ValueError, match=match):
        analyze_store(planted_store, measures=MEASURES, calibration=CALIBRATION, device=device)


def test_cli_device_error_is_one_line(planted_store, tmp_path, capsys):
    argv = ["analyze", str(planted_store), "--measures", "cka-linear", "--out", str(tmp_path)]
    assert main([*argv, "--device", "nonsense"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--device must be a torch device such as 'cpu'" in err
    assert not (tmp_path / "results.csv").exists()


def test_a_measure_without_a_device_argument_is_named():
    measure = metrics.Measure(
        "grand-mean-gap", "distance", 2, lambda X, Y: float(abs(X.mean() - Y.mean())), "Gap."
    )
    with pytest.raises(ValueError, match="'grand-mean-gap' takes no device argument"):
        metrics.on_device(measure, "cpu")
    assert metrics.on_device(measure, None) is measure


def test_bound_measure_carries_the_device_to_its_helpers():
    bound = metrics.on_device(metrics.get("cka-linear"), "cpu")
    assert bound.params["device"] == torch.device("cpu")
    X = np.random.default_rng(0).standard_normal((30, 5))
    assert bound.matrix([X], [2 * X])[0, 0] == pytest.approx(1.0)
    acc = bound.stream()
    acc.update(X, 3 * X)
    assert acc.value() == pytest.approx(1.0)


@pytest.mark.gpu
@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA device")
def test_cuda_analysis_matches_the_cpu(planted_store):
    on_cpu = analyze_store(planted_store, measures=MEASURES, calibration=CALIBRATION)
    on_gpu = analyze_store(planted_store, measures=MEASURES, calibration=CALIBRATION, device="cuda")
    _same(_columns(on_gpu), _columns(on_cpu), rtol=1e-4)

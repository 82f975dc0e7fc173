import numpy as np
import pytest
import torch

from geomalign.metrics import modality_gap


def test_matches_median_of_paired_cosines():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((101, 16)) + 1.0
    Y = X + rng.standard_normal((101, 16))
    cos = (X * Y).sum(1) / (np.linalg.norm(X, axis=1) * np.linalg.norm(Y, axis=1))
    assert modality_gap(X, Y) == pytest.approx(np.median(cos), abs=1e-12)
    assert modality_gap(torch.from_numpy(X), Y) == pytest.approx(np.median(cos), abs=1e-12)
    assert modality_gap(X.astype(np.float32), Y.astype(np.float32)) == pytest.approx(
        np.median(cos), abs=1e-6
    )


def test_analytic_values():
    X = np.random.default_rng(1).standard_normal((30, 4))
    assert modality_gap(X, 7.0 * X) == pytest.approx(1.0)
    assert modality_gap(X, -X) == pytest.approx(-1.0)
    R = np.array([[0.0, -1.0], [1.0, 0.0]])  # rotation by 90 degrees: orthogonal pairs
    Z = np.random.default_rng(2).standard_normal((30, 2))
    assert modality_gap(Z, Z @ R) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.ones((5, 2)), np.ones((6, 2)), r"X.shape=\(5, 2\), Y.shape=\(6, 2\)"),
        (np.ones((5, 2)), np.ones((5, 3)), r"must have the same width; got X.shape=\(5, 2\)"),
        (
            np.ones((3, 2)),
            np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
            r"rows \[1\] of Y are all zero",
        ),
        (np.ones((3, 2)), np.full((3, 2), np.nan), r"Y must hold finite values"),
    ],
)
def test_bad_inputs(X, Y, match):
    with pytest.raises(ValueError, match=match):
        modality_gap(X, Y)

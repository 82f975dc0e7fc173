import numpy as np
import pytest
import torch

from geomalign._validation import check_paired, check_representations


def test_float32_passes_through_without_copy():
    X = np.ones((4, 3), dtype=np.float32)
    assert check_representations(X) is X


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float16, np.float32), (np.int64, np.float64), (np.bool_, np.float64)],
)
def test_numpy_dtypes_become_float(dtype, expected):
    out = check_representations(np.ones((3, 2), dtype=dtype))
    assert out.dtype == expected


def test_torch_kept_or_converted():
    X = torch.ones(3, 2, dtype=torch.bfloat16)
    kept = check_representations(X)
    assert isinstance(kept, torch.Tensor)
    assert kept.dtype == torch.float32
    converted = check_representations(X, allow_torch=False)
    assert isinstance(converted, np.ndarray)
    assert converted.dtype == np.float32


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones(5), r"Z must be a 2-D array .* got Z.ndim=1 .*Reshape"),
        (np.ones((2, 3, 4)), r"Z must be a 2-D array .* got Z.ndim=3"),
        (np.ones((0, 3)), r"Z must be non-empty; got Z.shape=\(0, 3\)"),
        (np.ones((3, 0)), r"Z must be non-empty; got Z.shape=\(3, 0\)"),
        ([[1.0, 2.0], [3.0]], r"could not convert"),
    ],
)
def test_bad_shapes(X, match):
    with pytest.raises(ValueError, match=match):
        check_representations(X, name="Z")


@pytest.mark.parametrize("as_torch", [False, True])
def test_non_finite_rows_are_listed(as_torch):
    X = np.zeros((20, 3))
    X[4, 1] = np.nan
    X[11, 0] = np.inf
    X = torch.from_numpy(X) if as_torch else X
    with pytest.raises(ValueError, match=r"rows \[4, 11\] of Y \(shape \(20, 3\)\) contain NaN"):
        check_representations(X, name="Y")


def test_many_bad_rows_are_elided():
    X = np.full((30, 2), np.nan)
    with pytest.raises(ValueError, match=r"\.\.\. \(30 rows in all\)"):
        check_representations(X)


@pytest.mark.parametrize("X", [np.array([["a", "b"]]), np.ones((2, 2), dtype=complex)])
def test_non_numeric_is_type_error(X):
    with pytest.raises(TypeError, match="must hold real numbers"):
        check_representations(X)


def test_complex_tensor_is_type_error():
    with pytest.raises(TypeError, match="must hold real numbers"):
        check_representations(torch.ones(2, 2, dtype=torch.complex64))


def test_min_samples_names_context():
    with pytest.raises(ValueError, match=r"X needs at least 4 samples for debiased CKA; got"):
        check_representations(np.ones((3, 2)), min_samples=4, context="debiased CKA")


def test_check_paired_gives_both_shapes():
    with pytest.raises(ValueError, match=r"A.shape=\(3, 2\), B.shape=\(4, 5\)"):
        check_paired(np.ones((3, 2)), np.ones((4, 5)), x_name="A", y_name="B")
    check_paired(np.ones((3, 2)), np.ones((3, 5)))


@pytest.mark.parametrize("as_torch", [False, True])
def test_huge_finite_values_whose_row_sum_overflows_pass(as_torch):
    X = np.full((3, 4), 3e38, dtype=np.float32)  # each row sums past float32's maximum
    X = torch.from_numpy(X) if as_torch else X
    assert check_representations(X).shape == (3, 4)

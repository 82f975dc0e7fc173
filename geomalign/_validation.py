"""Input checks shared by the public functions of geomalign.

Each public function validates its arrays once, through :func:`check_representations` and
:func:`check_paired`, and hands the returned arrays to private helpers that trust them.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import torch

__all__ = [
    "check_device",
    "check_int",
    "check_paired",
    "check_positive_int",
    "check_representations",
]

# How many offending row indices an error message lists before eliding the rest.
_MAX_LISTED_ROWS = 10

_HALF_TORCH = (torch.float16, torch.bfloat16)


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int; ValueError unless it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int; ValueError unless it is an integer (not a bool) ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_device(device: Any, name: str = "device") -> torch.device | None:
    """``device`` as a torch.device that can hold tensors here, or None for None.

    Checked before any model loads or any computation starts: a string torch does not parse, a
    CUDA index this machine does not have, CUDA/MPS without the hardware, or a device that
    refuses a tensor are refused by ``name``.
    """
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}."
        ) from exc
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if parsed.index is None else parsed.index
        if index >= count:
            raise ValueError(
                f"{name} {str(parsed)!r} is not available: this machine has {count} CUDA "
                f"device{'s' if count != 1 else ''}."
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} 'mps' is not available on this machine.")
    try:
        torch.empty(1, device=parsed)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"{name} {str(parsed)!r} cannot hold tensors here ({exc}).") from None
    return parsed


def _describe_rows(rows: np.ndarray) -> str:
    listed = ", ".join(str(int(r)) for r in rows[:_MAX_LISTED_ROWS])
    more = f", ... ({rows.size} rows in all)" if rows.size > _MAX_LISTED_ROWS else ""
    return f"[{listed}{more}]"


def _check_shape(shape: tuple[int, ...], name: str, min_samples: int, context: str | None) -> None:
    if len(shape) != 2:
        hint = " Reshape a single sample with X[None, :] or a 1-D feature with X[:, None]."
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got {name}.ndim="
            f"{len(shape)} with {name}.shape={tuple(shape)}.{hint if len(shape) == 1 else ''}"
        )
    n_samples, n_features = shape
    if n_samples == 0 or n_features == 0:
        raise ValueError(
            f"{name} must be non-empty; got {name}.shape={tuple(shape)} "
            f"({n_samples} samples, {n_features} features)."
        )
    if n_samples < min_samples:
        why = f" for {context}" if context else ""
        raise ValueError(
            f"{name} needs at least {min_samples} samples{why}; got {name}.shape={tuple(shape)}."
        )


def _row_sums_finite(X: np.ndarray) -> bool:
    """True if every row sum is finite (then no entry is NaN or Inf); single-threaded chunks."""
    chunk = max(1, 2**20 // (X.shape[1] * X.itemsize))
    with np.errstate(over="ignore", invalid="ignore"):
        return all(
            np.isfinite(X[start : start + chunk].sum(axis=1)).all()
            for start in range(0, X.shape[0], chunk)
        )


def _check_torch(X: torch.Tensor, name: str, min_samples: int, context: str | None) -> torch.Tensor:
    if X.is_complex():
        raise TypeError(f"{name} must hold real numbers; got a tensor of dtype {X.dtype}.")
    _check_shape(tuple(X.shape), name, min_samples, context)
    X = X.detach()
    if X.dtype in _HALF_TORCH or not X.is_floating_point():
        X = X.to(torch.float32 if X.is_floating_point() else torch.float64)
    # NaN and Inf propagate through a row sum; only if some sum is not finite (or overflowed)
    # is the elementwise check needed, to name the rows
    if X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64):
        if _row_sums_finite(X.numpy()):
            return X
    elif bool(torch.isfinite(X.sum(dim=1)).all()):
        return X
    finite = torch.isfinite(X).all(dim=1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten().cpu().numpy()
        raise ValueError(
            f"{name} must hold finite values; rows {_describe_rows(rows)} of {name} "
            f"(shape {tuple(X.shape)}) contain NaN or Inf."
        )
    return X


@overload
def check_representations(
    X: Any,
    *,
    name: str = ...,
    min_samples: int = ...,
    allow_torch: Literal[False],
    context: str | None = ...,
) -> np.ndarray: ...
@overload
def check_representations(
    X: Any,
    *,
    name: str = ...,
    min_samples: int = ...,
    allow_torch: bool = ...,
    context: str | None = ...,
) -> np.ndarray | torch.Tensor: ...
def check_representations(
    X: Any,
    *,
    name: str = "X",
    min_samples: int = 1,
    allow_torch: bool = True,
    context: str | None = None,
) -> np.ndarray | torch.Tensor:
    """Check a representation matrix and return it as a floating-point array.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Representations, one row per sample.
    name : str, default="X"
        Name of the argument, used in error messages.
    min_samples : int, default=1
        Smallest acceptable number of rows.
    allow_torch : bool, default=True
        If True, a ``torch.Tensor`` is returned as a (detached) tensor on its own device, so that
        the caller can compute there. If False, it is moved to the CPU and returned as NumPy.
    context : str, optional
        What needs ``min_samples`` rows (e.g. ``"debiased CKA"``), quoted in the error message.

    Returns
    -------
    X : numpy.ndarray or torch.Tensor of shape (n_samples, n_features)
        Float32 when the input was float16, bfloat16 or float32; float64 when it was float64,
        integer or boolean. NumPy input is never copied when it is already float32/float64.

    Raises
    ------
    TypeError
        If ``X`` does not hold real numbers (strings, objects, complex values).
    ValueError
        If ``X`` is not 2-D, is empty, has fewer than ``min_samples`` rows, or contains NaN or
        Inf (the message lists the offending row indices).

    Examples
    --------
    >>> check_representations([[0.0, 1.0], [2.0, 3.0]]).shape
    (2, 2)
    """
    if isinstance(X, torch.Tensor):
        X = _check_torch(X, name, min_samples, context)
        return X if allow_torch else X.cpu().numpy()
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); could not convert "
            f"the {type(X).__name__} given: {exc}"
        ) from exc
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers; got an array of dtype {X.dtype} (shape {X.shape})."
        )
    _check_shape(X.shape, name, min_samples, context)
    if X.dtype.kind == "f" and X.dtype.itemsize < 4:
        X = X.astype(np.float32)
    elif X.dtype.kind != "f" or X.dtype.itemsize > 8:
        X = X.astype(np.float64)
    if _row_sums_finite(X):
        return X
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise ValueError(
            f"{name} must hold finite values; rows {_describe_rows(rows)} of {name} "
            f"(shape {X.shape}) contain NaN or Inf."
        )
    return X


def check_paired(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    x_name: str = "X",
    y_name: str = "Y",
) -> None:
    """Check that two checked representation matrices describe the same samples.

    Parameters
    ----------
    X, Y : numpy.ndarray or torch.Tensor of shape (n_samples, n_features_x / n_features_y)
        Arrays already returned by :func:`check_representations`; widths may differ.
    x_name, y_name : str, default="X", "Y"
        Argument names used in the error message.

    Raises
    ------
    ValueError
        If the numbers of rows differ; the message gives both shapes.
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of samples; got "
            f"{x_name}.shape={tuple(X.shape)}, {y_name}.shape={tuple(Y.shape)}. Rows must be the "
            "same stimuli in the same order."
        )

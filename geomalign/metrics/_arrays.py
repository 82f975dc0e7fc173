"""Array plumbing shared by the metrics: devices, tensors and block sizes."""

from __future__ import annotations

import logging
import math
import numbers
import warnings

import numpy as np
import torch

__all__ = [
    "DEFAULT_WORKING_MEMORY",
    "as_tensor",
    "block_rows",
    "column_sums",
    "divide_by_power_of_two",
    "peak_abs",
    "peak_exponent",
    "resolve_device",
    "safe_exponent",
    "take_rows",
    "unit_scaled",
]

logger = logging.getLogger(__name__)

# Default budget for one block of temporaries, in MiB (as scikit-learn's working_memory).
DEFAULT_WORKING_MEMORY = 1024
# Largest |x| used as it is is 2^SAFE_EXPONENT, smallest 2^-SAFE_EXPONENT: float32 squares and
# sums of products over millions of terms stay far from overflow (2^128) and underflow (2^-126).
SAFE_EXPONENT = 24


def resolve_device(X: np.ndarray | torch.Tensor, device: str | torch.device | None) -> torch.device:
    """Return ``device`` if given, else the device of tensor ``X``, else the CPU."""
    if device is not None:
        return torch.device(device)
    if isinstance(X, torch.Tensor):
        return X.device
    return torch.device("cpu")


def as_tensor(
    X: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Return ``X`` as a tensor on ``device`` (no copy when it is already there in that dtype)."""
    if isinstance(X, np.ndarray):
        X = np.ascontiguousarray(X)
        with warnings.catch_warnings():
            # read-only arrays (np.broadcast_to, memory maps) are shared, never written to
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(X)
    else:
        t = X
    return t.to(device=device, dtype=dtype or t.dtype)


def block_rows(n_columns: int, bytes_per_value: int, working_memory: float | None) -> int:
    """Rows per block so that ``rows x n_columns`` values fit in ``working_memory`` MiB (>= 1)."""
    if working_memory is None:
        working_memory = DEFAULT_WORKING_MEMORY
    if isinstance(working_memory, bool) or not (
        isinstance(working_memory, numbers.Real) and working_memory > 0
    ):
        raise ValueError(
            f"working_memory must be a positive number of MiB; got {working_memory!r}."
        )
    rows = int(working_memory * 2**20 // (n_columns * bytes_per_value))
    if rows < 1:
        logger.info(
            "working_memory=%s MiB is less than one row of %d values; using one row per block.",
            working_memory,
            n_columns,
        )
    return max(1, rows)


def column_sums(X: torch.Tensor) -> torch.Tensor:
    """Column sums of X accumulated in float64, as a float64 tensor on X's device.

    On the CPU this is a single-threaded NumPy pass over row chunks (sequential float64
    accumulation), which is faster than torch's parallel reduction over the first axis and
    does not degrade when the cores are shared.
    """
    if X.device.type != "cpu":
        return X.sum(dim=0, dtype=torch.float64)
    Xn = X.numpy()
    out = np.zeros(X.shape[1], dtype=np.float64)
    chunk = max(1, 2**20 // (X.shape[1] * X.element_size()))
    for start in range(0, X.shape[0], chunk):
        out += Xn[start : start + chunk].sum(axis=0, dtype=np.float64)
    return torch.from_numpy(out)


def take_rows(X: np.ndarray | torch.Tensor, rows: np.ndarray) -> np.ndarray | torch.Tensor:
    """``X[rows]`` for an array or a tensor (the indices moved to the tensor's device)."""
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(rows, device=X.device)]
    return X[rows]


def peak_exponent(peak: float) -> int:
    """0 if ``peak`` (a largest ``|x|``) lies in ``[2**-SAFE_EXPONENT, 2**SAFE_EXPONENT]`` or is
    0, else the exponent ``e`` that puts ``peak / 2**e`` in ``[0.5, 1)``."""
    if peak == 0.0 or 2.0**-SAFE_EXPONENT <= peak <= 2.0**SAFE_EXPONENT:
        return 0
    return math.frexp(peak)[1]


def peak_abs(X: torch.Tensor) -> float:
    """The largest ``|x|`` of X (0 for an empty X), in one pass without a copy."""
    if X.numel() == 0:
        return 0.0
    low, high = torch.aminmax(X)
    return max(-float(low), float(high))


def safe_exponent(X: torch.Tensor) -> int:
    """:func:`peak_exponent` of the largest ``|x|`` of X (one pass over X)."""
    return peak_exponent(peak_abs(X))


def divide_by_power_of_two(X: torch.Tensor, exponent: int) -> torch.Tensor:
    """``X / 2**exponent`` as a new tensor (X itself when ``exponent`` is 0); exact short of
    subnormals, in steps of at most 2^64 so that every factor is a float32."""
    if exponent == 0:
        return X
    step = max(-64, min(64, -exponent))
    scaled, left = X * 2.0**step, -exponent - step
    while left:
        step = max(-64, min(64, left))
        scaled.mul_(2.0**step)
        left -= step
    return scaled


def unit_scaled(X: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(X / 2**e, e)``: X brought to magnitudes whose products neither overflow nor underflow.

    When the largest ``|x|`` lies in ``[2**-SAFE_EXPONENT, 2**SAFE_EXPONENT]`` (or X is all
    zero), X itself is returned with ``e = 0``: no copy, no change. Otherwise ``e`` is the
    exponent that puts the largest ``|x|`` in ``[0.5, 1)`` and a rescaled copy is returned.
    Dividing by a power of two is exact (short of subnormals), so a scale-invariant measure
    computed on the copy is the measure of X, and a distance computed on it is
    ``math.ldexp(distance, e)`` in the units of X.
    """
    exponent = safe_exponent(X)
    return divide_by_power_of_two(X, exponent), exponent

"""Argument checks and scaling shared by the optimal-transport comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from geomalign.metrics._arrays import as_tensor, divide_by_power_of_two, peak_abs, peak_exponent

__all__ = ["check_number", "check_same_width", "common_scaled"]


def check_number(value: Any, name: str, minimum: float, *, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not (value > minimum if strict else value >= minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a number {relation} {minimum:g}; got {value!r}.")
    return float(value)


def common_scaled(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both clouds as float64 tensors divided by one power of two ``2**e`` (see
    ``unit_scaled``), and ``e``: a cost computed from them is in units of ``2**(e p)``."""
    A, B = as_tensor(X, device, torch.float64), as_tensor(Y, device, torch.float64)
    exponent = peak_exponent(max(peak_abs(A), peak_abs(B)))
    return divide_by_power_of_two(A, exponent), divide_by_power_of_two(B, exponent), exponent


def check_same_width(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, method: str
) -> None:
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"method={method!r} needs X and Y of the same width (a cost between their rows); got "
            f"X.shape={tuple(X.shape)}, Y.shape={tuple(Y.shape)}. Use gromov_wasserstein for "
            "spaces of different widths."
        )

"""Measures bound to a compute device: every call, helper and accumulator of a measure on it."""

from __future__ import annotations

import inspect
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from geomalign._validation import check_device
from geomalign.metrics._registry import Measure, _Lazy

__all__ = ["check_device", "on_device"]


def _takes_device(func: Any) -> bool:
    if isinstance(func, _Lazy):
        import importlib

        func = getattr(importlib.import_module(func.module), func.attribute)
    func = inspect.unwrap(func)
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "device" or p.kind is p.VAR_KEYWORD for p in parameters)


def on_device(measure: Measure, device: str | torch.device | None) -> Measure:
    """``measure`` computing on ``device``: its function, permutation and resampling helpers get
    ``device=`` through its params, its layer-map matrix and streaming accumulator too.

    ``device=None`` returns ``measure`` itself. A measure whose function takes no ``device``
    argument is an error (a user measure registered without one).
    """
    dev = check_device(device)
    if dev is None:
        return measure
    if not _takes_device(measure.func):
        raise ValueError(
            f"measure {measure.name!r} takes no device argument, so it cannot run on {dev}; "
            "give its function a device= keyword or analyse without a device."
        )
    changes: dict[str, Any] = {"params": {**measure.params, "device": dev}}
    helpers: dict[str, Any] = {"matrix": measure.matrix, "stream": measure.stream}
    for field, helper in helpers.items():  # both take device= (cka_matrix, StreamingLinearCKA)
        if helper is not None:
            changes[field] = partial(helper, device=dev)
    return replace(measure, **changes)

"""Errors raised by the activation store, and the description of a view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_MAX_LISTED = 10


class StoreError(ValueError):
    """An activation store is missing, malformed, or used inconsistently."""


class IncompleteRowsError(StoreError):
    """Rows were requested that the store has not written yet."""


class NonFiniteRowsError(StoreError):
    """Rows to write contain NaN or Inf."""


@dataclass(frozen=True)
class ViewInfo:
    """What one (checkpoint, modality, pooling) view holds."""

    checkpoint: str
    modality: str
    pooling: str
    layers: list[int]
    dim: int
    dtype: str
    n_rows: int
    n_done: int
    n_samples: int
    tokens: bool

    @property
    def complete(self) -> bool:
        """Whether every sample's rows are written."""
        return self.n_done == self.n_samples


def listing(values: Sequence[object]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")

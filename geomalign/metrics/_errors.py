"""The error raised when the rows themselves leave a measure undefined."""

from __future__ import annotations

__all__ = ["UndefinedMeasureError"]


class UndefinedMeasureError(ValueError):
    """A measure is undefined on these rows, although every argument is valid.

    Raised where the data leave the value undefined: a view without variance (all rows
    identical), fewer distinct rows than an estimator needs once duplicates are dropped, all-zero
    rows under a cosine. It is a ValueError, so code that treats all bad input alike keeps
    working; an analysis over many layers catches this type to report such a layer as NaN and go
    on with the others, while bad arguments still stop it.
    """

"""The error raised when the rows themselves leave a measure undefined."""

from __future__ import annotations

__all__ = ["UndefinedMeasureError", "check_min_samples"]


class UndefinedMeasureError(ValueError):
    """A measure is undefined on these rows, although every argument is valid.

    Raised where the data leave the value undefined: a view without variance (all rows
    identical), fewer distinct rows than an estimator needs once duplicates are dropped, all-zero
    rows under a cosine. It is a ValueError, so code that treats all bad input alike keeps
    working; an analysis over many layers catches this type to report such a layer as NaN and go
    on with the others, while bad arguments still stop it.
    """


def check_min_samples(n_samples: int, minimum: int, what: str, reason: str) -> None:
    """Raise :class:`UndefinedMeasureError` if ``n_samples < minimum``.

    ``reason`` says, in a clause, why fewer samples leave ``what`` undefined (e.g. "on 2 samples
    any two centred Gram matrices are proportional, so CKA is 1 whatever the data").
    """
    if n_samples < minimum:
        raise UndefinedMeasureError(
            f"{what} is undefined on {n_samples} sample{'' if n_samples == 1 else 's'}; it needs "
            f"at least {minimum}: {reason}."
        )

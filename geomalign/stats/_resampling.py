"""Resampling schemes: the bootstrap, half-sampling, the cluster bootstrap over groups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

__all__ = [
    "RESAMPLINGS",
    "Grouping",
    "cluster_bootstrap",
    "cluster_means",
    "resample_indices",
    "resample_size",
]

#: The row resampling schemes of :func:`resample_indices`.
RESAMPLINGS: tuple[str, ...] = ("bootstrap", "half-sampling")

Resampling = Literal["bootstrap", "half-sampling"]


def _check_scheme(scheme: str) -> None:
    if scheme not in RESAMPLINGS:
        raise ValueError(f"scheme must be one of {list(RESAMPLINGS)}; got {scheme!r}.")


def resample_size(n: int, scheme: str) -> int:
    """Rows per resample of ``n`` rows: ``n`` for the bootstrap, ``n // 2`` for half-sampling."""
    _check_scheme(scheme)
    return n // 2 if scheme == "half-sampling" else n


def resample_indices(
    n: int, n_resamples: int, *, scheme: str, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    r"""Row indices of ``n_resamples`` resamples of ``n`` rows, drawn one by one from ``rng``.

    Parameters
    ----------
    n : int
        Rows to resample.
    n_resamples : int
        Resamples to draw.
    scheme : {"bootstrap", "half-sampling"}
        ``"bootstrap"``: ``n`` rows drawn with replacement (in drawing order);
        ``"half-sampling"``: ``n // 2`` distinct rows drawn without replacement (sorted).
    rng : numpy.random.Generator
        Source of the draws; resamples are drawn lazily, so draws interleaved with other uses of
        ``rng`` stay in a fixed order.

    Yields
    ------
    numpy.ndarray of int, shape (resample_size(n, scheme),)

    Notes
    -----
    Half-sampling suits statistics that a repeated row distorts (neighbourhood measures, where a
    copy is a distance-0 neighbour): by the finite-population correction a half-sample statistic
    varies about as much as the full-sample one (variance :math:`\sigma^2 (1/m - 1/n) =
    \sigma^2 / n` at :math:`m = n/2`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> [len(i) for i in resample_indices(10, 2, scheme="half-sampling", rng=rng)]
    [5, 5]
    """
    size = resample_size(n, scheme)
    for _ in range(n_resamples):
        if scheme == "half-sampling":
            yield np.sort(rng.choice(n, size=size, replace=False))
        else:
            yield rng.integers(0, n, n)


def drawn_resamples(
    n: int, n_resamples: int, *, scheme: str, random_state: int | np.random.Generator | None
) -> np.ndarray:
    """The resamples of :func:`resample_indices` drawn from ``default_rng(random_state)``,
    stacked: an int array (n_resamples, resample_size(n, scheme)).

    The draws of an int seed are made once per ``(n, n_resamples, scheme, seed)`` (up to
    :data:`_KEPT_ENTRIES` indices) and copied out: every layer of a curve resamples the same
    rows, so they are drawn once per curve.
    """
    seed = _seed(random_state, n * n_resamples)
    if seed is None:
        return _resamples(n, n_resamples, scheme, np.random.default_rng(random_state))
    return _drawn_resamples(n, n_resamples, scheme, seed).copy()


def drawn_permutations(
    n: int, n_permutations: int, *, random_state: int | np.random.Generator | None
) -> np.ndarray:
    """``n_permutations`` permutations of ``range(n)`` drawn one by one as
    ``default_rng(random_state).permutation(n)``, stacked: an int array (n_permutations, n).

    As :func:`drawn_resamples`, the draws of an int seed are made once and copied out.
    """
    seed = _seed(random_state, n * n_permutations)
    if seed is None:
        return _permutations(n, n_permutations, np.random.default_rng(random_state))
    return _drawn_permutations(n, n_permutations, seed).copy()


# Draws of an int seed are kept up to this many indices (32 MiB) per setting.
_KEPT_ENTRIES = 2**22


def _seed(random_state: object, entries: int) -> int | None:
    """An int seed as an int when its draws of ``entries`` indices are kept, else None."""
    if entries > _KEPT_ENTRIES or isinstance(random_state, bool):
        return None
    return int(random_state) if isinstance(random_state, (int, np.integer)) else None


def _resamples(n: int, n_resamples: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n_resamples, resample_size(n, scheme)), dtype=np.int64)
    for i, rows in enumerate(resample_indices(n, n_resamples, scheme=scheme, rng=rng)):
        out[i] = rows
    return out


def _permutations(n: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n_permutations, n), dtype=np.int64)
    for i in range(n_permutations):
        out[i] = rng.permutation(n)
    return out


# A few (n, draws, seed) settings are in use at a time: the curves of one analysis share them.
@lru_cache(maxsize=8)
def _drawn_resamples(n: int, n_resamples: int, scheme: str, seed: int) -> np.ndarray:
    return _resamples(n, n_resamples, scheme, np.random.default_rng(seed))


@lru_cache(maxsize=8)
def _drawn_permutations(n: int, n_permutations: int, seed: int) -> np.ndarray:
    return _permutations(n, n_permutations, np.random.default_rng(seed))


@dataclass(frozen=True)
class Grouping:
    """Items grouped into clusters: ``codes[i]`` is item ``i``'s group in ``0 .. n_groups - 1``.

    Items of one group (several questions about one image) are not independent, so resampling
    and sign-flipping act on whole groups.
    """

    codes: np.ndarray
    n_groups: int

    @classmethod
    def from_labels(cls, labels: object) -> Grouping:
        """The grouping of items by equal labels (any hashable values, one per item)."""
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        return cls(codes=codes, n_groups=int(codes.max()) + 1)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums of ``values`` of shape (..., n_items) -> (..., n_groups)."""
        out = np.zeros((*values.shape[:-1], self.n_groups))
        where: tuple[Any, ...] = (..., self.codes)
        np.add.at(out, where, values)
        return out

    @property
    def sizes(self) -> np.ndarray:
        """Items per group, as float64 of shape (n_groups,)."""
        return np.bincount(self.codes, minlength=self.n_groups).astype(np.float64)


def cluster_bootstrap(n_groups: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Group indices drawn with replacement, shape (n_resamples, n_groups)."""
    return rng.integers(n_groups, size=(n_resamples, n_groups))


def cluster_means(values: np.ndarray, grouping: Grouping, resamples: np.ndarray) -> np.ndarray:
    """Item means of ``values`` (..., n_items) under each group resample -> (..., n_resamples).

    ``resamples`` is an int array (n_resamples, n_groups) of group indices, as drawn by
    :func:`cluster_bootstrap`; each resample's mean is over all items of its drawn groups.

    Examples
    --------
    >>> g = Grouping.from_labels(["a", "a", "b"])
    >>> cluster_means(np.array([1.0, 1.0, 4.0]), g, np.array([[0, 0], [0, 1]]))
    array([1., 2.])
    """
    sums = grouping.sums(values)[..., resamples].sum(-1)
    return sums / grouping.sizes[resamples].sum(-1)

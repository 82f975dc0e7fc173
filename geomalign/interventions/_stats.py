"""Cluster bootstrap and sign-flip tests for per-item scores (items grouped, e.g. by image).

Items of one group (several questions about one image) are not independent, so both the bootstrap
and the permutation test resample or flip whole groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grouping:
    """Items grouped into clusters: ``codes[i]`` is item ``i``'s group in ``0 .. n_groups - 1``."""

    codes: np.ndarray
    n_groups: int

    @classmethod
    def from_labels(cls, labels: object) -> Grouping:
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        return cls(codes=codes, n_groups=int(codes.max()) + 1)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums of ``values`` of shape (..., n_items) -> (..., n_groups)."""
        out = np.zeros((*values.shape[:-1], self.n_groups))
        np.add.at(out, (..., self.codes), values)
        return out

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.n_groups).astype(np.float64)


def bootstrap_means(values: np.ndarray, grouping: Grouping, resamples: np.ndarray) -> np.ndarray:
    """Item means of ``values`` (..., n_items) under each group resample -> (..., n_resamples).

    ``resamples`` is an int array (n_resamples, n_groups) of group indices drawn with replacement.
    """
    sums = grouping.sums(values)[..., resamples].sum(-1)
    return sums / grouping.sizes[resamples].sum(-1)


def draw_resamples(n_groups: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Group indices drawn with replacement, shape (n_resamples, n_groups)."""
    return rng.integers(n_groups, size=(n_resamples, n_groups))


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (1-D) at level ``confidence``."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def sign_flip_p_value(
    differences: np.ndarray, grouping: Grouping, n_permutations: int, rng: np.random.Generator
) -> float:
    """Two-sided p-value that paired item differences are symmetric around zero.

    Whole groups are flipped together; the statistic is the mean difference. ``(1 + #{|null| >=
    |observed|}) / (1 + n_permutations)``; exactly 1 when every difference is zero.
    """
    group_sums = grouping.sums(differences)
    observed = abs(group_sums.sum())
    if observed == 0.0:
        return 1.0
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, grouping.n_groups))
    null = np.abs(signs @ group_sums)
    # a relative tolerance keeps ties (e.g. the identity flip) counted despite rounding
    hits = np.sum(null >= observed * (1.0 - 1e-12))
    return float((1 + hits) / (1 + n_permutations))

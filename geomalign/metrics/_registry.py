"""Registry of named measures: stable names mapped to functions, kinds and default settings.

Entries for optional back-ends (optimal transport through POT) import their module only when
called, so that importing :mod:`geomalign.metrics` never imports POT.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["KINDS", "Measure", "available", "get", "register", "resolve"]

KINDS = ("similarity", "distance", "dimension")
RESAMPLING = ("bootstrap", "half-sampling")


@dataclass(frozen=True)
class _Lazy:
    """A function named by module and attribute, imported on first call.

    ``result_attr`` names an attribute of the function's result to return (e.g. ``dimension``).
    """

    module: str
    attribute: str
    result_attr: str | None = None

    def __call__(self, *arrays: Any, **params: Any) -> float:
        func = getattr(importlib.import_module(self.module), self.attribute)
        result = func(*arrays, **params)
        return float(getattr(result, self.result_attr) if self.result_attr else result)


@dataclass(frozen=True)
class _LazyFactory:
    """A helper factory named by module and attribute, imported on first call."""

    module: str
    attribute: str

    def __call__(self, *arrays: Any, **params: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.attribute)(*arrays, **params)


@dataclass(frozen=True)
class Measure:
    """A named measure of one representation (dimension) or of two paired ones.

    Attributes
    ----------
    name : str
        Stable registry name, e.g. ``"cka-linear"``.
    kind : {"similarity", "distance", "dimension"}
        Similarities grow and distances shrink as two views align; a dimension describes one view.
    n_views : {1, 2}
        Number of arrays the measure takes: ``measure(X)`` or ``measure(X, Y)``.
    func : callable
        The library function; called as ``func(*arrays, **params)`` and returning a float.
    description : str
        One line.
    params : Mapping[str, Any]
        Default keyword arguments passed to ``func`` (read-only).
    resampling : {"bootstrap", "half-sampling"}
        How :func:`~geomalign.stats.bootstrap_ci` resamples: the ordinary bootstrap (rows
        drawn with replacement), or half-samples drawn without replacement, for
        neighbourhood-based measures that repeated rows would corrupt (a copy is a distance-0
        neighbour of itself) and for CKA, whose bootstrap spread falls short of its sampling
        spread at the sample sizes of a study (standard deviation 0.079 against 0.089 for a
        population CKA of 0.5 at n = 40; half-samples 0.082; 95% intervals of cka-linear and
        cka-linear-debiased covered 0.93 and 0.95 of 300 simulated studies, against 0.91 and
        0.93 by the bootstrap).
    paired : bool
        Whether the measure uses the pairing of rows (False for distances between the two
        clouds as distributions, e.g. optimal transport costs, which a shuffle leaves unchanged).
    shuffled : callable, optional
        ``shuffled(X, Y, **params)`` returns a function of an int array ``perms`` of shape
        (n_permutations, n_samples) giving ``[func(X, Y[perm], **params) for perm in perms]``
        (an array of floats) while reusing the work that does not depend on the pairing
        (self-products, neighbour lists) and evaluating the permutations together where it
        can; used by the permutation test.
    resampled : callable, optional
        ``resampled(*arrays, **params)`` returns a function of an int array ``rows`` of shape
        (n_resamples, m) giving ``[func(*(A[r] for A in arrays), **params) for r in rows]``
        (an array of floats) while checking the arrays once and reusing what the resamples
        share (Gram entries, sorted neighbour lists) or solving them together (Sinkhorn); used
        by the bootstrap and half-sampling intervals. Values agree with ``func`` on each
        resample up to rounding.
    stream : callable, optional
        ``stream()`` returns an accumulator with ``update(X_block, Y_block)`` and ``value()``
        that gives the measure exactly over row blocks (e.g.
        :class:`~geomalign.metrics.StreamingLinearCKA`); analyses then compute the value over
        every stored row, not only a subsample.
    matrix : callable, optional
        ``matrix(Xs, Ys)`` returns the measure between every array of ``Xs`` and every array of
        ``Ys`` (shape ``(len(Xs), len(Ys))``), sharing per-array work across pairs (e.g.
        :func:`~geomalign.metrics.cka_matrix`); layer maps use it.

    Examples
    --------
    >>> from geomalign.metrics import get
    >>> get("cka-linear").kind
    'similarity'
    """

    name: str
    kind: str
    n_views: int
    func: Callable[..., float]
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    _: KW_ONLY
    resampling: str = "bootstrap"
    paired: bool = True
    shuffled: Callable[..., Callable[[np.ndarray], np.ndarray]] | None = None
    resampled: Callable[..., Callable[[np.ndarray], np.ndarray]] | None = None
    stream: Callable[[], Any] | None = None
    matrix: Callable[[list[Any], list[Any]], np.ndarray] | None = None

    @property
    def has_permutation_shortcut(self) -> bool:
        """Whether the permutation test reuses per-view work (:attr:`shuffled` is set)."""
        return self.shuffled is not None

    @property
    def streams_exactly(self) -> bool:
        """Whether the measure can be accumulated exactly over row blocks (:attr:`stream`)."""
        return self.stream is not None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r} for {self.name!r}.")
        if self.n_views not in (1, 2) or (self.kind == "dimension") != (self.n_views == 1):
            raise ValueError(
                f"n_views must be 1 for a dimension and 2 otherwise; got n_views={self.n_views} "
                f"with kind={self.kind!r} for {self.name!r}."
            )
        if not isinstance(self.paired, bool):
            raise TypeError(f"paired must be True or False; got {self.paired!r} for {self.name!r}.")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty str; got {self.name!r}.")
        if not callable(self.func):
            raise TypeError(
                f"func must be callable; got {type(self.func).__name__} for {self.name!r}."
            )
        if self.resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {RESAMPLING}; got {self.resampling!r}.")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __call__(self, *arrays: Any, **overrides: Any) -> float:
        """Evaluate on ``n_views`` arrays; keyword arguments override the default params."""
        if len(arrays) != self.n_views:
            views = "X" if self.n_views == 1 else "X and Y"
            raise TypeError(
                f"measure {self.name!r} takes {self.n_views} array(s) ({views}); got {len(arrays)}."
            )
        return float(self.func(*arrays, **{**self.params, **overrides}))


def _entries() -> dict[str, Measure]:
    from functools import partial

    from geomalign.metrics._cka_resampled import resampled_cka, shuffled_cka
    from geomalign.metrics._cka_stream import StreamingLinearCKA
    from geomalign.metrics.cka import cka, cka_matrix
    from geomalign.metrics.cknna import cknna, resampled_cknna, shuffled_cknna
    from geomalign.metrics.correlation import distance_correlation, svcca
    from geomalign.metrics.gap import modality_gap, modality_gap_distance
    from geomalign.metrics.imbalance import information_imbalance
    from geomalign.metrics.knn import (
        cycle_knn,
        mutual_knn,
        resampled_cycle_knn,
        resampled_mutual_knn,
        shuffled_cycle_knn,
        shuffled_mutual_knn,
    )
    from geomalign.metrics.knn_order import edit_distance_knn, lcs_knn

    entries = [
        Measure("cka-linear", "similarity", 2, cka, "Linear CKA (Kornblith et al. 2019).",
                {"kernel": "linear", "debiased": False}, resampling="half-sampling",
                shuffled=shuffled_cka, resampled=resampled_cka,
                stream=partial(StreamingLinearCKA, debiased=False),
                matrix=partial(cka_matrix, debiased=False)),
        Measure("cka-linear-debiased", "similarity", 2, cka,
                "Linear CKA with unbiased HSIC (Song et al. 2012); near 0 for unrelated views.",
                {"kernel": "linear", "debiased": True}, resampling="half-sampling",
                shuffled=shuffled_cka, resampled=resampled_cka,
                stream=partial(StreamingLinearCKA, debiased=True),
                matrix=partial(cka_matrix, debiased=True)),
        Measure("cka-rbf", "similarity", 2, cka,
                "RBF-kernel CKA, bandwidth = median pairwise distance.",
                {"kernel": "rbf", "debiased": False, "sigma_factor": 1.0},
                resampling="half-sampling", shuffled=shuffled_cka, resampled=resampled_cka),
        Measure("mutual-knn", "similarity", 2, mutual_knn,
                "Mean share of common k nearest neighbours (Huh et al. 2024), cosine, k=10.",
                {"k": 10, "metric": "cosine"}, resampling="half-sampling",
                shuffled=shuffled_mutual_knn, resampled=resampled_mutual_knn),
        Measure("cycle-knn", "similarity", 2, cycle_knn,
                "Share of samples a Y- then X-neighbour step returns to (Huh et al. 2024).",
                {"k": 10, "metric": "cosine"}, resampling="half-sampling",
                shuffled=shuffled_cycle_knn, resampled=resampled_cycle_knn),
        Measure("cknna", "similarity", 2, cknna,
                "CKA restricted to mutual k nearest neighbours (Huh et al. 2024), k=10.",
                {"k": 10}, resampling="half-sampling", shuffled=shuffled_cknna,
                resampled=resampled_cknna),
        Measure("lcs-knn", "similarity", 2, lcs_knn,
                "Longest common subsequence of the ordered k-NN lists, over k (platonic-rep).",
                {"k": 10, "metric": "cosine"}, resampling="half-sampling"),
        Measure("edit-similarity-knn", "similarity", 2, edit_distance_knn,
                "1 - edit distance of the ordered k-NN lists over k (platonic-rep's "
                "edit_distance_knn).", {"k": 10, "metric": "cosine"}, resampling="half-sampling"),
        Measure("svcca", "similarity", 2, svcca,
                "Mean canonical correlation of the top principal directions (99% variance).",
                {"n_components": 0.99}),
        Measure("distance-correlation", "similarity", 2, distance_correlation,
                "Distance correlation dCor (Szekely et al. 2007).", {"debiased": False}),
        Measure("information-imbalance", "distance", 2, information_imbalance,
                "Information imbalance Delta(X -> Y) (Glielmo et al. 2022): 0 = X predicts Y.",
                {"k": 1, "metric": "euclidean"}, resampling="half-sampling"),
        Measure("information-imbalance-reverse", "distance", 2,
                _Lazy("geomalign.metrics.imbalance", "information_imbalances", "y_to_x"),
                "Information imbalance Delta(Y -> X): 0 = Y predicts X.",
                {"k": 1, "metric": "euclidean"}, resampling="half-sampling"),
        Measure("modality-gap", "similarity", 2, modality_gap,
                "Median cosine similarity between paired rows (same width)."),
        Measure("modality-gap-distance", "distance", 2, modality_gap_distance,
                "Distance between the centroids of the unit rows (Liang et al. 2022; same width).",
                paired=False),
    ]  # fmt: skip
    ot_module = "geomalign.metrics.ot"
    ot_distance = _Lazy(ot_module, "ot_distance")
    entries += [
        Measure("ot-emd", "distance", 2, ot_distance,
                "Exact Wasserstein-2 distance between the clouds (POT network simplex).",
                {"method": "emd", "p": 2.0}, paired=False),
        Measure("ot-sinkhorn", "distance", 2, ot_distance,
                "Sinkhorn divergence (entropic Wasserstein-2), reg relative to the mean cost.",
                {"method": "sinkhorn", "p": 2.0, "reg": 0.05}, paired=False,
                resampled=_LazyFactory(ot_module, "resampled_ot_distance")),
        Measure("ot-sliced", "distance", 2, ot_distance,
                "Sliced Wasserstein-2 distance over 256 seeded random directions (same width).",
                {"method": "sliced", "p": 2.0, "n_projections": 256, "random_state": 0},
                paired=False),
        Measure("gromov-wasserstein", "distance", 2, _Lazy(ot_module, "gromov_wasserstein"),
                "Gromov-Wasserstein distance between normalised internal distance matrices.",
                paired=False),
        Measure("ot-matching-accuracy", "similarity", 2, _Lazy(ot_module, "ot_matching_accuracy"),
                "Share of rows i that the exact transport plan sends to row i.",
                {"method": "emd", "p": 2.0}, resampling="half-sampling"),
    ]  # fmt: skip
    id_module = "geomalign.metrics.intrinsic"
    id_labels = {
        "twonn": "TwoNN (Facco et al. 2017)",
        "gride": "GRIDE (Denti et al. 2022)",
        "mle": "Levina-Bickel maximum likelihood",
        "pr": "participation ratio of the covariance spectrum",
    }
    for method, label in id_labels.items():
        resampling = "bootstrap" if method == "pr" else "half-sampling"
        func = _Lazy(id_module, "intrinsic_dimension", "dimension")
        description = f"Intrinsic dimension: {label}."
        params = {"method": method}
        helper = _LazyFactory("geomalign.metrics._id_resampled", "resampled_intrinsic_dimension")
        entries.append(
            Measure(
                f"id-{method}",
                "dimension",
                1,
                func,
                description,
                params,
                resampling=resampling,
                resampled=None if method == "pr" else helper,
            )
        )
    return {m.name: m for m in entries}


_REGISTRY: dict[str, Measure] = {}


def _registry() -> dict[str, Measure]:
    if not _REGISTRY:
        _REGISTRY.update(_entries())
    return _REGISTRY


def get(name: str) -> Measure:
    """Return the registered measure called ``name``.

    Parameters
    ----------
    name : str
        A stable name from :func:`available`, e.g. ``"cka-linear"`` or ``"mutual-knn"``.

    Returns
    -------
    Measure

    Raises
    ------
    ValueError
        If no measure has that name (the message lists close matches and all names).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((50, 4))
    >>> round(get("cka-linear")(X, 2 * X), 6)
    1.0
    """
    registry = _registry()
    if not isinstance(name, str) or name not in registry:
        # a family name ("cka") first suggests its members, then names spelled alike
        members = [n for n in registry if n.startswith(f"{name}-")]
        close = members or difflib.get_close_matches(str(name), list(registry), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown measure {name!r}.{hint} Available: {', '.join(sorted(registry))}."
        )
    return registry[name]


def register(measure: Measure, *, overwrite: bool = False) -> Measure:
    """Add a measure to the registry, so that every analysis accepts its name.

    Parameters
    ----------
    measure : Measure
        The measure; its ``name`` becomes the registry name.
    overwrite : bool, default=False
        Replace a measure registered under the same name (else that is an error).

    Returns
    -------
    Measure
        ``measure`` itself.

    Examples
    --------
    >>> def grand_mean_gap(X, Y):
    ...     return float(abs(X.mean() - Y.mean()))
    >>> m = Measure("grand-mean-gap", "distance", 2, grand_mean_gap, "Gap of the grand means.",
    ...             paired=False)
    >>> get(register(m).name) is m
    True
    """
    if not isinstance(measure, Measure):
        raise TypeError(f"register() takes a Measure; got {type(measure).__name__}.")
    registry = _registry()
    if measure.name in registry and not overwrite:
        raise ValueError(
            f"a measure named {measure.name!r} is already registered; pass overwrite=True to "
            "replace it, or choose another name."
        )
    registry[measure.name] = measure
    return measure


def resolve(measure: str | Measure) -> Measure:
    """The :class:`Measure` a registry name or a measure object stands for.

    Every function that takes a measure accepts either; an unregistered :class:`Measure` is
    used as it is.
    """
    if isinstance(measure, Measure):
        return measure
    if isinstance(measure, str):
        return get(measure)
    raise TypeError(
        f"measure must be a registered name or a Measure; got {type(measure).__name__}."
    )


def available(kind: str | None = None) -> list[str]:
    """Sorted names of the registered measures, optionally only those of one ``kind``.

    Parameters
    ----------
    kind : {"similarity", "distance", "dimension"}, optional

    Examples
    --------
    >>> available("dimension")
    ['id-gride', 'id-mle', 'id-pr', 'id-twonn']
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None; got {kind!r}.")
    return sorted(name for name, m in _registry().items() if kind is None or m.kind == kind)

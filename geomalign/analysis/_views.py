"""Views of a store, the rows an analysis reads from them, and the checks done once per analysis."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geomalign.store import ActivationStore, ViewInfo

__all__ = ["StoreLike", "View"]

#: An open store or the path of one (opened read-only).
StoreLike = ActivationStore | str | os.PathLike[str]


@dataclass(frozen=True)
class View:
    """One (checkpoint, modality, pooling) view of an activation store.

    Examples
    --------
    >>> View("tuned", "image", "mean").label
    'image/mean'
    """

    checkpoint: str
    modality: str
    pooling: str

    @property
    def label(self) -> str:
        """``"<modality>/<pooling>"``, the ``view`` column of the results table."""
        return f"{self.modality}/{self.pooling}"

    def __str__(self) -> str:
        return f"{self.checkpoint}:{self.label}"


def as_view(view: View | tuple[str, str, str], name: str) -> View:
    """Accept a :class:`View` or a ``(checkpoint, modality, pooling)`` tuple."""
    if isinstance(view, View):
        return view
    if isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, str) for v in view):
        return View(*view)
    raise TypeError(
        f"{name} must be a View or a (checkpoint, modality, pooling) tuple of str; got {view!r}."
    )


def open_store(store: StoreLike) -> ActivationStore:
    """Return ``store`` itself, or open the path read-only."""
    if isinstance(store, ActivationStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return ActivationStore(Path(store))
    raise TypeError(f"store must be an ActivationStore or a path; got {type(store).__name__}.")


def check_view(store: ActivationStore, view: View) -> ViewInfo:
    """Return the view's info; raise ValueError if it is a token view or has unwritten rows."""
    if tuple((view.checkpoint, view.modality, view.pooling)) not in store.views():
        stored = ", ".join(str(View(*v)) for v in store.views()) or "none"
        raise ValueError(f"{store.path}: no view {view}; stored views: {stored}.")
    info = store.view_info(view.checkpoint, view.modality, view.pooling)
    if info.tokens:
        raise ValueError(
            f"{store.path}: view {view} stores every token (one row per token, not per sample); "
            "analyses compare one row per sample: use a pooled view (mean, last, ...)."
        )
    if not info.complete:
        missing = store.missing(view.checkpoint, view.modality, view.pooling)
        first = ", ".join(store.sample_ids[i] for i in missing[:5])
        raise ValueError(
            f"{store.path}: view {view} is incomplete: {missing.size} of {info.n_samples} samples "
            f"not written yet (first: {first}); finish or resume the extraction first."
        )
    return info


def _check_layers(info: ViewInfo, layers: list[int], view: View, name: str) -> None:
    absent = [layer for layer in layers if layer not in info.layers]
    if absent or not layers:
        raise ValueError(
            f"{name}: view {view} has layers {info.layers}; requested {layers} "
            f"({'none given' if not layers else f'absent: {absent}'})."
        )


def select_layers(
    store: ActivationStore,
    views: Sequence[View],
    layers: Sequence[int] | None,
    name: str = "layers",
) -> list[int]:
    """Check ``views`` (:func:`check_view`) and return the layers to read from every one of them.

    ``layers`` (argument ``name``) are checked to exist in each view; None gives the sorted
    layers all the views store.
    """
    infos = [check_view(store, view) for view in views]
    if layers is None:
        shared = sorted(set.intersection(*(set(info.layers) for info in infos)))
        if not shared:
            listed = [f"{v} (layers {i.layers})" for v, i in zip(views, infos, strict=True)]
            raise ValueError(f"{store.path}: views {', '.join(listed)} share no layer.")
        return shared
    layers = [int(layer) for layer in layers]
    for view, info in zip(views, infos, strict=True):
        _check_layers(info, layers, view, name)
    return layers


def join_notes(*parts: str) -> str:
    """The non-empty parts, separated by "; " (the ``notes`` column)."""
    return "; ".join(p for p in parts if p)


class _SharedReads:
    """Layers read so far in a block of analyses, while they fit in ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.kept: dict[tuple[object, ...], np.ndarray] = {}
        self.bytes = 0


_shared: ContextVar[_SharedReads | None] = ContextVar("geomalign_shared_reads", default=None)


@contextmanager
def shared_reads(max_bytes: int = 256 * 2**20) -> Iterator[None]:
    """Within the block, a layer that another analysis has read (the same store, view, layer and
    rows) is copied from that read instead of read again from the file.

    The analyses of one store read each layer several times (cross-modal, cross-checkpoint and
    tuning-change curves, layer maps, ID profiles). Layers are kept in the order first read
    while they fit in ``max_bytes``; the analyses sweep the layers in order, so keeping the first
    ones serves every sweep, where dropping the least recent would serve none once the layers
    outgrow the budget. The store must not change within the block.
    """
    token = _shared.set(_SharedReads(max_bytes))
    try:
        yield
    finally:
        _shared.reset(token)


class Rows:
    """The sample rows an analysis reads: every row, or a subsample fixed by a seed.

    Parameters
    ----------
    store : ActivationStore
        The store read.
    max_samples : int or None
        Read at most this many samples (uniformly without replacement, kept in store order).
    random_state : int
        Seed of the subsample.
    """

    def __init__(self, store: ActivationStore, max_samples: int | None, random_state: int) -> None:
        self.store = store
        self.n_total = store.n_samples
        if max_samples is None or self.n_total <= max_samples:
            self.ids: list[str] | None = None
            self.n = self.n_total
            self.note = ""
            self._drawn: tuple[int, int] | None = None
        else:
            rng = np.random.default_rng(random_state)
            idx = np.sort(rng.choice(self.n_total, size=max_samples, replace=False))
            ids = store.sample_ids
            self.ids = [ids[i] for i in idx]
            self.n = max_samples
            self._drawn = (max_samples, random_state)
            self.note = f"subsampled n={max_samples} of {self.n_total} seed={random_state}"

    @property
    def subsampled(self) -> bool:
        """Whether the analysis reads fewer rows than the store holds."""
        return self.ids is not None

    @property
    def subsample(self) -> int | None:
        """The subsample's size (the ``n_subsample`` column), None when every row is read."""
        return self.n if self.subsampled else None

    def read(self, view: View, layer: int) -> np.ndarray:
        """One layer of ``view`` on these rows, float32 of shape (n, dim) (a copy of an earlier
        read of the same rows within :func:`shared_reads`)."""
        shared = _shared.get()
        key = (str(self.store.path), view, layer, self._drawn)
        if shared is not None and key in shared.kept:
            return shared.kept[key].copy()
        out = self.store.read(view.checkpoint, view.modality, view.pooling, layer, ids=self.ids)
        if shared is not None and shared.bytes + out.nbytes <= shared.max_bytes:
            shared.kept[key] = out.copy()
            shared.bytes += out.nbytes
        return out

"""Join the stores of a sharded extraction into one store holding every row done in any of them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geomalign.store._errors import StoreError, ViewInfo
from geomalign.store._files import clean_stale_partials, fsync_dir, partial_path
from geomalign.store._rows import BFLOAT16, index_runs
from geomalign.store._store import ActivationStore, check_same_samples

__all__ = ["merge_stores"]

logger = logging.getLogger(__name__)

# Provenance written by the store itself; checked for equality like the rest, but rewritten by
# add_checkpoint when the merged checkpoint is recorded.
_STORE_OWNED = ("geomalign_version",)


def merge_stores(
    paths: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike,
    overwrite: bool = False,
    working_memory: float = 256,
) -> Path:
    """Merge stores of the same samples, each holding some of the rows, into one new store.

    This joins the per-rank stores of a sharded extraction (``extract(..., shard=(rank,
    world_size))``): every input holds the whole sample table and the same checkpoints and views,
    and its ``done`` masks say which rows it wrote. The output gets every row done in any input.
    A row done in several inputs must hold identical values there. Rows done in none stay not
    done in the output (merging partial runs is allowed; the count per view is logged), so the
    output can be resumed by :func:`geomalign.extract.extract` like any store.

    All inputs are validated before anything is written; the output is written under a temporary
    name in its folder and renamed to ``out`` at the end, so a failed merge leaves no output file.

    Parameters
    ----------
    paths : sequence of str or path-like
        The input stores (at least one, all distinct).
    out : str or path-like
        The merged store to create; must not be one of the inputs.
    overwrite : bool, default=False
        Replace an existing ``out``.
    working_memory : float, default=256
        Approximate memory (MiB) for the rows in flight; views are copied in blocks of rows.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    StoreError
        Naming the file and what is wrong: an input that is not a store, other sample ids,
        captions or labels than the first input, other checkpoints or provenance, other views or
        view layouts (layers, width, dtype, token offsets), or a row done in two inputs with
        different values (naming both files, the view and the first differing sample id).

    Examples
    --------
    >>> merge_stores([f"acts.rank{r}.h5" for r in range(4)], out="acts.h5")  # doctest: +SKIP
    PosixPath('acts.h5')
    """
    if isinstance(paths, str | os.PathLike) or not isinstance(paths, Sequence):
        raise TypeError(f"paths must be a sequence of store paths; got {type(paths).__name__}.")
    if not paths:
        raise ValueError("paths is empty; give at least one store to merge.")
    inputs = [Path(p) for p in paths]
    target = Path(out)
    seen: dict[Path, Path] = {}
    for path in inputs:
        key = path.resolve()
        if key in seen:
            raise ValueError(f"{path}: given twice in paths (also as {seen[key]}).")
        seen[key] = path
    if target.resolve() in seen:
        raise ValueError(f"{target}: the output is one of the inputs; merge into a new file.")
    if target.exists() and not overwrite:
        raise StoreError(f"{target}: file exists; pass overwrite=True to replace it.")
    if not target.parent.is_dir():
        raise StoreError(f"{target}: folder {target.parent} does not exist.")
    if not working_memory > 0:
        raise ValueError(f"working_memory must be a positive number of MiB; got {working_memory}.")

    stores: list[ActivationStore] = []
    try:
        for path in inputs:
            stores.append(ActivationStore(path))
        layouts = _check_alike(stores)
        clean_stale_partials(target)  # left by merges that were killed
        tmp = partial_path(target)
        try:
            _write_merged(stores, layouts, tmp, target, int(working_memory * (1 << 20)))
            os.replace(tmp, target)
            fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        for store in stores:
            store.close()
    return target


# ----------------------------------------------------------------------------------- validation
def _provenance(store: ActivationStore) -> dict[str, dict[str, object]]:
    return {
        name: {k: v.item() if isinstance(v, np.generic) else v for k, v in attrs.items()}
        for name, attrs in store.checkpoints().items()
    }


def _layout(store: ActivationStore, view: tuple[str, str, str]) -> tuple[ViewInfo, np.ndarray]:
    """A view's description and its row offsets (``arange(n + 1)`` for a pooled view)."""
    info = store.view_info(*view)
    offsets = store.row_offsets(*view)
    return info, np.arange(store.n_samples + 1) if offsets is None else offsets


def _check_alike(
    stores: list[ActivationStore],
) -> dict[tuple[str, str, str], tuple[ViewInfo, np.ndarray]]:
    """Raise StoreError unless every store matches the first; return the first's view layouts."""
    ref = stores[0]
    provenance = _provenance(ref)
    layouts = {view: _layout(ref, view) for view in ref.views()}
    ref_captions, ref_labels = ref.captions, ref.labels
    for store in stores[1:]:
        check_same_samples(ref, store)
        where = f"{store.path} (against {ref.path})"
        captions = store.captions
        if captions != ref_captions:
            if captions is None or ref_captions is None:
                raise StoreError(f"{where}: captions are stored in only one of the two files.")
            row = next(
                i for i, (a, b) in enumerate(zip(ref_captions, captions, strict=True)) if a != b
            )
            raise StoreError(
                f"{where}: captions differ at row {row} (sample {ref.sample_ids[row]!r})."
            )
        labels = store.labels
        if sorted(labels) != sorted(ref_labels):
            raise StoreError(
                f"{where}: label columns {sorted(labels)} differ from {sorted(ref_labels)}."
            )
        for name, column in labels.items():
            nan = column.dtype.kind == ref_labels[name].dtype.kind == "f"
            if not np.array_equal(column, ref_labels[name], equal_nan=nan):
                raise StoreError(f"{where}: label column {name!r} holds other values.")
        other = _provenance(store)
        if sorted(other) != sorted(provenance):
            raise StoreError(
                f"{where}: checkpoints {sorted(other)} differ from {sorted(provenance)}."
            )
        for name, attrs in other.items():
            expected = provenance[name]
            if attrs != expected:
                keys = sorted(
                    k for k in attrs.keys() | expected.keys() if attrs.get(k) != expected.get(k)
                )
                mine = {k: attrs.get(k) for k in keys}
                theirs = {k: expected.get(k) for k in keys}
                raise StoreError(
                    f"{where}: checkpoint {name!r} has other provenance: {mine} against {theirs}."
                )
        if sorted(store.views()) != sorted(layouts):
            lacking = ["/".join(v) for v in sorted(set(layouts) - set(store.views()))]
            extra = ["/".join(v) for v in sorted(set(store.views()) - set(layouts))]
            raise StoreError(f"{where}: other views: lacks {lacking}, has more {extra}.")
        for view, (ref_info, ref_offsets) in layouts.items():
            info, offsets = _layout(store, view)
            got = (info.layers, info.dim, info.dtype, info.tokens)
            want = (ref_info.layers, ref_info.dim, ref_info.dtype, ref_info.tokens)
            if got != want:
                raise StoreError(
                    f"{where}: view {'/'.join(view)} has layers={info.layers}, dim={info.dim}, "
                    f"dtype={info.dtype}, tokens={info.tokens}; expected layers="
                    f"{ref_info.layers}, dim={ref_info.dim}, dtype={ref_info.dtype}, "
                    f"tokens={ref_info.tokens}."
                )
            if not np.array_equal(offsets, ref_offsets):
                row = int(np.flatnonzero(np.diff(offsets) != np.diff(ref_offsets))[0])
                raise StoreError(
                    f"{where}: view {'/'.join(view)} has other token counts, first at sample "
                    f"{ref.sample_ids[row]!r}."
                )
    return layouts


# ----------------------------------------------------------------------------------------- copy
def _write_merged(
    stores: list[ActivationStore],
    layouts: dict[tuple[str, str, str], tuple[ViewInfo, np.ndarray]],
    tmp: Path,
    out: Path,
    budget: int,
) -> None:
    ref = stores[0]
    with ActivationStore.create(
        tmp, ref.sample_ids, captions=ref.captions, labels=ref.labels
    ) as merged:
        with merged.transaction():
            for name, attrs in _provenance(ref).items():
                facts: dict[str, Any] = {k: v for k, v in attrs.items() if k not in _STORE_OWNED}
                merged.add_checkpoint(name, **facts)
            for view, (info, offsets) in layouts.items():
                merged.create_view(
                    *view,
                    layers=info.layers,
                    dim=info.dim,
                    dtype=info.dtype,
                    tokens_per_sample=np.diff(offsets) if info.tokens else None,
                )
        for view, (info, offsets) in layouts.items():
            row_bytes = len(info.layers) * info.dim * _buffer_dtype(info).itemsize
            # three blocks in flight: the merged rows, one input's rows, the rows written
            n_done = _copy_view(
                stores, merged, view, info, offsets, max(1, budget // (3 * row_bytes))
            )
            name = "/".join(view)
            if n_done < ref.n_samples:
                logger.warning(
                    "%s: view %s: %d of %d samples are done in no input; they stay not done",
                    out,
                    name,
                    ref.n_samples - n_done,
                    ref.n_samples,
                )
            logger.info("%s: view %s: %d of %d samples merged", out, name, n_done, ref.n_samples)


def _buffer_dtype(info: ViewInfo) -> np.dtype:
    """The dtype rows of a view are copied in: their own, or float32 (exact) for bfloat16."""
    return np.dtype(np.float32 if info.dtype == BFLOAT16 else info.dtype)


def _copy_view(
    stores: list[ActivationStore],
    merged: ActivationStore,
    view: tuple[str, str, str],
    info: ViewInfo,
    offsets: np.ndarray,
    max_rows: int,
) -> int:
    """Copy the done rows of one view in blocks of about ``max_rows`` rows; return how many
    samples are done in the merged view."""
    ids = stores[0].sample_ids
    done = []
    for store in stores:
        mask = np.ones(len(ids), dtype=bool)
        mask[store.missing(*view)] = False
        done.append(mask)
    n_done = 0
    lo = 0
    while lo < len(ids):
        # the samples whose rows fit in max_rows, and at least one
        hi = int(np.searchsorted(offsets, offsets[lo] + max_rows, side="right")) - 1
        hi = min(max(hi, lo + 1), len(ids))
        base = int(offsets[lo])
        block = np.empty(
            (len(info.layers), int(offsets[hi]) - base, info.dim), dtype=_buffer_dtype(info)
        )
        owner = np.full(hi - lo, -1)
        for k, store in enumerate(stores):
            samples = lo + np.flatnonzero(done[k][lo:hi])
            if samples.size == 0:
                continue
            counts = offsets[samples + 1] - offsets[samples]
            rows = np.empty((len(info.layers), int(counts.sum()), info.dim), dtype=block.dtype)
            chosen = [ids[i] for i in samples]
            for li, layer in enumerate(info.layers):
                rows[li] = store.read(*view, layer, ids=chosen, dtype=block.dtype)
            fresh = owner[samples - lo] < 0
            before = np.cumsum(counts) - counts  # where each sample's rows start in ``rows``
            for s_lo, s_hi, j in index_runs(samples, fresh):
                dst = slice(int(offsets[s_lo]) - base, int(offsets[s_hi]) - base)
                src = slice(int(before[j]), int(before[j]) + dst.stop - dst.start)
                if fresh[j]:
                    block[:, dst] = rows[:, src]
                    owner[s_lo - lo : s_hi - lo] = k
                    continue
                differs = (block[:, dst] != rows[:, src]).any(axis=(0, 2))
                if differs.any():
                    row = int(offsets[s_lo]) + int(np.argmax(differs))
                    sample = int(np.searchsorted(offsets, row, side="right")) - 1
                    raise StoreError(
                        f"{stores[owner[sample - lo]].path} and {store.path}: view "
                        f"{'/'.join(view)}: sample {ids[sample]!r} is done in both with "
                        "different values."
                    )
        filled = lo + np.flatnonzero(owner >= 0)
        if filled.size == hi - lo:
            merged.write(*view, filled, block)
        elif filled.size:
            parts = [
                block[:, int(offsets[a]) - base : int(offsets[b]) - base]
                for a, b, _ in index_runs(filled)
            ]
            merged.write(*view, filled, np.concatenate(parts, axis=1))
        n_done += filled.size
        lo = hi
    return n_done

"""The reading half of :class:`~geomalign.store.ActivationStore` (a mixin): samples, views, rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from geomalign.store._errors import IncompleteRowsError, StoreError, ViewInfo, listing
from geomalign.store._rows import BFLOAT16, from_bfloat16_bits, runs


class Reading:
    """Sample table, checkpoints, views and rows of an open store."""

    path: Path
    mode: str
    _file: h5py.File
    _ids: list[str] | None
    _index: dict[str, int] | None

    # ------------------------------------------------------------------------------- sample table
    @property
    def attrs(self) -> dict[str, object]:
        """Root attributes (format, schema version, versions, fingerprint)."""
        return dict(self._file.attrs)

    @property
    def schema_version(self) -> int:
        """On-disk schema version of this file."""
        return int(self._file.attrs["schema_version"])

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids in row order."""
        if self._ids is None:
            self._ids = list(self._file["samples/ids"].asstr()[()])
        return self._ids

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return len(self.sample_ids)

    @property
    def captions(self) -> list[str] | None:
        """Captions in row order, or None."""
        if "samples/captions" not in self._file:
            return None
        return list(self._file["samples/captions"].asstr()[()])

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """Label columns by name."""
        out = {}
        for name, dset in self._file["samples/labels"].items():
            is_str = h5py.check_string_dtype(dset.dtype) is not None
            out[name] = np.asarray(dset.asstr()[()], dtype=str) if is_str else dset[()]
        return out

    def indices(self, ids: Sequence[str]) -> np.ndarray:
        """Return the row index of each sample id, raising StoreError on an unknown id."""
        if self._index is None:
            self._index = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}
        unknown = [i for i in ids if i not in self._index]
        if unknown:
            raise StoreError(f"{self.path}: unknown sample ids {listing(unknown)}.")
        return np.fromiter((self._index[i] for i in ids), dtype=np.int64, count=len(ids))

    # -------------------------------------------------------------------------------------- views
    def checkpoints(self) -> dict[str, dict[str, object]]:
        """Checkpoint names and their provenance attributes."""
        return {name: dict(g.attrs) for name, g in self._file["checkpoints"].items()}

    def _view(self, checkpoint: str, modality: str, pooling: str) -> h5py.Group:
        key = f"checkpoints/{checkpoint}/{modality}/{pooling}"
        if key not in self._file:
            raise StoreError(
                f"{self.path}: no view {key}; stored views are {listing(self.views())}."
            )
        return self._file[key]

    def _done(self, group: h5py.Group) -> np.ndarray:
        if self.mode == "a":
            return group["done"][()]
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(0, 0, 1.0)  # a live reader must see the writer's latest mask
        return h5py.Dataset(h5py.h5d.open(group.id, b"done", dapl=dapl))[()]

    def views(self) -> list[tuple[str, str, str]]:
        """All (checkpoint, modality, pooling) keys."""
        out: list[tuple[str, str, str]] = []
        for ckpt, cgroup in self._file["checkpoints"].items():
            for modality, mgroup in cgroup.items():
                out.extend((ckpt, modality, pooling) for pooling in mgroup)
        return out

    def view_info(self, checkpoint: str, modality: str, pooling: str) -> ViewInfo:
        """Describe one view: layers, width, dtype, rows and completeness."""
        group = self._view(checkpoint, modality, pooling)
        data = group["data"]
        return ViewInfo(
            checkpoint=checkpoint,
            modality=modality,
            pooling=pooling,
            layers=[int(x) for x in data.attrs["layers"]],
            dim=int(data.shape[2]),
            dtype=str(data.attrs.get("dtype", data.dtype)),
            n_rows=int(data.shape[1]),
            n_done=int(self._done(group).sum()),
            n_samples=self.n_samples,
            tokens="offsets" in group,
        )

    def row_offsets(self, checkpoint: str, modality: str, pooling: str) -> np.ndarray | None:
        """Row offsets (n_samples + 1,) of a token view, or None for a pooled view."""
        group = self._view(checkpoint, modality, pooling)
        return group["offsets"][()] if "offsets" in group else None

    def missing(self, checkpoint: str, modality: str, pooling: str) -> np.ndarray:
        """Indices of the samples whose rows are not written yet."""
        return np.flatnonzero(self._done(self._view(checkpoint, modality, pooling)) == 0)

    # --------------------------------------------------------------------------------------- read
    def read(
        self,
        checkpoint: str,
        modality: str,
        pooling: str,
        layer: int,
        *,
        ids: Sequence[str] | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> np.ndarray:
        """Read one layer of a view as an array of shape (n_rows, dim).

        Parameters
        ----------
        checkpoint, modality, pooling : str
            The view.
        layer : int
            Layer number (as stored in the view's ``layers``).
        ids : sequence of str, default=None
            Samples to read, in this order; all samples when None.
        dtype : numpy dtype, default=np.float32
            Output dtype.
        """
        group = self._view(checkpoint, modality, pooling)
        dset = group["data"]
        li = self._layer_index(dset, layer, checkpoint, modality, pooling)
        idx = np.arange(self.n_samples) if ids is None else self.indices(list(ids))
        self._require_done(group, idx, f"{checkpoint}/{modality}/{pooling} layer {layer}")
        if "offsets" in group:
            offsets = group["offsets"][()]
            starts, stops = offsets[idx], offsets[idx + 1]
        else:
            starts, stops = idx, idx + 1
        out = np.empty((int((stops - starts).sum()), dset.shape[2]), dtype=dtype)
        bits = dset.attrs.get("dtype") == BFLOAT16
        try:
            for lo, hi, dst in runs(starts, stops):
                rows = dset[li, lo:hi, :]
                out[dst : dst + hi - lo] = from_bfloat16_bits(rows) if bits else rows
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot read {dset.name} layer {layer} (truncated or corrupt?): {exc}"
            ) from exc
        return out

    def iter_blocks(
        self,
        checkpoint: str,
        modality: str,
        pooling: str,
        layer: int,
        *,
        block_rows: int | None = None,
        working_memory: float = 256,
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(rows, block)`` pairs covering one layer with bounded memory.

        ``block_rows`` defaults to as many float32 rows as fit in ``working_memory`` MiB.
        """
        group = self._view(checkpoint, modality, pooling)
        dset = group["data"]
        li = self._layer_index(dset, layer, checkpoint, modality, pooling)
        self._require_done(group, np.arange(self.n_samples), f"{checkpoint}/{modality}/{pooling}")
        if block_rows is None:
            block_rows = max(1, int(working_memory * (1 << 20)) // (4 * dset.shape[2]))
        bits = dset.attrs.get("dtype") == BFLOAT16
        for lo in range(0, dset.shape[1], block_rows):
            hi = min(lo + block_rows, dset.shape[1])
            rows = dset[li, lo:hi, :]
            yield slice(lo, hi), from_bfloat16_bits(rows) if bits else rows.astype(np.float32)

    def _layer_index(self, dset: h5py.Dataset, layer: int, *key: str) -> int:
        layers = [int(x) for x in dset.attrs["layers"]]
        if layer not in layers:
            raise StoreError(
                f"{self.path}: view {'/'.join(key)} has no layer {layer}; stored layers: {layers}."
            )
        return layers.index(layer)

    def _require_done(self, group: h5py.Group, idx: np.ndarray, what: str) -> None:
        not_done = idx[self._done(group)[idx] == 0]
        if not_done.size:
            raise IncompleteRowsError(
                f"{self.path}: {what}: {not_done.size} requested samples are not written yet: "
                f"{listing([self.sample_ids[i] for i in not_done])}."
            )

"""The row-writing half of :class:`~geomalign.store.ActivationStore` (a mixin)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from geomalign.store._errors import NonFiniteRowsError, StoreError, listing
from geomalign.store._hdf5 import hdf5_errors
from geomalign.store._reading import Reading
from geomalign.store._rows import (
    BFLOAT16,
    as_numpy,
    from_bfloat16_bits,
    has_nonfinite,
    index_runs,
    runs,
    to_bfloat16_bits,
)


class Writing(Reading):
    """Rows written into allocated views, flushed and synced before their done flags."""

    path: Path
    mode: str
    _file: h5py.File

    # -------------------------------------------------------------------------------------- write
    def write(self, checkpoint: str, modality: str, pooling: str, samples, data) -> None:
        """Write the rows of ``samples`` for every layer of a view, then mark them done.

        Parameters
        ----------
        checkpoint, modality, pooling : str
            The view.
        samples : array-like of int
            Sample indices (unique).
        data : array-like of shape (n_layers, n_rows, dim)
            ``n_rows = len(samples)`` for pooled views; for token views the samples' tokens,
            concatenated in ``samples`` order. Cast to the view's dtype; NaN/Inf after the cast
            raise NonFiniteRowsError and nothing of the batch is written.
        """
        self._writable()
        group = self._view(checkpoint, modality, pooling)
        dset = group["data"]
        where = f"{self.path}: view {checkpoint}/{modality}/{pooling}"
        idx = np.asarray(samples)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise StoreError(
                f"{where}: samples must be a non-empty 1-D integer array; got {samples!r}."
            )
        if idx.min() < 0 or idx.max() >= self.n_samples or np.unique(idx).size != idx.size:
            raise StoreError(f"{where}: samples must be unique indices in [0, {self.n_samples}).")
        offsets = group["offsets"][()] if "offsets" in group else None
        if offsets is None:
            starts, stops = idx, idx + 1
        else:
            starts, stops = offsets[idx], offsets[idx + 1]
        n_rows = int((stops - starts).sum())
        arr = as_numpy(data)
        if arr.dtype.kind != "f":
            raise StoreError(f"{where}: data must be floating point; got dtype {arr.dtype}.")
        expected = (dset.shape[0], n_rows, dset.shape[2])
        if arr.shape != expected:
            raise StoreError(
                f"{where}: data has shape {arr.shape}, expected "
                f"(n_layers, n_rows, dim) = {expected}."
            )
        kind = str(dset.attrs.get("dtype", dset.dtype))
        with np.errstate(over="ignore"):  # overflow becomes Inf, reported just below
            if kind == BFLOAT16:
                arr = to_bfloat16_bits(arr)
            else:
                arr = arr.astype(dset.dtype, copy=False)
        if has_nonfinite(arr, kind):
            values = from_bfloat16_bits(arr) if kind == BFLOAT16 else arr
            layer_pos, row_pos = np.nonzero(~np.isfinite(values).all(axis=2))
            owner = np.searchsorted(np.cumsum(stops - starts), row_pos, side="right")
            layers = dset.attrs["layers"]
            bad = sorted(
                {
                    (self.sample_ids[idx[o]], int(layers[lp]))
                    for o, lp in zip(owner, layer_pos, strict=True)
                }
            )
            raise NonFiniteRowsError(
                f"{where}: NaN or Inf (after casting to {kind}) in {len(bad)} "
                f"(sample, layer) "
                f"rows: {listing(bad)}; nothing of this batch was written."
            )
        with hdf5_errors(self.path, f"view {checkpoint}/{modality}/{pooling}: writing rows failed"):
            for lo, hi, src in runs(starts, stops):
                dset[:, lo:hi, :] = arr[:, src : src + hi - lo, :]
            self._sync()  # the rows are on disk before any done flag claims them
            done = group["done"]
            for lo, hi, _ in index_runs(np.sort(idx)):
                done[lo:hi] = 1
            self._file.flush()

    def _sync(self) -> None:
        """Flush HDF5's buffers and fsync the file."""
        self._file.flush()
        os.fsync(self._file.id.get_vfd_handle())

    def _writable(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to write.")

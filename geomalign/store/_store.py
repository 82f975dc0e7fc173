"""The ActivationStore class: create, write, resume and read an activation store.

Opening, creation and layout (checkpoints, views) live here; reading in ``_reading``, writing rows
in ``_writing`` and atomic layout changes in ``_transactions``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from geomalign._version import __version__
from geomalign.store._errors import (
    StoreError,
    ViewInfo,
)
from geomalign.store._files import Partial, open_locked
from geomalign.store._hdf5 import (
    check_name,
    hdf5_errors,
    sample_fingerprint,
    write_sample_table,
    writer_file,
)
from geomalign.store._rows import (
    BFLOAT16,
    allocated,
)
from geomalign.store._transactions import Transactions
from geomalign.store._validate import SCHEMA_VERSION, check_structure
from geomalign.store._writing import Writing

_STORED_DTYPES = ("float16", "float32", BFLOAT16)
_CHUNK_BYTES = 1 << 20  # one layer x a block of rows per chunk, about 1 MiB


class ActivationStore(Writing, Transactions):
    """Per-layer activations of several checkpoints, keyed by sample id, in one HDF5 file.

    Parameters
    ----------
    path : str or path-like
        The store file.
    mode : {"r", "a"}, default="r"
        ``"r"`` opens read-only (safe while a writer runs: no lock, no caches); ``"a"`` opens for
        writing. Use :meth:`create` to make a new store.

    Examples
    --------
    >>> store = ActivationStore.create("acts.h5", ["a", "b"])  # doctest: +SKIP
    >>> store.read("tuned", "image", "mean", layer=3).shape  # doctest: +SKIP
    (2, 4096)
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        self.path = Path(path)
        if mode not in {"r", "a"}:
            raise StoreError(
                f"mode must be 'r' or 'a'; got {mode!r} (use create() for new stores)."
            )
        self.mode = mode
        self._partial: Partial | None = None  # the copy a layout change is being made in
        self._live: h5py.File | None = None  # the store file, kept open (and locked) meanwhile
        self._depth = 0  # nesting of transaction()
        self._lock_fd = -1  # a writer's flock on the store file
        self._dead = False  # set when a failed close left HDF5's file unusable
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such file.")
        if not self.path.is_file():
            raise StoreError(f"{self.path}: not a regular file.")
        if not h5py.is_hdf5(self.path):
            raise StoreError(
                f"{self.path}: not an HDF5 file (truncated, corrupt, or another format)."
            )
        if mode == "a":
            try:
                self._lock_fd = open_locked(self.path)
            except OSError as exc:
                raise StoreError(str(exc)) from exc
        try:
            self._file = self._open(self.path)
            self._ids: list[str] | None = check_structure(self._file, self.path)
        except BaseException:
            self._release()
            raise
        self._index: dict[str, int] | None = None

    def _open(self, path: Path) -> h5py.File:
        # Writers are kept exclusive by geomalign's own flock (on the store or on its partial
        # copy), so HDF5's lock is off for everyone: a reader may then open the file in the
        # same process as its writer.
        try:
            if self.mode == "r":
                return h5py.File(path, "r", locking=False, rdcc_nbytes=0)
            return writer_file(path, create=False)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open as HDF5 (truncated or corrupt?): {exc}") from exc

    def _release(self) -> None:
        try:
            if not self._dead and hasattr(self, "_file") and self._file.id.valid:
                self._file.close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    # ----------------------------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        sample_ids: Sequence[str],
        *,
        captions: Sequence[str] | None = None,
        labels: Mapping[str, Sequence[object] | np.ndarray] | None = None,
        overwrite: bool = False,
        resume: bool = False,
    ) -> ActivationStore:
        """Create a store for ``sample_ids`` and return it open for writing.

        The file is written in full under a temporary name beside ``path``, synced and renamed
        into place: a process killed meanwhile leaves no store (or the old one, with
        ``overwrite``), never a half-written one.

        Parameters
        ----------
        path : str or path-like
            The file to create.
        sample_ids : sequence of str
            Unique sample ids, in row order.
        captions : sequence of str, default=None
            One caption per sample.
        labels : mapping of str to array-like, default=None
            Label columns, one entry per sample.
        overwrite : bool, default=False
            Replace an existing file.
        resume : bool, default=False
            If the file exists, reopen it for writing; its sample ids and captions must match.

        Returns
        -------
        ActivationStore
            Open in mode ``"a"``.
        """
        path = Path(path)
        ids = [str(i) for i in sample_ids]
        if not ids:
            raise StoreError(f"{path}: sample_ids is empty; a store needs at least one sample.")
        seen: dict[str, int] = {}
        for row, sample_id in enumerate(ids):
            if sample_id in seen:
                raise StoreError(
                    f"{path}: duplicate sample id {sample_id!r} at rows "
                    f"{seen[sample_id]} and {row}."
                )
            seen[sample_id] = row
        if captions is not None and len(captions) != len(ids):
            raise StoreError(f"{path}: {len(captions)} captions for {len(ids)} sample ids.")
        fingerprint = sample_fingerprint(ids, captions)
        if path.exists() and resume and not overwrite:
            store = cls(path, mode="a")
            if store.attrs.get("dataset_fingerprint") != fingerprint:
                store.close()
                check_same_samples(store.sample_ids, ids, names=(str(path), "sample_ids"))
                raise StoreError(f"{path}: stored captions differ from the captions given.")
            return store
        if path.exists() and not overwrite:
            raise StoreError(f"{path}: file exists; pass overwrite=True or resume=True.")
        if not path.parent.is_dir():
            raise StoreError(f"{path}: folder {path.parent} does not exist.")
        columns = {name: np.asarray(col) for name, col in (labels or {}).items()}
        for name, col in columns.items():
            check_name("label", name)
            if col.shape != (len(ids),):
                raise StoreError(
                    f"{path}: label column {name!r} has shape {col.shape}, expected ({len(ids)},)."
                )
        with hdf5_errors(path, "cannot create the store"):
            partial = Partial(path)
            try:
                with writer_file(partial.path, create=True) as f:
                    write_sample_table(f, ids, captions, columns, fingerprint)
                    f.flush()
                os.close(partial.commit())
            except BaseException:
                partial.discard()
                raise
        return cls(path, mode="a")

    # -------------------------------------------------------------------------------- checkpoints
    def add_checkpoint(
        self,
        name: str,
        *,
        model: str,
        revision: str | None = None,
        dtype: str = "float32",
        template: str | None = None,
        n_layers: int | None = None,
        hidden_size: int | None = None,
        **extra: str | int | float,
    ) -> None:
        """Record a checkpoint and its provenance; a no-op if it exists with the same provenance.

        Extra keys are stored as they are, e.g. ``weights_sha256`` (a fingerprint of the
        weights): resuming a checkpoint with any other value is refused, so rows of different
        weights or settings are never mixed in one view.
        """
        self._writable()
        check_name("checkpoint", name)
        given = {
            "model": model,
            "revision": revision,
            "dtype": dtype,
            "template": template,
            "n_layers": n_layers,
            "hidden_size": hidden_size,
            **extra,
        }
        given = {k: v for k, v in given.items() if v is not None}
        group = self._file["checkpoints"]
        if name in group:
            stored = {k: v for k, v in group[name].attrs.items() if k != "geomalign_version"}
            norm = {k: v.item() if isinstance(v, np.generic) else v for k, v in stored.items()}
            if norm != given:
                keys = sorted(k for k in norm.keys() | given.keys() if norm.get(k) != given.get(k))
                diff = "; ".join(
                    f"{k}: stored {norm.get(k, '(none)')!r}, given {given.get(k, '(none)')!r}"
                    for k in keys
                )
                raise StoreError(
                    f"{self.path}: checkpoint {name!r} exists with other provenance ({diff}); "
                    "its rows came from other weights or settings: use another checkpoint name "
                    "or another store."
                )
            return
        with self.transaction(), hdf5_errors(self.path, "layout change failed, store unchanged"):
            self._stage()
            self._file["checkpoints"].create_group(name).attrs.update(
                given, geomalign_version=__version__
            )

    # -------------------------------------------------------------------------------------- views
    def create_view(
        self,
        checkpoint: str,
        modality: str,
        pooling: str,
        *,
        layers: Sequence[int],
        dim: int,
        dtype: str = "float16",
        tokens_per_sample: Sequence[int] | np.ndarray | None = None,
        compression: str | None = None,
    ) -> ViewInfo:
        """Allocate the rows of one view; a no-op if it exists with the same shape and dtype.

        The view appears atomically (see :meth:`transaction`), its rows reserved on disk.

        Parameters
        ----------
        checkpoint, modality, pooling : str
            The view's key, e.g. ``("tuned", "image", "mean")``.
        layers : sequence of int
            Layer numbers kept (0 is the embedding output, 1..L the block outputs).
        dim : int
            Hidden size.
        dtype : {"float16", "float32", "bfloat16"}, default="float16"
            On-disk dtype. bfloat16 rows are kept losslessly as their bit pattern (uint16 with
            attribute ``dtype="bfloat16"``) and read back as float32.
        tokens_per_sample : sequence of int, default=None
            For token views (no pooling): how many rows each sample has.
        compression : {None, "gzip"}, default=None
            Activations barely compress and compression slows writes several-fold: off by default.
        """
        self._writable()
        if checkpoint not in self._file["checkpoints"]:
            raise StoreError(f"{self.path}: add checkpoint {checkpoint!r} before its views.")
        check_name("modality", modality)
        check_name("pooling", pooling)
        if compression not in (None, "gzip"):
            raise StoreError(f"compression must be None or 'gzip'; got {compression!r}.")
        dtype = str(dtype)
        if dtype not in _STORED_DTYPES:
            raise StoreError(
                f"{self.path}: view dtype must be one of {list(_STORED_DTYPES)}; got {dtype!r}."
            )
        layers = [int(layer) for layer in layers]
        if not layers or len(set(layers)) != len(layers) or min(layers) < 0:
            raise StoreError(
                f"{self.path}: layers must be distinct non-negative ints; got {layers}."
            )
        offsets = None
        n_rows = self.n_samples
        if tokens_per_sample is not None:
            counts = np.asarray(tokens_per_sample, dtype=np.int64)
            if counts.shape != (self.n_samples,) or (counts < 1).any():
                raise StoreError(
                    f"{self.path}: tokens_per_sample needs {self.n_samples} positive counts; "
                    f"got shape {counts.shape}."
                )
            offsets = np.concatenate([[0], np.cumsum(counts)])
            n_rows = int(offsets[-1])
        key = f"checkpoints/{checkpoint}/{modality}/{pooling}"
        if key in self._file:
            info = self.view_info(checkpoint, modality, pooling)
            if (info.layers, info.dim, info.dtype, info.n_rows) != (layers, dim, dtype, n_rows):
                raise StoreError(
                    f"{self.path}: view {key} exists with layers={info.layers}, dim={info.dim}, "
                    f"dtype={info.dtype}, rows={info.n_rows}; got layers={layers}, dim={dim}, "
                    f"dtype={dtype}, rows={n_rows}."
                )
            return info
        storage = np.uint16 if dtype == BFLOAT16 else np.dtype(dtype)
        rows_per_chunk = int(np.clip(_CHUNK_BYTES // (dim * np.dtype(storage).itemsize), 1, n_rows))
        shape, chunks = (len(layers), n_rows, dim), (1, rows_per_chunk, dim)
        with self.transaction(), hdf5_errors(self.path, "layout change failed, store unchanged"):
            self._stage()
            group = self._file.require_group(key)
            data = allocated(group, "data", shape, storage, chunks, compression=compression)
            data.attrs["layers"] = np.asarray(layers, dtype=np.int64)
            if dtype == BFLOAT16:
                data.attrs["dtype"] = BFLOAT16
                self._file.attrs["schema_version"] = SCHEMA_VERSION  # unknown to version-1 readers
            done_chunks = (min(self.n_samples, 1 << 16),)
            allocated(group, "done", (self.n_samples,), np.uint8, done_chunks, zeroed=True)
            if offsets is not None:
                group.create_dataset("offsets", data=offsets)
            return self.view_info(checkpoint, modality, pooling)

    # ------------------------------------------------------------------------------ housekeeping
    def close(self) -> None:
        """Close the file (a writer's file is flushed and synced first; failures raise)."""
        if self._partial is not None:  # closed inside a transaction: its changes are dropped
            self._discard()
        with hdf5_errors(self.path, "flushing the store failed"):
            try:
                if self.mode == "a" and not self._dead and self._file.id.valid:
                    self._sync()
            finally:
                self._release()

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, mode={self.mode!r})"


def check_same_samples(
    a: ActivationStore | Sequence[str],
    b: ActivationStore | Sequence[str],
    *,
    names: tuple[str, str] | None = None,
) -> None:
    """Raise StoreError unless ``a`` and ``b`` hold the same sample ids in the same order."""
    ids_a = a.sample_ids if isinstance(a, ActivationStore) else list(a)
    ids_b = b.sample_ids if isinstance(b, ActivationStore) else list(b)
    name_a, name_b = names or (
        str(a.path) if isinstance(a, ActivationStore) else "first",
        str(b.path) if isinstance(b, ActivationStore) else "second",
    )
    if ids_a == ids_b:
        return
    if len(ids_a) != len(ids_b):
        raise StoreError(
            f"sample ids differ: {name_a} has {len(ids_a)}, {name_b} has {len(ids_b)}."
        )
    row = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=True)) if x != y)
    raise StoreError(
        f"sample ids differ: row {row} is {ids_a[row]!r} in {name_a} "
        f"but {ids_b[row]!r} in {name_b}."
    )

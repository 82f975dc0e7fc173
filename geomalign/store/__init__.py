"""The activation store: per-layer hidden states of several checkpoints in one HDF5 file.

Layout (schema version 2; see ``docs/store.md``)::

    /                              attrs: format, schema_version, geomalign_version, created,
                                          dataset_fingerprint
    /samples/ids                   (n_samples,) unique strings
    /samples/captions              (n_samples,) strings (optional)
    /samples/labels/<name>         (n_samples,) label column (optional)
    /checkpoints/<ckpt>            attrs: provenance (model, revision, dtype, template, ...)
    /checkpoints/<ckpt>/<modality>/<pooling>/data     (n_layers, n_rows, dim) float16 | float32
                                                      | bfloat16 bits (uint16, attr dtype)
    /checkpoints/<ckpt>/<modality>/<pooling>/done     (n_samples,) uint8 completion mask
    /checkpoints/<ckpt>/<modality>/<pooling>/offsets  (n_samples + 1,) int64 (token views only)

Layout changes (creation, a checkpoint, a view) are made in a partial copy beside the store, which
is reserved on disk, synced and renamed over it (:meth:`ActivationStore.transaction`); every
dataset is allocated in full when it is created, so writing rows never changes the file's metadata.
A writer killed at any instant leaves a store that opens, and the ``done`` mask, advanced only
after the rows it covers are fsynced, says exactly which rows to write again. Files are checked in
full when opened. Readers open the file without a lock and without raw-data caches, so they can
follow a running writer.
"""

from geomalign.store._errors import IncompleteRowsError, NonFiniteRowsError, StoreError, ViewInfo
from geomalign.store._merge import merge_stores
from geomalign.store._store import SCHEMA_VERSION, ActivationStore, check_same_samples

__all__ = [
    "SCHEMA_VERSION",
    "ActivationStore",
    "IncompleteRowsError",
    "NonFiniteRowsError",
    "StoreError",
    "ViewInfo",
    "check_same_samples",
    "merge_stores",
]

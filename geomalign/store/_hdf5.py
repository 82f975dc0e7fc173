"""HDF5 access of the store's writers: files opened without caches, errors raised as StoreError,
the sample table."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from geomalign._version import __version__
from geomalign.store._errors import StoreError
from geomalign.store._validate import FORMAT, SCHEMA_VERSION

STRINGS = h5py.string_dtype()
_WRITER_CACHE_BYTES = 0  # writes go straight to pre-allocated chunks: no second copy


def sample_fingerprint(ids: Sequence[str], captions: Sequence[str] | None) -> str:
    digest = hashlib.sha256()
    for text in list(ids) + list(captions or []):
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@contextmanager
def hdf5_errors(path: Path, what: str) -> Iterator[None]:
    """Raise the errors of the HDF5 layer (h5py raises OSError, RuntimeError or ValueError) as
    StoreError naming the store; never swallow them."""
    try:
        yield
    except StoreError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise StoreError(f"{path}: {what}: {exc}") from exc


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in {".", ".."}:
        raise StoreError(f"{kind} name must be a non-empty string without '/'; got {name!r}.")
    return name


def writer_file(path: Path, *, create: bool) -> h5py.File:
    """Open (or create, truncating) ``path`` for writing, without HDF5's lock or caches.

    Writes go straight to the file: no raw-data cache and no sieve buffer, so a failed write
    fails in the call that made it. (A write buffered until a dataset is closed, then failing,
    leaves the HDF5 library in a state in which it crashes at exit.)
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_file_locking(False, True)
    fapl.set_sieve_buf_size(0)
    # The oldest superblock (as h5py writes by default) has no checksum: the flag HDF5 rewrites
    # in it when a writer opens and closes the file cannot make it unreadable, even torn.
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    mdc_nelmts, nslots, _, w0 = fapl.get_cache()
    fapl.set_cache(mdc_nelmts, nslots, _WRITER_CACHE_BYTES, w0)
    name = os.fsencode(path)
    if create:
        fid = h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
    else:
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    return h5py.File(fid)


def write_sample_table(
    f: h5py.File,
    ids: list[str],
    captions: Sequence[str] | None,
    columns: Mapping[str, np.ndarray],
    fingerprint: str,
) -> None:
    f.attrs.update(
        format=FORMAT,
        schema_version=SCHEMA_VERSION,
        geomalign_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dataset_fingerprint=fingerprint,
    )
    samples = f.create_group("samples")
    samples.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STRINGS)
    if captions is not None:
        samples.create_dataset(
            "captions", data=np.array([str(c) for c in captions], dtype=object), dtype=STRINGS
        )
    group = samples.create_group("labels")
    for name, col in columns.items():
        if col.dtype.kind in "USO":
            group.create_dataset(name, data=col.astype(str).astype(object), dtype=STRINGS)
        else:
            group.create_dataset(name, data=col)
    f.create_group("checkpoints")

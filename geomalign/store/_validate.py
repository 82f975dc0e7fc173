"""Check an opened store file's structure before anything trusts it.

Every fact the store relies on is checked once, when the file is opened: no link other than a
hard link inside the file (external and soft links are never followed), no dataset whose data
lives in other files, the format and schema version, unique sample ids, the shapes and dtypes of
every column and view, ``layers`` attributes, ``done`` masks of 0/1 and token offsets. Each
failure is one :class:`StoreError` naming the file and the object.
"""

from __future__ import annotations

import numbers
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from geomalign.store._errors import StoreError, listing
from geomalign.store._rows import BFLOAT16

FORMAT = "geomalign-activations"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


def members(group: h5py.Group, path: Path) -> dict[str, h5py.Group | h5py.Dataset]:
    """The members of ``group``, refusing any link that is not a hard link within the file."""
    out = {}
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            kind = type(link).__name__
            raise StoreError(
                f"{path}: {group.name.rstrip('/')}/{name} is a {kind}; a store holds only its "
                "own objects (links to other files or paths are not followed)."
            )
        out[name] = group[name]
    return out


def _dataset(parent: h5py.Group, name: str, path: Path, *, ndim: int) -> h5py.Dataset:
    found = _optional_dataset(parent, name, path, ndim=ndim)
    if found is None:
        where = f"{parent.name.rstrip('/')}/{name}"
        raise StoreError(f"{path}: malformed store, {where!r} is missing.")
    return found


def _optional_dataset(
    parent: h5py.Group, name: str, path: Path, *, ndim: int
) -> h5py.Dataset | None:
    where = f"{parent.name.rstrip('/')}/{name}"
    found = members(parent, path).get(name)
    if found is None:
        return None
    if not isinstance(found, h5py.Dataset):
        raise StoreError(f"{path}: malformed store, {where!r} is not a dataset.")
    if found.is_virtual or found.id.get_create_plist().get_external_count():
        raise StoreError(f"{path}: {where} keeps its data in other files; refused.")
    if found.ndim != ndim:
        raise StoreError(
            f"{path}: malformed store, {where} has {found.ndim} dimensions, expected {ndim}."
        )
    return found


def _group(parent: h5py.Group, name: str, path: Path) -> h5py.Group:
    found = members(parent, path).get(name)
    where = f"{parent.name.rstrip('/')}/{name}"
    if not isinstance(found, h5py.Group):
        state = "is missing" if found is None else "is not a group"
        raise StoreError(f"{path}: malformed store, {where!r} {state}.")
    return found


def _strings(dset: h5py.Dataset, path: Path) -> list[str]:
    if h5py.check_string_dtype(dset.dtype) is None:
        raise StoreError(f"{path}: {dset.name} holds {dset.dtype}, expected strings.")
    try:
        return list(dset.asstr()[()])
    except (UnicodeDecodeError, OSError) as exc:
        raise StoreError(f"{path}: {dset.name} cannot be read as UTF-8 strings: {exc}") from exc


def check_root(f: h5py.File, path: Path) -> int:
    """Check the format and schema version attributes; return the schema version."""
    if f.attrs.get("format") != FORMAT:
        raise StoreError(f"{path}: not a geomalign store (no format={FORMAT!r} attribute).")
    version = f.attrs.get("schema_version")
    is_int = isinstance(version, numbers.Integral) and not isinstance(version, bool | np.bool_)
    if is_int and version > READABLE_VERSIONS[-1]:
        raise StoreError(
            f"{path}: schema version {version} is newer than this library reads (up to "
            f"{READABLE_VERSIONS[-1]}); upgrade geomalign."
        )
    if not is_int or int(version) not in READABLE_VERSIONS:
        shown = version.item() if isinstance(version, np.generic) else version
        raise StoreError(
            f"{path}: invalid schema_version {shown!r}; expected one of {READABLE_VERSIONS}."
        )
    return int(version)


def check_samples(f: h5py.File, path: Path) -> list[str]:
    """Check the sample table; return the sample ids."""
    samples = _group(f, "samples", path)
    ids = _strings(_dataset(samples, "ids", path, ndim=1), path)
    if not ids:
        raise StoreError(f"{path}: /samples/ids is empty.")
    if len(set(ids)) != len(ids):
        counts = Counter(ids)
        dups = [i for i, n in counts.items() if n > 1]
        raise StoreError(f"{path}: /samples/ids has duplicate sample ids {listing(dups)}.")
    captions = _optional_dataset(samples, "captions", path, ndim=1)
    if captions is not None:
        _strings(captions, path)
        if captions.shape != (len(ids),):
            raise StoreError(
                f"{path}: /samples/captions has {captions.shape[0]} entries for {len(ids)} ids."
            )
    labels = _group(samples, "labels", path)
    for name in members(labels, path):
        column = _dataset(labels, name, path, ndim=1)
        if column.shape != (len(ids),):
            raise StoreError(
                f"{path}: {column.name} has {column.shape[0]} entries for {len(ids)} ids."
            )
    return ids


def check_view(group: h5py.Group, path: Path, n_samples: int) -> None:
    """Check one view group: ``data``, its ``layers``, ``done`` and token ``offsets``."""
    where = group.name
    data = _dataset(group, "data", path, ndim=3)
    stored = data.attrs.get("dtype")
    if stored is not None and (stored != BFLOAT16 or data.dtype != np.uint16):
        raise StoreError(
            f"{path}: {data.name} has dtype attribute {stored!r} on {data.dtype} data; only "
            f"{BFLOAT16!r} on uint16 is known."
        )
    if stored is None and data.dtype not in (np.float16, np.float32):
        raise StoreError(f"{path}: {data.name} holds {data.dtype}, expected float16 or float32.")
    layers = np.asarray(data.attrs.get("layers", []))
    if (
        layers.ndim != 1
        or layers.dtype.kind not in "iu"
        or layers.size != data.shape[0]
        or len(set(layers.tolist())) != layers.size
        or (layers < 0).any()
    ):
        raise StoreError(
            f"{path}: {data.name} needs a 'layers' attribute of {data.shape[0]} distinct "
            f"non-negative ints (one per slice); got {layers.tolist()!r}."
        )
    done = _dataset(group, "done", path, ndim=1)
    if done.dtype != np.uint8 or done.shape != (n_samples,):
        raise StoreError(
            f"{path}: {done.name} is {done.dtype} of shape {done.shape}; expected uint8 of "
            f"shape ({n_samples},)."
        )
    if done[()].max(initial=0) > 1:
        raise StoreError(f"{path}: {done.name} holds values other than 0 and 1.")
    offsets = _optional_dataset(group, "offsets", path, ndim=1)
    if offsets is None:
        if data.shape[1] != n_samples:
            raise StoreError(
                f"{path}: {where}/data has {data.shape[1]} rows for {n_samples} samples."
            )
        return
    values = offsets[()]
    if (
        values.dtype.kind not in "iu"
        or values.shape != (n_samples + 1,)
        or values[0] != 0
        or (np.diff(values) < 1).any()
        or values[-1] != data.shape[1]
    ):
        raise StoreError(
            f"{path}: {offsets.name} must be {n_samples + 1} increasing ints from 0 to the "
            f"{data.shape[1]} rows of {where}/data."
        )


def check_structure(f: h5py.File, path: Path) -> list[str]:
    """Check the whole file; return the sample ids."""
    check_root(f, path)
    ids = check_samples(f, path)
    for checkpoint in members(_group(f, "checkpoints", path), path).values():
        if not isinstance(checkpoint, h5py.Group):
            raise StoreError(f"{path}: malformed store, {checkpoint.name} is not a group.")
        for modality in members(checkpoint, path).values():
            if not isinstance(modality, h5py.Group):
                raise StoreError(f"{path}: malformed store, {modality.name} is not a group.")
            for view in members(modality, path).values():
                if not isinstance(view, h5py.Group):
                    raise StoreError(f"{path}: malformed store, {view.name} is not a group.")
                check_view(view, path, len(ids))
    return ids

"""Import activations made elsewhere into a store, with provenance, through the store's API."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geomalign.interchange._sources import (
    FORMATS,
    Source,
    detect_format,
    read_arrow,
    read_npy,
    read_npz,
    read_safetensors,
    read_torch,
)
from geomalign.store import ActivationStore, StoreError, ViewInfo, check_same_samples

__all__ = ["import_activations", "open_source"]


def open_source(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    layout: str | None = None,
    layers: Sequence[int] | None = None,
    key: str = "feats",
    columns: Sequence[str] | None = None,
) -> Source:
    """Open activations made elsewhere for reading, a block of rows at a time.

    See :func:`import_activations` for the parameters.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder.")
    fmt = detect_format(path) if format is None else format
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}; got {fmt!r}.")
    if layout is None:
        layout = "samples-first" if fmt == "torch" else "layers-first"
    if fmt == "npy":
        return read_npy(path, layout=layout, layers=layers)
    if fmt == "npz":
        return read_npz(path, layout=layout, layers=layers)
    if fmt == "safetensors":
        return read_safetensors(path)
    if fmt == "torch":
        return read_torch(path, key=key, layout=layout, layers=layers)
    return read_arrow(path, columns=columns)


def import_activations(
    source: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    checkpoint: str,
    modality: str,
    pooling: str,
    format: str | None = None,
    layout: str | None = None,
    layers: Sequence[int] | None = None,
    key: str = "feats",
    columns: Sequence[str] | None = None,
    sample_ids: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    model: str | None = None,
    store_dtype: str = "float32",
    overwrite: bool = False,
    working_memory: float = 256,
) -> ViewInfo:
    """Import activations from NumPy, safetensors, torch or Arrow files as one view of a store.

    The rows become the view ``(checkpoint, modality, pooling)`` of ``store_path`` (created if
    absent; else its samples must match), written through :class:`ActivationStore` in blocks of
    rows, so memory stays about ``working_memory`` MiB whatever the file's size. The checkpoint
    records where the rows came from: the source files, their SHA-256, the format and the source
    dtype. An interrupted import resumes: blocks already written are skipped.

    Parameters
    ----------
    source : str or path-like
        A ``.npy`` / ``.npz`` file, a ``.safetensors`` file or a folder of them, a ``.pt`` /
        ``.pth`` file written by ``torch.save``, or a Hugging Face dataset saved to disk (or a
        folder of ``.arrow`` shards, or one shard).
    store_path : str or path-like
        The store.
    checkpoint, modality, pooling : str
        The view's key, e.g. ``("llava15", "text", "last")``.
    format : {"npy", "npz", "safetensors", "torch", "arrow"}, default=None
        The source's format; from its suffix (or a folder's files) when None.
    layout : {"layers-first", "samples-first"}, default=None
        Axis order of a 3-D array: (n_layers, n_samples, dim), the store's, or (n_samples,
        n_layers, dim). None: "samples-first" for a torch file (platonic-rep's ``feats``),
        "layers-first" for the others.
    layers : sequence of int, default=None
        Layer numbers of the array's layers (0 = embedding output, l = output of block l-1), in
        order; default 0, 1, ... Sources that name their layers (``layer_<n>`` keys, files or
        columns) carry their own numbers.
    key : str, default="feats"
        The entry of a torch file's dict holding the tensor.
    columns : sequence of str, default=None
        Arrow: the columns holding layers (default: every column whose name gives its layer,
        such as ``layer_3`` or SAELens' ``blocks.2.hook_resid_post``, layer 3).
    sample_ids : sequence of str, default=None
        One id per row; default the source's own ids (an ``.npz`` ``ids`` member, a
        ``samples.json`` beside safetensors files), else the stored ids when the store exists,
        else ``"0"``, ``"1"``, ...
    captions : sequence of str, default=None
        One caption per row (default: the source's, or the store's).
    model : str, default=None
        The model the activations came from, recorded as the checkpoint's ``model``; default
        ``"imported from <source>"``.
    store_dtype : {"float32", "float16"}, default="float32"
        On-disk dtype. Every source reads as float32 first (bfloat16 included).
    overwrite : bool, default=False
        Replace an existing store file.
    working_memory : float, default=256
        MiB of rows read and written at a time.

    Returns
    -------
    ViewInfo
        The imported view, complete.

    Raises
    ------
    ValueError
        For an unknown format, a file that needs code to unpickle, layers that cannot be told
        apart, shapes that differ between layers, ids that do not match the rows or the store.

    Examples
    --------
    >>> import_activations("feats.pt", "acts.h5", checkpoint="llama", modality="text",
    ...                    pooling="mean")  # doctest: +SKIP
    """
    src = open_source(source, format=format, layout=layout, layers=layers, key=key, columns=columns)
    store_path = Path(store_path)
    ids, texts = _samples(src, store_path, sample_ids, captions, overwrite)
    provenance: dict[str, Any] = {
        "model": model or f"imported from {Path(source)}",
        "dtype": store_dtype,
        "hidden_size": src.dim,
        "imported_from": ", ".join(str(f.resolve()) for f in src.files),
        "import_format": src.format,
        "source_dtype": src.dtype,
        "source_sha256": _sha256(src.files),
    }
    rows_per_block = max(1, int(working_memory * (1 << 20)) // (4 * src.dim * len(src.layers)))
    with ActivationStore.create(
        store_path, ids, captions=texts, overwrite=overwrite, resume=True
    ) as store:
        store.add_checkpoint(checkpoint, **provenance)
        store.create_view(
            checkpoint, modality, pooling, layers=src.layers, dim=src.dim, dtype=store_dtype
        )
        missing = np.zeros(src.n_samples, dtype=bool)
        missing[store.missing(checkpoint, modality, pooling)] = True
        for lo in range(0, src.n_samples, rows_per_block):
            hi = min(lo + rows_per_block, src.n_samples)
            if not missing[lo:hi].any():
                continue
            data = np.stack([src.block(p, lo, hi) for p in range(len(src.layers))])
            store.write(checkpoint, modality, pooling, np.arange(lo, hi), data)
        return store.view_info(checkpoint, modality, pooling)


def _samples(
    src: Source,
    store_path: Path,
    sample_ids: Sequence[str] | None,
    captions: Sequence[str] | None,
    overwrite: bool,
) -> tuple[list[str], list[str] | None]:
    """The ids and captions of the rows: given, else the source's, else the store's, else 0.."""
    stored_ids = stored_captions = None
    if store_path.exists() and not overwrite:
        with ActivationStore(store_path) as store:
            stored_ids, stored_captions = store.sample_ids, store.captions
    ids = [str(i) for i in sample_ids] if sample_ids is not None else src.ids
    ids = ids if ids is not None else stored_ids
    ids = ids if ids is not None else [str(i) for i in range(src.n_samples)]
    if len(ids) != src.n_samples:
        raise ValueError(
            f"{src.files[0]}: {src.n_samples} rows but {len(ids)} sample ids; give one id per row."
        )
    if stored_ids is not None:
        try:
            check_same_samples(stored_ids, ids, names=(str(store_path), "the imported rows"))
        except StoreError as exc:
            raise StoreError(f"{exc} Import into another store, or pass sample_ids.") from None
    texts = list(captions) if captions is not None else src.captions
    return ids, texts if texts is not None else stored_captions


def _sha256(files: Sequence[Path]) -> str:
    """One SHA-256 over the files' bytes, in order (one file: that file's digest)."""
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()

"""Export one view of a store to safetensors or NumPy files, a layer at a time."""

from __future__ import annotations

import functools
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from geomalign.interchange._sources import SAMPLES_FILE
from geomalign.store import ActivationStore

__all__ = ["EXPORT_FORMATS", "export_view"]

EXPORT_FORMATS = ("safetensors", "npy", "npz")


def export_view(
    store_path: str | os.PathLike,
    checkpoint: str,
    modality: str,
    pooling: str,
    out: str | os.PathLike,
    *,
    format: str = "safetensors",
    layers: Sequence[int] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a pooled view's layers to files other tools read.

    Memory holds one layer of the view at a time. Rows are written in the view's on-disk dtype.

    Parameters
    ----------
    store_path : str or path-like
        The store.
    checkpoint, modality, pooling : str
        The view (a pooled one: token views are not exported).
    out : str or path-like
        ``"safetensors"``: a folder, created, receiving ``layer_<n>.safetensors`` (one
        (n_samples, dim) tensor keyed ``layer_<n>`` per file, as the LLaVA representation study
        stores them) and ``samples.json`` (ids and captions). ``"npy"``: a ``.npy`` file of shape
        (n_layers, n_samples, dim). ``"npz"``: an ``.npz`` archive with ``layer_<n>`` members and
        ``ids`` / ``captions``.
    format : {"safetensors", "npy", "npz"}, default="safetensors"
        The files to write.
    layers : sequence of int, default=None
        Layers to export (default: all of the view's).
    overwrite : bool, default=False
        Replace existing files.

    Returns
    -------
    list of Path
        The files written. Each round-trips through
        :func:`geomalign.interchange.import_activations`.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {list(EXPORT_FORMATS)}; got {format!r}.")
    out = Path(out)
    with ActivationStore(store_path) as store:
        info = store.view_info(checkpoint, modality, pooling)
        if info.tokens:
            raise ValueError(
                f"{store.path}: view {checkpoint}/{modality}/{pooling} is a token view; only "
                "pooled views are exported."
            )
        chosen = info.layers if layers is None else [int(x) for x in layers]
        dtype = np.dtype(info.dtype)

        def layer(number: int) -> np.ndarray:
            return store.read(checkpoint, modality, pooling, number, dtype=dtype)

        samples = {"ids": store.sample_ids, "captions": store.captions}
        if format == "safetensors":
            return _safetensors(out, chosen, layer, samples, overwrite)
        _refuse_existing([out], overwrite)
        if format == "npy":
            array = np.lib.format.open_memmap(
                out, mode="w+", dtype=dtype, shape=(len(chosen), info.n_rows, info.dim)
            )
            for position, number in enumerate(chosen):
                array[position] = layer(number)
            array.flush()
            del array
            return [out]
        with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
            members: list[tuple[str, Callable[[], np.ndarray]]] = [
                (f"layer_{n}", functools.partial(layer, n)) for n in chosen
            ]
            members.append(("ids", lambda: np.array(samples["ids"], dtype=str)))
            if samples["captions"] is not None:
                members.append(("captions", lambda: np.array(samples["captions"], dtype=str)))
            for name, read in members:
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, read(), allow_pickle=False)
        return [out]


def _safetensors(out: Path, chosen: list[int], layer, samples: dict, overwrite: bool) -> list[Path]:
    try:
        from safetensors.numpy import save_file
    except ImportError as exc:  # pragma: no cover - installed with the hf extra
        raise ImportError("writing safetensors needs the 'safetensors' package.") from exc
    files = [out / f"layer_{n}.safetensors" for n in chosen] + [out / SAMPLES_FILE]
    _refuse_existing(files, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for number, file in zip(chosen, files, strict=False):
        save_file({f"layer_{number}": np.ascontiguousarray(layer(number))}, str(file))
    files[-1].write_text(json.dumps(samples), encoding="utf-8")
    return files


def _refuse_existing(files: Sequence[Path], overwrite: bool) -> None:
    existing = [str(f) for f in files if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite).")

"""Activations made elsewhere, seen as layers of rows read a block at a time.

Each reader opens its files lazily (memory maps, safetensors slices, Arrow tables) and yields
float32 blocks of rows of one layer, so that importing a file larger than memory costs one block.
No reader runs code from the file: NumPy files load with ``allow_pickle=False`` and torch files
with ``weights_only=True``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Formats by name, and the suffixes that select them.
FORMATS = ("npy", "npz", "safetensors", "torch", "arrow")
_SUFFIXES = {
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
    ".pt": "torch",
    ".pth": "torch",
    ".arrow": "arrow",
}
#: Sample ids and captions of a folder or file, written beside the layers by the exporter.
SAMPLES_FILE = "samples.json"


@dataclass
class Source:
    """Layers of ``n_samples`` rows of width ``dim``, read by ``block(position, lo, hi)``."""

    format: str
    files: list[Path]
    layers: list[int]
    n_samples: int
    dim: int
    dtype: str
    block: Callable[[int, int, int], np.ndarray]
    ids: list[str] | None = None
    captions: list[str] | None = None
    notes: dict[str, str] = field(default_factory=dict)


def detect_format(path: Path) -> str:
    """The format of a file by its suffix, or of a folder by the files it holds."""
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or any(path.glob("*.arrow")):
            return "arrow"
        if any(path.glob("*.safetensors")):
            return "safetensors"
        raise ValueError(
            f"{path}: a folder of neither safetensors files nor Arrow shards; pass format="
        )
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"{path}: unknown activation file suffix {path.suffix!r}; expected one of "
            f"{sorted(_SUFFIXES)} or pass format= (one of {list(FORMATS)})."
        ) from None


def layer_number(name: str) -> int | None:
    """The layer a key, file or column name holds: ``layer_12`` -> 12, ``12`` -> 12.

    SAELens hook names count blocks: ``blocks.5.hook_resid_post`` is the output of block 5,
    store layer 6; ``blocks.5.hook_resid_pre`` its input, layer 5. Names holding no number, or
    several (other than that pattern), give None.
    """
    hook = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", name)
    if hook:
        return int(hook[1]) + (hook[2] == "post")
    numbers = re.findall(r"\d+", Path(name).stem if name.endswith(".safetensors") else name)
    return int(numbers[0]) if len(numbers) == 1 else None


def _stack(
    arrays: np.ndarray, layout: str, layers: Sequence[int] | None, where: str
) -> tuple[list[int], Callable[[int, int, int], np.ndarray], int, int]:
    """Layers, block reader, n_samples and dim of a 2-D or 3-D array."""
    if arrays.ndim == 2:
        arrays = arrays[None]
        layout = "layers-first"
    if arrays.ndim != 3:
        raise ValueError(
            f"{where}: expected an array of 2 (samples, features) or 3 dimensions; got shape "
            f"{arrays.shape}."
        )
    if layout not in ("layers-first", "samples-first"):
        raise ValueError(f"layout must be 'layers-first' or 'samples-first'; got {layout!r}.")
    n_layers, n_samples = arrays.shape[:2] if layout == "layers-first" else arrays.shape[1::-1]
    numbers = _numbers(layers, n_layers, where)

    def block(position: int, lo: int, hi: int) -> np.ndarray:
        part = arrays[position, lo:hi] if layout == "layers-first" else arrays[lo:hi, position]
        return _float32(part)

    return numbers, block, int(n_samples), int(arrays.shape[2])


def _numbers(layers: Sequence[int] | None, n_layers: int, where: str) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    numbers = [int(x) for x in layers]
    if len(numbers) != n_layers:
        raise ValueError(
            f"{where}: holds {n_layers} layers but {len(numbers)} layer numbers were given "
            f"({numbers})."
        )
    return numbers


def _float32(part: object) -> np.ndarray:
    if hasattr(part, "detach"):  # a torch tensor (bfloat16 has no NumPy dtype)
        return part.detach().float().numpy()
    array = np.asarray(part)
    if array.dtype.kind != "f":
        raise ValueError(f"activations must be floating point; got dtype {array.dtype}.")
    return array.astype(np.float32)


def _samples_file(folder: Path) -> tuple[list[str] | None, list[str] | None]:
    path = folder / SAMPLES_FILE
    if not path.is_file():
        return None, None
    content = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict) or not isinstance(content.get("ids"), list):
        raise ValueError(f"{path}: expected an object with an 'ids' list.")
    captions = content.get("captions")
    return [str(i) for i in content["ids"]], None if captions is None else list(captions)


def read_npy(path: Path, *, layout: str, layers: Sequence[int] | None) -> Source:
    """A ``.npy`` array: (n_layers, n_samples, dim), (n_samples, n_layers, dim) or one layer."""
    arrays = np.load(path, mmap_mode="r", allow_pickle=False)
    numbers, block, n, dim = _stack(arrays, layout, layers, str(path))
    return Source("npy", [path], numbers, n, dim, str(arrays.dtype), block)


def read_npz(path: Path, *, layout: str, layers: Sequence[int] | None) -> Source:
    """A ``.npz`` archive: one array per layer (``layer_<n>``), or one stacked array.

    Optional members ``ids`` and ``captions`` (string arrays) give the samples.
    """
    archive = np.load(path, allow_pickle=False)
    names = [n for n in archive.files if n not in ("ids", "captions")]
    ids = [str(i) for i in archive["ids"]] if "ids" in archive.files else None
    captions = [str(c) for c in archive["captions"]] if "captions" in archive.files else None
    if len(names) == 1:
        numbers, block, n, dim = _stack(archive[names[0]], layout, layers, f"{path}:{names[0]}")
        dtype = str(archive[names[0]].dtype)
    else:
        by_layer = _by_layer(names, str(path))
        shapes = {name: archive[name].shape for name in by_layer.values()}
        n, dim = _same_shape(shapes, str(path))
        numbers = sorted(by_layer)
        if layers is not None:
            raise ValueError(f"{path}: its members name their layers; do not pass layers.")
        cache: dict[int, np.ndarray] = {}

        def block(position: int, lo: int, hi: int) -> np.ndarray:
            if position not in cache:  # one layer in memory at a time
                cache.clear()
                cache[position] = archive[by_layer[numbers[position]]]
            return _float32(cache[position][lo:hi])

        dtype = str(archive[by_layer[numbers[0]]].dtype)
    return Source("npz", [path], numbers, n, dim, dtype, block, ids, captions)


def _by_layer(names: Sequence[str], where: str) -> dict[int, str]:
    by_layer: dict[int, str] = {}
    for name in names:
        number = layer_number(name)
        if number is None:
            raise ValueError(
                f"{where}: cannot tell the layer of {name!r}; name each layer like 'layer_12'."
            )
        if number in by_layer:
            raise ValueError(
                f"{where}: {by_layer[number]!r} and {name!r} both hold layer {number}."
            )
        by_layer[number] = name
    return by_layer


def _same_shape(shapes: dict[str, tuple[int, ...]], where: str) -> tuple[int, int]:
    distinct = set(shapes.values())
    if len(distinct) != 1 or len(next(iter(distinct))) != 2:
        raise ValueError(
            f"{where}: every layer must be one (n_samples, dim) array of the same shape; got "
            f"{shapes}."
        )
    n, dim = next(iter(distinct))
    return int(n), int(dim)


def read_safetensors(path: Path) -> Source:
    """A safetensors file of ``layer_<n>`` tensors, or a folder of one file per layer.

    The study's authors store float16 ``(n_samples, dim)`` tensors keyed ``layer_<n>`` (layer 0
    the embedding output), all in one file or one file per layer (a single tensor, its layer in
    the file name). A ``samples.json`` in the folder gives ids and captions.
    """
    try:
        from safetensors import safe_open
    except ImportError as exc:  # pragma: no cover - installed with the hf extra
        raise ImportError("reading safetensors needs the 'safetensors' package.") from exc
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    tensors: dict[str, tuple[Path, str]] = {}  # the name telling the layer -> (file, tensor)
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes = set()
    for file in files:
        with safe_open(file, framework="pt") as handle:
            names = list(handle.keys())
            for name in names:
                # a file holding one tensor may tell its layer by its own name
                alone = len(names) == 1 and layer_number(name) is None
                label = file.name if alone else name
                if label in tensors:
                    raise ValueError(f"{file}: {label!r} is stored twice ({tensors[label]}).")
                tensors[label] = (file, name)
                piece = handle.get_slice(name)
                shapes[f"{file.name}:{name}"] = tuple(piece.get_shape())
                dtypes.add(piece.get_dtype())
    keys = {number: tensors[label] for number, label in _by_layer(list(tensors), str(path)).items()}
    if not keys:
        raise ValueError(f"{path}: no safetensors tensors found.")
    n, dim = _same_shape(shapes, str(path))
    numbers = sorted(keys)

    def block(position: int, lo: int, hi: int) -> np.ndarray:
        file, name = keys[numbers[position]]
        with safe_open(file, framework="pt") as handle:
            return _float32(handle.get_slice(name)[lo:hi])

    ids, captions = _samples_file(path if path.is_dir() else path.parent)
    dtype = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}.get(
        next(iter(dtypes)) if len(dtypes) == 1 else "", "/".join(sorted(dtypes))
    )
    return Source("safetensors", files, numbers, n, dim, dtype, block, ids, captions)


def read_torch(path: Path, *, key: str, layout: str, layers: Sequence[int] | None) -> Source:
    """A ``torch.save`` file: a tensor, or a dict holding one (platonic-rep: ``feats``, N x L x D).

    Loaded with ``weights_only=True`` (tensors and plain containers only; a file that needs code
    to unpickle is refused) and memory-mapped where the file allows.
    """
    import pickle

    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) file cannot be memory-mapped
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: holds objects other than tensors and plain containers; refusing to "
            f"unpickle code ({str(exc).splitlines()[0]})."
        ) from exc
    if isinstance(content, dict):
        if key not in content:
            found = sorted(str(k) for k in content)
            raise ValueError(f"{path}: no {key!r} entry (the file holds {found}); pass key=.")
        tensor = content[key]
    else:
        tensor = content
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{path}: {key!r} is a {type(tensor).__name__}, not a tensor.")
    numbers, block, n, dim = _stack(tensor, layout, layers, f"{path}:{key}")  # type: ignore[arg-type]
    dtype = str(tensor.dtype).removeprefix("torch.")
    return Source("torch", [path], numbers, n, dim, dtype, block)


def read_arrow(path: Path, *, columns: Sequence[str] | None) -> Source:
    """A Hugging Face dataset saved to disk, or Arrow shards: one column of vectors per layer.

    Each row is a sample (for a SAELens cache, a token). Columns are ``columns`` if given, else
    every column whose name tells its layer (:func:`layer_number`).
    """
    try:
        import datasets
    except ImportError as exc:
        raise ImportError("reading Arrow shards needs the 'datasets' package.") from exc
    if path.is_dir() and (path / "dataset_info.json").is_file():
        table = datasets.load_from_disk(str(path))
        files = sorted(path.glob("*.arrow"))
    else:
        files = sorted(path.glob("*.arrow")) if path.is_dir() else [path]
        table = datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])
    if not isinstance(table, datasets.Dataset):
        raise ValueError(f"{path}: holds several splits; point at one split's folder.")
    chosen = list(columns) if columns is not None else None
    if chosen is None:
        chosen = [c for c in table.column_names if layer_number(c) is not None]
    unknown = [c for c in chosen if c not in table.column_names]
    if unknown or not chosen:
        raise ValueError(
            f"{path}: no layer column(s) {unknown or ''}; the table has {table.column_names}."
        )
    by_layer = _by_layer(chosen, str(path))
    numbers = sorted(by_layer)
    view = table.with_format("numpy")
    first = np.asarray(view[0:1][by_layer[numbers[0]]])
    if first.ndim != 2:
        raise ValueError(f"{path}: column {by_layer[numbers[0]]!r} does not hold vectors.")

    def block(position: int, lo: int, hi: int) -> np.ndarray:
        return _float32(np.stack(view[lo:hi][by_layer[numbers[position]]]))

    return Source("arrow", files, numbers, len(table), int(first.shape[1]), str(first.dtype), block)

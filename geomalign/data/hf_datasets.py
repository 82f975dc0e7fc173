"""Paired data from a Hugging Face ``datasets.Dataset`` (needs the optional ``datasets``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from geomalign.data._files import read_rgb
from geomalign.data._pairs import PairedDataset

if TYPE_CHECKING:
    import datasets

__all__ = ["from_hf_dataset"]


def from_hf_dataset(
    dataset: datasets.Dataset,
    *,
    image_column: str | None = "image",
    caption_column: str = "caption",
    id_column: str | None = None,
    label_columns: Sequence[str] = (),
    captions: str = "first",
) -> PairedDataset:
    """Wrap a ``datasets.Dataset`` of images and captions as a paired dataset.

    Parameters
    ----------
    dataset : datasets.Dataset
        A map-style dataset (pick a split of a ``DatasetDict``; streaming datasets are not
        supported since samples are addressed by row).
    image_column : str or None, default="image"
        Column of images: decoded ``PIL`` images (the ``datasets.Image`` feature), undecoded
        ``{"bytes", "path"}`` dicts, or file paths. None gives a captions-only dataset.
    caption_column : str, default="caption"
        Column of captions: one string per row, or a list of strings per row.
    id_column : str or None, default=None
        Column of sample ids; None uses the row number.
    label_columns : sequence of str, default=()
        Columns kept as labels.
    captions : {"first", "all"}, default="first"
        For list-valued caption columns: keep each row's first caption, or make one sample per
        caption (id ``"{row id}-{k}"``).

    Returns
    -------
    PairedDataset
        Images are decoded only when a sample is used.

    Raises
    ------
    TypeError
        If ``dataset`` is not a ``datasets.Dataset``.
    ValueError
        For an unknown column, an empty caption, a duplicate id, or (when a sample is used) a
        missing or unreadable image, naming the sample.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the caller cannot hold a Dataset without it
        raise ImportError("from_hf_dataset needs the 'datasets' package.") from exc
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(
            f"dataset must be a datasets.Dataset (one split, not streaming); "
            f"got {type(dataset).__name__}."
        )
    if captions not in ("first", "all"):
        raise ValueError(f"captions must be 'first' or 'all'; got {captions!r}.")
    source = f"datasets.Dataset({dataset.info.dataset_name or 'unnamed'})"
    wanted = [caption_column, *label_columns, *([image_column] if image_column else [])]
    if id_column is not None:
        wanted.append(id_column)
    unknown = [c for c in wanted if c not in dataset.column_names]
    if unknown:
        raise ValueError(
            f"{source}: no column(s) {unknown}; the dataset has {dataset.column_names}."
        )
    row_ids = (
        [str(v) for v in dataset[id_column]]
        if id_column is not None
        else [str(i) for i in range(len(dataset))]
    )
    rows: list[int] = []
    ids: list[str] = []
    texts: list[str] = []
    for row, (row_id, entry) in enumerate(zip(row_ids, dataset[caption_column], strict=True)):
        if isinstance(entry, str):
            entries = [entry]
        elif isinstance(entry, list | tuple) and entry:
            entries = [str(e) for e in (entry[:1] if captions == "first" else entry)]
        else:
            raise ValueError(f"{source}: sample {row_id!r} has no caption (got {entry!r}).")
        for k, text in enumerate(entries):
            rows.append(row)
            texts.append(text)
            many = captions == "all" and not isinstance(entry, str)
            ids.append(f"{row_id}-{k}" if many else row_id)
    labels = {name: np.asarray(list(dataset[name]))[rows] for name in label_columns}
    if image_column is None:
        return PairedDataset(ids, texts, labels=labels, source=source)
    images = dataset.select_columns([image_column])
    column = image_column

    def load_image(i: int) -> Image.Image:
        return _as_rgb(images[rows[i]][column], ids[i], source)

    return PairedDataset(ids, texts, load_image, labels=labels, source=source)


def _as_rgb(value: object, sample_id: str, source: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and value.get("bytes"):
        try:
            with Image.open(io.BytesIO(value["bytes"])) as image:
                return image.convert("RGB")
        except (OSError, SyntaxError) as exc:
            raise ValueError(
                f"{source}: sample {sample_id!r}: cannot decode the image bytes ({exc})."
            ) from exc
    if isinstance(value, dict) and value.get("path"):
        return read_rgb(Path(value["path"]), sample_id, source)
    if isinstance(value, str | Path):
        return read_rgb(Path(value), sample_id, source)
    raise ValueError(
        f"{source}: sample {sample_id!r} has no image (got {type(value).__name__}: {value!r})."
    )

"""Paired data from a folder of images and a JSONL or CSV table of (id, image file, caption)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geomalign.data._files import check_files_exist, file_loader
from geomalign.data._pairs import PairedDataset

__all__ = ["load_folder"]


def load_folder(
    annotations: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    id_column: str | None = "id",
    image_column: str = "image",
    caption_column: str = "caption",
    label_columns: Sequence[str] | None = None,
    check_files: bool = True,
) -> PairedDataset:
    """Load image/caption pairs listed in a JSONL or CSV file.

    Each row (a JSON object per line, or a CSV row under a header) names one sample: its id, its
    image file and its caption; further columns become label columns.

    Parameters
    ----------
    annotations : str or path-like
        A ``.jsonl`` or ``.csv`` file.
    image_dir : str or path-like, default=None
        Folder that relative image paths are resolved against; the annotation file's folder when
        None. Absolute paths are used as they are.
    id_column : str or None, default="id"
        Column holding the sample ids. None uses the image path as written in the table.
    image_column, caption_column : str, default="image", "caption"
        Columns holding the image path and the caption.
    label_columns : sequence of str, default=None
        Columns kept as labels. None keeps every other column of the table (of the CSV header, or
        of the first JSONL row; every row must then have them). CSV values become integers or
        floats when every value of the column parses as one, and stay strings otherwise.
    check_files : bool, default=True
        Check up front that every image file exists, so that a long extraction does not stop at
        the first missing file. Images are read only when a sample is used.

    Returns
    -------
    PairedDataset
        Samples in table order; ``source`` is the annotation file's path.

    Raises
    ------
    ValueError
        For an unknown file type, a row without a required column, an empty caption, a duplicate
        id, or a missing image file (naming the samples); reading an unreadable image later raises
        ValueError naming its sample and file.

    Examples
    --------
    >>> pairs = load_folder("pairs.jsonl")  # doctest: +SKIP
    >>> pairs[0].caption  # doctest: +SKIP
    'a red circle left of a blue square'
    """
    path = Path(annotations)
    source = str(path)
    if not path.is_file():
        raise ValueError(f"annotations file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows, columns = _read_jsonl(path)
    elif suffix == ".csv":
        rows, columns = _read_csv(path)
    else:
        raise ValueError(
            f"{source}: expected a .jsonl or .csv annotations file; got suffix {path.suffix!r}."
        )
    if not rows:
        raise ValueError(f"{source}: the table has no rows.")
    required = [c for c in (id_column, image_column, caption_column) if c is not None]
    if label_columns is None:
        label_columns = [c for c in columns if c not in required]
    for line, row in rows:
        absent = [c for c in [*required, *label_columns] if row.get(c) is None]
        if absent:
            raise ValueError(
                f"{source}, line {line}: missing column(s) {absent}; the row has {sorted(row)}."
            )
    root = Path(image_dir) if image_dir is not None else path.parent
    files = [str(row[image_column]) for _, row in rows]
    ids = [str(row[id_column]) for _, row in rows] if id_column is not None else files
    paths = [root / f for f in files]
    labels = {
        name: _column([row[name] for _, row in rows], parse=suffix == ".csv")
        for name in label_columns
    }
    dataset = PairedDataset(
        ids,
        [str(row[caption_column]) for _, row in rows],
        file_loader(ids, paths, source),
        labels=labels,
        source=source,
    )
    if check_files:
        check_files_exist(ids, paths, source)
    return dataset


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    rows: list[tuple[int, dict]] = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {line}: not valid JSON ({exc}).") from exc
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}, line {line}: expected a JSON object; got {type(row).__name__}."
                )
            rows.append((line, row))
    return rows, list(rows[0][1]) if rows else []


def _read_csv(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        # Line 1 is the header; a missing trailing field reads as None, an empty one as "".
        rows = [(line, dict(row)) for line, row in enumerate(reader, start=2)]
        columns = list(reader.fieldnames or [])
    return rows, columns


def _column(values: list[object], *, parse: bool) -> np.ndarray:
    """A label column; CSV strings become ints or floats when all of them parse as such."""
    if parse:
        for kind in (int, float):
            try:
                return np.array([kind(v) for v in values])
            except ValueError:
                continue
    return np.array(values)

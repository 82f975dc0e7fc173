"""Paired data from a folder of images and a JSONL or CSV table of (id, image file, caption)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geomalign.data._files import check_files_exist, contained_path, file_loader
from geomalign.data._pairs import PairedDataset
from geomalign.data._tables import read_csv, read_jsonl

__all__ = ["LABEL_PREFIX", "load_folder"]

logger = logging.getLogger(__name__)

#: Columns named ``label_<name>`` become the label ``<name>`` when no label columns are given.
LABEL_PREFIX = "label_"


def load_folder(
    annotations: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    id_column: str | None = "id",
    image_column: str | None = "image",
    caption_column: str = "caption",
    label_columns: Sequence[str] | None = None,
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> PairedDataset:
    """Load image/caption pairs listed in a JSONL or CSV file (a pairs table).

    Each record (a JSON object per line, or a CSV row under a header) names one sample: its id,
    its image file and its caption. Labels are the columns named ``label_<name>`` (stored as
    ``<name>``), or exactly the ``label_columns`` given; any other column is ignored (with a
    warning naming it), never taken as a label by accident. The format is described in
    ``docs/data.md``.

    The table is untrusted input: text must be valid UTF-8 without NUL characters or lone
    surrogates, and image paths must stay inside the dataset root (``image_dir``, else the
    table's folder) unless ``allow_outside_root``. Errors name the file and the line a record
    starts on.

    Parameters
    ----------
    annotations : str or path-like
        A ``.jsonl`` or ``.csv`` file.
    image_dir : str or path-like, default=None
        The dataset root, which relative image paths are resolved against; the annotation file's
        folder when None.
    id_column : str or None, default="id"
        Column holding the sample ids. None uses the image path as written in the table.
    image_column : str or None, default="image"
        Column holding the image paths. A table without that column (no CSV header, no JSONL
        record has it), or None, gives a captions-only dataset (text views only).
    caption_column : str, default="caption"
        Column holding the captions.
    label_columns : sequence of str, default=None
        Columns kept as labels, under their own names. None keeps the ``label_``-prefixed
        columns. CSV values become integers or floats when every value of the column parses as
        one, and stay strings otherwise.
    check_files : bool, default=True
        Check up front that every image file exists, so that a long extraction does not stop at
        the first missing file. Images are read only when a sample is used.
    allow_outside_root : bool, default=False
        Accept absolute image paths and paths leading outside the dataset root (through ``..``
        or symbolic links). Only for tables you trust.

    Returns
    -------
    PairedDataset
        Samples in table order; ``source`` is the annotation file's path.

    Raises
    ------
    ValueError
        For an unknown file type, bad UTF-8, a NUL or lone surrogate, a record without a
        required column, an image path outside the root, an empty caption, a duplicate id, or a
        missing image file (naming the samples and hinting at ``image_dir``); reading an
        unreadable image later raises ValueError naming its sample and file.

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
        rows, columns = read_jsonl(path)
    elif suffix == ".csv":
        rows, columns = read_csv(path)
    else:
        raise ValueError(
            f"{source}: expected a .jsonl or .csv annotations file; got suffix {path.suffix!r}."
        )
    if not rows:
        raise ValueError(f"{source}: the table has no rows.")
    present = set(columns)
    if image_column is not None and image_column not in present:
        logger.info("%s: no %r column; a captions-only dataset", source, image_column)
        image_column = None
    id_key = id_column if id_column is not None else image_column
    if id_key is None:
        raise ValueError(f"{source}: a captions-only table needs an id column.")
    required = [c for c in (id_column, image_column, caption_column) if c is not None]
    labels_from = _label_sources(columns, present, required, label_columns, source)
    for line, row in rows:
        absent = [c for c in [*required, *labels_from.values()] if row.get(c) is None]
        if absent:
            raise ValueError(
                f"{source}, line {line}: missing column(s) {absent}; the row has {sorted(row)}."
            )
    ids = [str(row[id_key]) for _, row in rows]
    labels = {
        name: _column([row[column] for _, row in rows], parse=suffix == ".csv")
        for name, column in labels_from.items()
    }
    captions = [str(row[caption_column]) for _, row in rows]
    if image_column is None:
        return PairedDataset(ids, captions, labels=labels, source=source)
    root = Path(image_dir) if image_dir is not None else path.parent
    paths = [
        contained_path(
            root,
            str(row[image_column]),
            f"{source}, line {line}",
            allow_outside_root=allow_outside_root,
        )
        for line, row in rows
    ]
    dataset = PairedDataset(
        ids, captions, file_loader(ids, paths, source), labels=labels, source=source
    )
    if check_files:
        where = "the table's folder" if image_dir is None else "image_dir"
        check_files_exist(
            ids,
            paths,
            source,
            hint=f" Image paths are resolved against {root} ({where}); if the images are "
            "elsewhere, pass image_dir (--image-dir on the command line).",
        )
    return dataset


def _label_sources(
    columns: Sequence[str],
    present: set[str],
    required: Sequence[str],
    label_columns: Sequence[str] | None,
    source: str,
) -> dict[str, str]:
    """Label name -> the column it comes from; warn about columns that are neither."""
    if label_columns is None:
        chosen = {
            c[len(LABEL_PREFIX) :]: c
            for c in columns
            if c.startswith(LABEL_PREFIX) and len(c) > len(LABEL_PREFIX)
        }
    else:
        chosen = {c: c for c in label_columns}
        unknown = [c for c in label_columns if c not in present]
        if unknown:
            raise ValueError(
                f"{source}: no label column(s) {unknown}; the table has {sorted(present)}."
            )
    ignored = sorted(present - set(required) - set(chosen.values()))
    if ignored:
        logger.warning(
            "%s: ignoring column(s) %s: labels are the %s* columns or those passed as "
            "label_columns (--labels)",
            source,
            ignored,
            LABEL_PREFIX,
        )
    return chosen


def _column(values: list[object], *, parse: bool) -> np.ndarray:
    """A label column; CSV strings become ints or floats when all of them parse as such."""
    if parse:
        for kind in (int, float):
            try:
                return np.array([kind(str(v)) for v in values])
            except ValueError:
                continue
    return np.array(values)

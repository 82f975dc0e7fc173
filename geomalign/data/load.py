"""One entry point for pairs files: a JSONL/CSV table or a COCO-captions JSON, by suffix."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from geomalign.data._pairs import PairedDataset
from geomalign.data.coco import load_coco_captions
from geomalign.data.folder import load_folder

__all__ = ["load_pairs"]


def load_pairs(
    path: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    captions: str = "first",
    label_columns: Sequence[str] | None = None,
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> PairedDataset:
    """Load a pairs file: a ``.jsonl``/``.csv`` table, or a COCO-captions ``.json``.

    Parameters
    ----------
    path : str or path-like
        The pairs file. A table is read by :func:`load_folder` (``label_columns`` applies), a
        ``.json`` file by :func:`load_coco_captions` (``captions`` applies).
    image_dir : str or path-like, default=None
        The dataset root: the table's folder when None; required for COCO.
    captions : {"first", "all"}, default="first"
        COCO: the first caption of each image, or one sample per caption.
    label_columns : sequence of str, default=None
        Table: the columns kept as labels (None: the ``label_*`` columns).
    check_files : bool, default=True
        Check up front that every image file exists.
    allow_outside_root : bool, default=False
        Accept image paths outside the dataset root (trusted files only).

    Returns
    -------
    PairedDataset

    Examples
    --------
    >>> pairs = load_pairs("pairs.jsonl")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        if image_dir is None:
            raise ValueError(
                f"{path}: a COCO-captions .json needs image_dir (--image-dir), the folder of "
                "its images."
            )
        return load_coco_captions(
            path,
            image_dir,
            captions=captions,
            check_files=check_files,
            allow_outside_root=allow_outside_root,
        )
    return load_folder(
        path,
        image_dir,
        label_columns=label_columns,
        check_files=check_files,
        allow_outside_root=allow_outside_root,
    )

"""Paired data from a COCO-captions annotation file and its image folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from geomalign.data._files import check_files_exist, contained_path, file_loader
from geomalign.data._pairs import PairedDataset
from geomalign.data._tables import check_text

__all__ = ["load_coco_captions"]

logger = logging.getLogger(__name__)


def load_coco_captions(
    annotations: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    captions: str = "first",
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> PairedDataset:
    """Load images and captions from a COCO-captions JSON file (e.g. ``captions_val2017.json``).

    Parameters
    ----------
    annotations : str or path-like
        The annotation file: ``{"images": [{"id", "file_name", ...}], "annotations": [{"id",
        "image_id", "caption"}, ...]}``.
    image_dir : str or path-like
        Folder holding the images named by ``file_name``.
    captions : {"first", "all"}, default="first"
        ``"first"``: one sample per image, with the image's first caption in file order, id
        ``str(image_id)``. ``"all"``: one sample per caption, id ``"{image_id}-{caption_id}"``
        (an image then appears in several samples).
    check_files : bool, default=True
        Check up front that every image file exists. Images are read only when a sample is used.
    allow_outside_root : bool, default=False
        Accept absolute ``file_name`` values and paths leading outside ``image_dir`` (through
        ``..`` or symbolic links); refused otherwise, since the file is untrusted input.

    Returns
    -------
    PairedDataset
        Samples ordered by the images' order in the file, then by caption order; label columns
        ``image_id`` and ``caption_id`` (integers). Captions are stripped of surrounding white
        space. Images without a caption are left out (and logged).

    Raises
    ------
    ValueError
        For a malformed file (bad UTF-8, NUL characters or lone surrogates included), a caption of
        an unknown image, an empty caption, a duplicate image or caption id, an image path outside
        ``image_dir``, or a missing image file (naming the image or caption).

    Examples
    --------
    >>> pairs = load_coco_captions("captions_val2017.json", "val2017")  # doctest: +SKIP
    >>> len(pairs)  # doctest: +SKIP
    5000
    """
    path = Path(annotations)
    source = str(path)
    if captions not in ("first", "all"):
        raise ValueError(f"captions must be 'first' or 'all'; got {captions!r}.")
    if not path.is_file():
        raise ValueError(f"annotations file {path} does not exist.")
    try:
        with path.open(encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc}).") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not valid UTF-8 (at byte {exc.start}).") from exc
    if not isinstance(content, dict) or not {"images", "annotations"} <= set(content):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(
            f"{source}: expected a COCO-captions object with 'images' and 'annotations'; "
            f"got {found}."
        )
    files = _image_files(content["images"], source)
    by_image: dict[int, list[tuple[int, str]]] = {image_id: [] for image_id in files}
    seen_captions: set[int] = set()
    if not isinstance(content["annotations"], list):
        raise ValueError(
            f"{source}: 'annotations' must be a list; got {type(content['annotations']).__name__}."
        )
    for position, ann in enumerate(content["annotations"]):
        if not isinstance(ann, dict) or not {"id", "image_id", "caption"} <= set(ann):
            raise ValueError(
                f"{source}: annotation #{position} needs 'id', 'image_id' and 'caption'; "
                f"got {ann!r}."
            )
        caption_id, image_id, text = int(ann["id"]), int(ann["image_id"]), str(ann["caption"])
        check_text(text, f"{source}: caption {caption_id} of image {image_id}")
        if caption_id in seen_captions:
            raise ValueError(f"{source}: duplicate caption id {caption_id}.")
        seen_captions.add(caption_id)
        if image_id not in by_image:
            raise ValueError(
                f"{source}: caption {caption_id} refers to image {image_id}, which 'images' lacks."
            )
        if not text.strip():
            raise ValueError(f"{source}: caption {caption_id} of image {image_id} is empty.")
        by_image[image_id].append((caption_id, text.strip()))
    uncaptioned = [image_id for image_id, caps in by_image.items() if not caps]
    if uncaptioned:
        logger.info("%s: left out %d images without a caption", source, len(uncaptioned))
    rows = [
        (image_id, caption_id, text)
        for image_id, caps in by_image.items()
        for caption_id, text in (caps[:1] if captions == "first" else caps)
    ]
    if not rows:
        raise ValueError(f"{source}: no image has a caption.")
    if captions == "first":
        ids = [str(image_id) for image_id, _, _ in rows]
    else:
        ids = [f"{image_id}-{caption_id}" for image_id, caption_id, _ in rows]
    root = Path(image_dir)
    resolved = {
        image_id: contained_path(
            root,
            check_text(files[image_id], f"{source}: file_name of image {image_id}"),
            f"{source}: image {image_id}",
            allow_outside_root=allow_outside_root,
        )
        for image_id in dict.fromkeys(image_id for image_id, _, _ in rows)
    }
    paths = [resolved[image_id] for image_id, _, _ in rows]
    if check_files:
        check_files_exist(ids, paths, source)
    return PairedDataset(
        ids,
        [text for _, _, text in rows],
        file_loader(ids, paths, source),
        labels={
            "image_id": np.array([image_id for image_id, _, _ in rows], dtype=np.int64),
            "caption_id": np.array([caption_id for _, caption_id, _ in rows], dtype=np.int64),
        },
        source=source,
    )


def _image_files(images: object, source: str) -> dict[int, str]:
    if not isinstance(images, list):
        raise ValueError(f"{source}: 'images' must be a list; got {type(images).__name__}.")
    files: dict[int, str] = {}
    for position, image in enumerate(images):
        if not isinstance(image, dict) or not {"id", "file_name"} <= set(image):
            raise ValueError(
                f"{source}: image #{position} needs 'id' and 'file_name'; got {image!r}."
            )
        image_id = int(image["id"])
        if image_id in files:
            raise ValueError(f"{source}: duplicate image id {image_id}.")
        files[image_id] = str(image["file_name"])
    return files

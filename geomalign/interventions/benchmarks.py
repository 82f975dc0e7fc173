"""Benchmark tasks from the user's files: open-ended QA, multiple choice, captioning.

A :class:`Benchmark` holds the items of one task as data (questions, reference answers, options,
reference captions, images), independent of any model; :func:`~geomalign.interventions.
prompted.prompt_task` turns it into a scorable task for a model's processor. Loaders:

- :func:`load_benchmark`: a JSONL or CSV table, one item per row (the columns below);
- :func:`benchmark_from_hf_dataset`: a ``datasets.Dataset`` with the same columns;
- :func:`~geomalign.interventions.benchmark_layouts.load_vqav2` and
  :func:`~geomalign.interventions.benchmark_layouts.load_coco_qa`: the VQAv2 and COCO-QA layouts.

Columns of a table row (JSON lists, or ``|``-separated strings in CSV):

- ``id`` (unique); ``image``: image file, relative to ``image_dir`` -- a table without an
  ``image`` column is a text-only task, asked through the same model without an image;
- open-ended QA: ``question`` and ``answers`` (one or more references) or ``answer``;
- multiple choice: ``question``, ``options`` (two or more) and ``answer`` (the correct option's
  0-based index, or its text);
- captioning: ``captions`` (one or more references) or ``caption``;
- optional ``group``: the cluster of the item for confidence intervals (default the image, else
  the item itself).

Every row is checked; a bad row raises ValueError naming the file, line and id, and no row is
dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from geomalign.data._files import check_files_exist, contained_path, file_loader
from geomalign.data._tables import read_csv, read_jsonl

__all__ = ["KINDS", "Benchmark", "benchmark_from_hf_dataset", "load_benchmark"]

#: Kinds of benchmark task.
KINDS = ("qa", "choice", "caption")


@dataclass(frozen=True)
class Benchmark:
    """The items of one benchmark task, as data.

    Parameters
    ----------
    name : str
        Task name in result tables.
    kind : {"qa", "choice", "caption"}
        Open-ended question answering, multiple choice, or captioning.
    ids : tuple of str
        Unique item ids.
    questions : tuple of str
        One question per item (empty strings for captioning).
    references : tuple of tuple of str
        Reference answers (``"qa"``), options (``"choice"``) or reference captions
        (``"caption"``) of each item, at least one each (two options for ``"choice"``).
    answer_index : tuple of int, optional
        The correct option of each item (``"choice"`` only).
    groups : tuple of str
        Cluster of each item (its image for image tasks): intervals resample whole clusters.
    load_image : callable, optional
        ``load_image(i)`` returns item ``i``'s image as an RGB ``PIL.Image``; None for a
        text-only task.
    source : str
        Where the items came from, for messages.
    """

    name: str
    kind: Literal["qa", "choice", "caption"]
    ids: tuple[str, ...]
    questions: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]
    groups: tuple[str, ...]
    answer_index: tuple[int, ...] | None = None
    load_image: Callable[[int], Image.Image] | None = None
    source: str = "benchmark"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}; got {self.kind!r}.")
        n = len(self.ids)
        if n == 0:
            raise ValueError(f"{self.source}: the task has no items.")
        for field in ("questions", "references", "groups"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{self.source}: {field} must hold {n} entries.")
        duplicates = sorted({i for i in self.ids if self.ids.count(i) > 1})[:5]
        if duplicates:
            raise ValueError(f"{self.source}: duplicate item ids {duplicates}.")
        least = 2 if self.kind == "choice" else 1
        for item, refs in zip(self.ids, self.references, strict=True):
            if len(refs) < least or any(not r.strip() for r in refs):
                what = "options" if self.kind == "choice" else "references"
                raise ValueError(
                    f"{self.source}: item {item!r}: needs at least {least} non-empty {what}; "
                    f"got {list(refs)}."
                )
        if (self.kind == "choice") != (self.answer_index is not None):
            raise ValueError(f"{self.source}: answer_index is given for (and only for) 'choice'.")
        if self.answer_index is not None:
            for item, index, refs in zip(self.ids, self.answer_index, self.references, strict=True):
                if not 0 <= index < len(refs):
                    raise ValueError(
                        f"{self.source}: item {item!r}: answer index {index} is not one of its "
                        f"{len(refs)} options."
                    )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_images(self) -> bool:
        """Whether items show an image (False: a text-only task)."""
        return self.load_image is not None

    def image(self, i: int) -> Image.Image:
        """Item ``i``'s image."""
        if self.load_image is None:
            raise ValueError(f"{self.source}: a text-only task has no images.")
        return self.load_image(i)

    def subset(self, indices: Sequence[int]) -> Benchmark:
        """The items at ``indices``, in that order."""
        picked = [int(i) for i in indices]
        loader = self.load_image
        return replace(
            self,
            ids=tuple(self.ids[i] for i in picked),
            questions=tuple(self.questions[i] for i in picked),
            references=tuple(self.references[i] for i in picked),
            groups=tuple(self.groups[i] for i in picked),
            answer_index=None
            if self.answer_index is None
            else tuple(self.answer_index[i] for i in picked),
            load_image=None if loader is None else (lambda i: loader(picked[i])),
        )

    def sample(self, n: int | None, *, random_state: int | None = None) -> Benchmark:
        """The first ``n`` items, or ``n`` items drawn without replacement (in file order) with
        seed ``random_state``; all items when ``n`` is None or at least the task's size."""
        if n is None or n >= len(self):
            return self
        if isinstance(n, bool) or int(n) < 1:
            raise ValueError(f"the number of items must be a positive int; got {n!r}.")
        if random_state is None:
            return self.subset(range(int(n)))
        rng = np.random.default_rng(random_state)
        return self.subset(np.sort(rng.choice(len(self), size=int(n), replace=False)).tolist())


def _as_list(value: object, *, csv: bool) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if csv and isinstance(value, str):
        return [v.strip() for v in value.split("|")]
    return [str(value)]


def _kind_of(columns: set[str]) -> str:
    if "options" in columns:
        return "choice"
    if "question" in columns:
        return "qa"
    if columns & {"captions", "caption"}:
        return "caption"
    raise ValueError("needs 'question' (QA), 'question' + 'options' or 'captions' columns")


def _answer_index(value: object, options: list[str]) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if text in options:
        return options.index(text)
    if text.lstrip("-").isdigit():
        return int(text)
    raise ValueError(f"answer {value!r} is neither an option index nor one of the options")


def _parse_rows(
    rows: Sequence[tuple[int, dict[str, Any]]], source: str, *, csv: bool, kind: str | None
) -> tuple[str, dict[str, list[Any]]]:
    """Check and split table rows into columns; errors name the line and item id."""
    columns = set().union(*(row for _, row in rows))
    try:
        found = kind or _kind_of(columns)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}; the table has {sorted(columns)}.") from None
    kind = found
    text_only = "image" not in columns
    out: dict[str, list[Any]] = {k: [] for k in ("ids", "questions", "refs", "answer", "images")}
    out["groups"] = []
    keys = {"qa": ("answers", "answer"), "choice": ("options",), "caption": ("captions", "caption")}
    for line, row in rows:
        item = row.get("id")
        where = f"{source}, line {line}" + (f" (id {item!r})" if item is not None else "")
        needed = (
            ["id"] + (["question"] if kind != "caption" else []) + ([] if text_only else ["image"])
        )
        absent = [c for c in needed if row.get(c) in (None, "")]
        ref_key = next((k for k in keys[found] if row.get(k) not in (None, "", [])), None)
        if ref_key is None:
            absent.append(" or ".join(keys[found]))
        if kind == "choice" and row.get("answer") in (None, ""):
            absent.append("answer")
        if absent:
            raise ValueError(f"{where}: missing {absent}; the row has {sorted(row)}.")
        assert ref_key is not None  # else it is in absent
        refs = _as_list(row[ref_key], csv=csv)
        if not refs or any(not r.strip() for r in refs):
            raise ValueError(f"{where}: empty entry in {ref_key!r}: {refs}.")
        if kind == "choice":
            try:
                index = _answer_index(row["answer"], refs)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}.") from None
            if not 0 <= index < len(refs):
                raise ValueError(
                    f"{where}: answer index {index} is not one of {len(refs)} options."
                )
            out["answer"].append(index)
        out["ids"].append(str(item))
        out["questions"].append(str(row.get("question", "")))
        out["refs"].append(tuple(refs))
        image = None if text_only else str(row["image"])
        out["images"].append(image)
        group = row.get("group")
        out["groups"].append(str(group) if group not in (None, "") else (image or str(item)))
    return kind, out


def _benchmark(
    name: str, kind: str, columns: dict[str, list[Any]], source: str, loader: Any
) -> Benchmark:
    return Benchmark(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        ids=tuple(columns["ids"]),
        questions=tuple(columns["questions"]),
        references=tuple(columns["refs"]),
        groups=tuple(columns["groups"]),
        answer_index=tuple(columns["answer"]) if kind == "choice" else None,
        load_image=loader,
        source=source,
    )


def load_benchmark(
    path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    kind: Literal["qa", "choice", "caption"] | None = None,
    name: str | None = None,
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> Benchmark:
    """Load a benchmark task from a JSONL or CSV table (columns in the module docstring).

    Parameters
    ----------
    path : path-like
        A ``.jsonl`` or ``.csv`` file, one item per row.
    image_dir : path-like, optional
        Folder that relative image paths are resolved against; default the table's folder.
    kind : {"qa", "choice", "caption"}, optional
        Default from the columns: ``options`` -> multiple choice, ``question`` -> QA, else
        captioning.
    name : str, optional
        Task name; default the file's stem.
    check_files : bool, default=True
        Check up front that every image file exists.
    allow_outside_root : bool, default=False
        Accept image paths that are absolute or lead outside the image folder (refused by
        default, as for paired data).

    Returns
    -------
    Benchmark

    Raises
    ------
    ValueError
        For an unknown file type, a row without a required column, an empty answer, option or
        caption, a bad answer index, a duplicate id, or missing image files (naming line and id).

    Examples
    --------
    >>> task = load_benchmark("vqa.jsonl", image_dir="images/")  # doctest: +SKIP
    >>> task.kind, len(task)  # doctest: +SKIP
    ('qa', 500)
    """
    file = Path(path)
    source = str(file)
    if not file.is_file():
        raise ValueError(f"task file {file} does not exist.")
    suffix = file.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(f"{source}: expected a .jsonl or .csv task file; got {file.suffix!r}.")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}; got {kind!r}.")
    rows, _ = (read_jsonl if suffix == ".jsonl" else read_csv)(file)
    if not rows:
        raise ValueError(f"{source}: the table has no rows.")
    kind_found, columns = _parse_rows(rows, source, csv=suffix == ".csv", kind=kind)
    loader = None
    if columns["images"][0] is not None:
        root = Path(image_dir) if image_dir is not None else file.parent
        paths = [
            contained_path(root, p, f"{source}, id {i!r}", allow_outside_root=allow_outside_root)
            for i, p in zip(columns["ids"], columns["images"], strict=True)
        ]
        if check_files:
            check_files_exist(columns["ids"], paths, source)
        loader = file_loader(columns["ids"], paths, source)
    return _benchmark(name or file.stem, kind_found, columns, source, loader)


def benchmark_from_hf_dataset(
    dataset: Any,
    *,
    name: str,
    kind: Literal["qa", "choice", "caption"] | None = None,
    columns: dict[str, str] | None = None,
) -> Benchmark:
    """A benchmark task from a ``datasets.Dataset`` whose columns are those of a table row.

    Parameters
    ----------
    dataset : datasets.Dataset
        One split, map-style; the ``image`` column (if any) holds decoded images, undecoded
        ``{"bytes", "path"}`` dicts or paths.
    name : str
        Task name.
    kind : {"qa", "choice", "caption"}, optional
        Default from the columns, as in :func:`load_benchmark`.
    columns : dict of str to str, optional
        Renames, e.g. ``{"question_id": "id", "multiple_choice_answer": "answer"}``.

    Returns
    -------
    Benchmark
        Images are decoded only when an item is used; row ``k`` is "line" ``k`` in messages.
    """
    from geomalign.data.hf_datasets import _as_rgb  # the image decoding of paired HF data

    renames = dict(columns or {})
    names = list(dataset.column_names)
    unknown = sorted(set(renames) - set(names))
    if unknown:
        raise ValueError(f"columns to rename {unknown} are not in the dataset ({names}).")
    source = f"datasets.Dataset({getattr(dataset.info, 'dataset_name', None) or name})"
    kept = [c for c in names if renames.get(c, c) != "image"]
    table = dataset.select_columns(kept).to_dict()
    rows = [(k, {renames.get(c, c): table[c][k] for c in kept}) for k in range(len(dataset))]
    image_column = next((c for c in names if renames.get(c, c) == "image"), None)
    if image_column is not None:
        for _, row in rows:
            row["image"] = "<dataset>"
    kind_found, parsed = _parse_rows(rows, source, csv=False, kind=kind)
    loader = None
    if image_column is not None:
        ids = parsed["ids"]

        def loader(i: int) -> Image.Image:
            return _as_rgb(dataset[i][image_column], ids[i], source)

        parsed["groups"] = [
            g if g != "<dataset>" else ids[k] for k, g in enumerate(parsed["groups"])
        ]
    return _benchmark(name, kind_found, parsed, source, loader)

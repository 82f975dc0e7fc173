"""Benchmark tasks in the file layouts the VQAv2 and COCO-QA releases use.

- VQAv2 (Goyal et al. 2017): a questions JSON (``{"data_subtype": "val2014", "questions":
  [{"question_id", "image_id", "question"}, ...]}``) and an annotations JSON (``{"annotations":
  [{"question_id", "image_id", "answers": [{"answer": ...} x 10], ...}]}``), COCO images named
  ``COCO_<subtype>_<image id, 12 digits>.jpg``;
- COCO-QA (Ren et al. 2015): a split folder holding the parallel line files ``questions.txt``,
  ``answers.txt``, ``img_ids.txt`` (and ``types.txt``: 0 object, 1 number, 2 colour, 3
  location), COCO 2014 images.

Images are found in ``image_dir`` as ``image_pattern`` formatted with the ``image_id``, or, by
default, under the first of the COCO names (``COCO_val2014_...``, ``COCO_train2014_...``, the
2017 name ``<12 digits>.jpg``) that exists. Items about one image form one cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from geomalign.data._files import check_files_exist, file_loader
from geomalign.interventions.benchmarks import Benchmark, load_benchmark

__all__ = ["COCO_QA_TYPES", "load_coco_qa", "load_task", "load_vqav2"]

#: Question types of COCO-QA's ``types.txt``.
COCO_QA_TYPES = ("object", "number", "colour", "location")

_COCO_NAMES = (
    "COCO_val2014_{image_id:012d}.jpg",
    "COCO_train2014_{image_id:012d}.jpg",
    "{image_id:012d}.jpg",
)


def _image_paths(image_ids: Sequence[int], image_dir: Path, patterns: Sequence[str]) -> list[Path]:
    paths = []
    for image_id in image_ids:
        candidates = [image_dir / p.format(image_id=image_id) for p in patterns]
        paths.append(next((c for c in candidates if c.is_file()), candidates[0]))
    return paths


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{what} file {path} does not exist.")
    try:
        with path.open(encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}).") from exc
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object; got {type(content).__name__}.")
    return content


def _entries(content: dict, key: str, fields: Sequence[str], path: Path) -> list[dict]:
    entries = content.get(key)
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty {key!r} list; got keys {sorted(content)}.")
    for k, entry in enumerate(entries):
        absent = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if absent:
            qid = entry.get("question_id") if isinstance(entry, dict) else None
            raise ValueError(f"{path}: {key}[{k}] (question_id {qid!r}) lacks {absent}.")
    return entries


def load_vqav2(
    questions: str | os.PathLike[str],
    annotations: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    image_pattern: str | None = None,
    name: str = "vqav2",
    check_files: bool = True,
) -> Benchmark:
    """Open-ended QA items from the VQAv2 questions and annotations files.

    Parameters
    ----------
    questions, annotations : path-like
        The ``v2_OpenEnded_mscoco_<subtype>_questions.json`` and
        ``v2_mscoco_<subtype>_annotations.json`` files (or the same layout for another set).
    image_dir : path-like
        Folder of the COCO images.
    image_pattern : str, optional
        File name with ``{image_id}``, e.g. ``"COCO_val2014_{image_id:012d}.jpg"``; default the
        COCO names of the questions file's ``data_subtype``, then the others.
    name : str, default="vqav2"
        Task name.
    check_files : bool, default=True
        Check up front that every image exists.

    Returns
    -------
    Benchmark
        ``kind="qa"``; item id = question id; references = the 10 human answers; items are
        clustered by image. Score them with ``metric="vqa"``.

    Raises
    ------
    ValueError
        For a missing field (naming the entry and question id), a question without annotation
        or the reverse, or missing images.
    """
    qpath, apath = Path(questions), Path(annotations)
    qcontent = _read_json(qpath, "questions")
    qs = _entries(qcontent, "questions", ("question_id", "image_id", "question"), qpath)
    content = _read_json(apath, "annotations")
    anns = _entries(content, "annotations", ("question_id", "answers"), apath)
    answers: dict[object, tuple[str, ...]] = {}
    for k, ann in enumerate(anns):
        given = ann["answers"]
        texts = [a.get("answer") if isinstance(a, dict) else a for a in given or []]
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(
                f"{apath}: annotations[{k}] (question_id {ann['question_id']!r}) has no usable "
                f"answers: {given!r}."
            )
        answers[ann["question_id"]] = tuple(str(t) for t in texts)
    unanswered = [q["question_id"] for q in qs if q["question_id"] not in answers]
    extra = sorted(set(answers) - {q["question_id"] for q in qs}, key=str)
    if unanswered or extra:
        raise ValueError(
            f"{qpath} and {apath} do not match: questions without annotation "
            f"{unanswered[:5]} ({len(unanswered)}), annotations without question "
            f"{extra[:5]} ({len(extra)})."
        )
    subtype = qcontent.get("data_subtype")
    patterns = [image_pattern] if image_pattern else list(_COCO_NAMES)
    if not image_pattern and isinstance(subtype, str):
        patterns.insert(0, f"COCO_{subtype}_{{image_id:012d}}.jpg")
    ids = [str(q["question_id"]) for q in qs]
    image_ids = [int(q["image_id"]) for q in qs]
    return _image_benchmark(
        name,
        ids,
        [str(q["question"]) for q in qs],
        [answers[q["question_id"]] for q in qs],
        image_ids,
        Path(image_dir),
        patterns,
        source=f"{qpath} + {apath}",
        check_files=check_files,
    )


def load_coco_qa(
    folder: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    image_pattern: str | None = None,
    types: Sequence[str] | None = None,
    name: str = "coco-qa",
    check_files: bool = True,
) -> Benchmark:
    """Open-ended QA items from a COCO-QA split folder.

    Parameters
    ----------
    folder : path-like
        The split folder (``train/`` or ``test/``) with ``questions.txt``, ``answers.txt``,
        ``img_ids.txt`` and optionally ``types.txt``.
    image_dir : path-like
        Folder of the COCO 2014 images.
    image_pattern : str, optional
        File name with ``{image_id}``; default the COCO names (see the module docstring).
    types : sequence of {"object", "number", "colour", "location"}, optional
        Keep only questions of these types (needs ``types.txt``).
    name : str, default="coco-qa"
        Task name.
    check_files : bool, default=True
        Check up front that every image exists.

    Returns
    -------
    Benchmark
        ``kind="qa"``, one reference answer per question, item id ``"<image id>/q<line>"``,
        clustered by image. COCO-QA is scored by exact match (``metric="exact"``).
    """
    root = Path(folder)
    lines = {}
    for part in ("questions", "answers", "img_ids", "types"):
        path = root / f"{part}.txt"
        if not path.is_file():
            if part == "types" and types is None:
                continue
            raise ValueError(f"COCO-QA folder {root} has no {path.name}.")
        lines[part] = path.read_text(encoding="utf-8").splitlines()
    counts = {part: len(v) for part, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"{root}: the line files differ in length: {counts}.")
    keep = []
    for line, (question, answer, image) in enumerate(
        zip(lines["questions"], lines["answers"], lines["img_ids"], strict=True), start=1
    ):
        bad = [n for n, v in (("question", question), ("answer", answer)) if not v.strip()]
        if bad or not image.strip().isdigit():
            raise ValueError(
                f"{root}, line {line}: empty {bad or 'image id'} (image id {image.strip()!r})."
            )
        if types is not None:
            code = lines["types"][line - 1].strip()
            unknown = sorted(set(types) - set(COCO_QA_TYPES))
            if unknown:
                raise ValueError(f"types must be among {list(COCO_QA_TYPES)}; got {unknown}.")
            if not code.isdigit() or int(code) >= len(COCO_QA_TYPES):
                raise ValueError(f"{root}/types.txt, line {line}: unknown type {code!r}.")
            if COCO_QA_TYPES[int(code)] not in types:
                continue
        keep.append((line, question.strip(), answer.strip(), int(image)))
    if not keep:
        raise ValueError(f"{root}: no questions (of types {list(types or [])}).")
    patterns = [image_pattern] if image_pattern else list(_COCO_NAMES)
    return _image_benchmark(
        name,
        [f"{image}/q{line}" for line, _, _, image in keep],
        [q for _, q, _, _ in keep],
        [(a,) for _, _, a, _ in keep],
        [image for *_, image in keep],
        Path(image_dir),
        patterns,
        source=str(root),
        check_files=check_files,
    )


def _image_benchmark(
    name: str,
    ids: list[str],
    questions: list[str],
    references: list[tuple[str, ...]],
    image_ids: list[int],
    image_dir: Path,
    patterns: Sequence[str],
    *,
    source: str,
    check_files: bool,
) -> Benchmark:
    paths = _image_paths(image_ids, image_dir, patterns)
    if check_files:
        check_files_exist(ids, paths, source)
    return Benchmark(
        name=name,
        kind="qa",
        ids=tuple(ids),
        questions=tuple(questions),
        references=tuple(references),
        groups=tuple(f"image {i}" for i in image_ids),
        load_image=file_loader(ids, paths, source),
        source=source,
    )


def load_task(
    path: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    annotations: str | os.PathLike[str] | None = None,
    kind: str | None = None,
) -> Benchmark:
    """Load a benchmark task, choosing the loader by what ``path`` is.

    - a folder: a COCO-QA split (:func:`load_coco_qa`, needs ``image_dir``);
    - a ``.json`` file: VQAv2 questions (:func:`load_vqav2`, needs ``annotations`` and
      ``image_dir``);
    - a ``.jsonl`` or ``.csv`` table: :func:`~geomalign.interventions.load_benchmark` (``kind``
      from the columns unless given).

    Returns
    -------
    Benchmark
        Named after the file (or folder).
    """
    where = Path(path)
    if kind is not None and where.suffix.lower() not in (".jsonl", ".csv"):
        raise ValueError(f"{where}: kind applies to .jsonl/.csv tables only (the layout is QA).")
    if where.is_dir():
        if image_dir is None:
            raise ValueError(f"{where}: a COCO-QA folder needs image_dir (--image-dir).")
        return load_coco_qa(where, image_dir, name=f"{where.parent.name}-{where.name}")
    if where.suffix.lower() == ".json":
        if annotations is None or image_dir is None:
            raise ValueError(
                f"{where}: a VQAv2 questions file needs annotations (--annotations) and "
                "image_dir (--image-dir)."
            )
        return load_vqav2(where, annotations, image_dir, name=where.stem)
    return load_benchmark(where, image_dir, kind=kind)  # type: ignore[arg-type]

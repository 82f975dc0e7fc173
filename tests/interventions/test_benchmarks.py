"""Benchmark task loaders: table rows, the VQAv2 and COCO-QA layouts, datasets; bad rows named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from geomalign.interventions import (
    benchmark_from_hf_dataset,
    load_benchmark,
    load_coco_qa,
    load_vqav2,
)


def _image(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_open_qa_jsonl_and_csv(tmp_path):
    for name in ("a.png", "b.png"):
        _image(tmp_path / name)
    rows = [
        {"id": "q1", "image": "a.png", "question": "What colour?", "answers": ["red", "red"]},
        {"id": "q2", "image": "a.png", "question": "How many?", "answer": "2"},
        {"id": "q3", "image": "b.png", "question": "Shape?", "answers": ["circle"], "group": "g"},
    ]
    task = load_benchmark(_jsonl(tmp_path / "qa.jsonl", rows))
    assert (task.kind, task.name, len(task)) == ("qa", "qa", 3)
    assert task.references == (("red", "red"), ("2",), ("circle",))
    assert task.groups == ("a.png", "a.png", "g")
    assert task.image(2).size == (16, 16)
    csv = tmp_path / "qa.csv"
    csv.write_text("id,image,question,answers\nq1,a.png,What colour?,red|dark red\n")
    assert load_benchmark(csv).references == (("red", "dark red"),)
    sample = task.sample(2, random_state=0)
    assert len(sample) == 2
    assert set(sample.ids) <= set(task.ids)
    assert sample.ids == task.sample(2, random_state=0).ids
    assert task.sample(2).ids == ("q1", "q2")


def test_text_only_choice_and_caption_tables(tmp_path):
    text = load_benchmark(
        _jsonl(tmp_path / "text.jsonl", [{"id": "t1", "question": "2+2?", "answer": "4"}])
    )
    assert not text.has_images
    assert text.groups == ("t1",)
    rows = [
        {"id": "c1", "question": "Sky?", "options": ["blue", "green"], "answer": 0},
        {"id": "c2", "question": "Grass?", "options": ["blue", "green"], "answer": "green"},
    ]
    choice = load_benchmark(_jsonl(tmp_path / "mc.jsonl", rows))
    assert choice.kind == "choice"
    assert choice.answer_index == (0, 1)
    _image(tmp_path / "a.png")
    captions = load_benchmark(
        _jsonl(tmp_path / "cap.jsonl", [{"id": "i1", "image": "a.png", "captions": ["x", "y"]}])
    )
    assert captions.kind == "caption"
    assert captions.references == (("x", "y"),)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": "q1", "question": "a?", "answer": "x"}, {"id": "q2", "question": "b?"}],
         r"line 2 \(id 'q2'\): missing \['answers or answer'\]"),
        ([{"id": "q1", "question": "a?", "answers": ["x", " "]}], r"line 1 \(id 'q1'\): empty"),
        ([{"id": "q1", "question": "a?", "answer": "x"}] * 2, r"duplicate item ids \['q1'\]"),
        ([{"id": "c", "question": "a?", "options": ["x", "y"], "answer": 2}],
         r"line 1 \(id 'c'\): answer index 2"),
        ([{"id": "c", "question": "a?", "options": ["x", "y"], "answer": "z"}],
         "neither an option index nor one of the options"),
        ([{"id": "c", "question": "a?", "options": ["x"], "answer": 0}], "at least 2"),
        ([{"id": "q1", "image": "none.png", "question": "a?", "answer": "x"}],
         r"1 of 1 image files do not exist: sample 'q1'"),
        ([{"id": "q1", "image": "a.png", "question": "a?", "answer": "x"},
          {"id": "q2", "question": "b?", "answer": "y"}],
         r"line 2 \(id 'q2'\): missing \['image'\]"),
        ([{"id": "q1", "text": "a"}], "needs 'question'"),
    ],
)  # fmt: skip
def test_bad_rows_are_named(tmp_path, rows, message):
    _image(tmp_path / "a.png")
    with pytest.raises(ValueError, match=message):
        load_benchmark(_jsonl(tmp_path / "t.jsonl", rows))


def test_vqav2_layout(tmp_path):
    for image_id in (42, 7):
        _image(tmp_path / f"COCO_val2014_{image_id:012d}.jpg")
    questions = {
        "data_subtype": "val2014",
        "questions": [
            {"question_id": 420, "image_id": 42, "question": "What is it?"},
            {"question_id": 421, "image_id": 42, "question": "How many?"},
            {"question_id": 70, "image_id": 7, "question": "Colour?"},
        ],
    }
    answers = [["cat"] * 10, ["2"] * 3 + ["3"] * 7, ["red"] * 10]
    annotations = {
        "annotations": [
            {"question_id": q["question_id"], "image_id": q["image_id"],
             "answers": [{"answer": a, "answer_id": k} for k, a in enumerate(ans)]}
            for q, ans in zip(questions["questions"], answers, strict=True)
        ]
    }  # fmt: skip
    qpath, apath = tmp_path / "q.json", tmp_path / "a.json"
    qpath.write_text(json.dumps(questions))
    apath.write_text(json.dumps(annotations))
    task = load_vqav2(qpath, apath, tmp_path)
    assert task.ids == ("420", "421", "70")
    assert len(task.references[1]) == 10
    assert task.groups == ("image 42", "image 42", "image 7")
    assert task.image(0).size == (16, 16)
    with pytest.raises(ValueError, match="image files do not exist"):
        load_vqav2(qpath, apath, tmp_path, image_pattern="{image_id}.png")
    annotations["annotations"].pop()
    apath.write_text(json.dumps(annotations))
    with pytest.raises(ValueError, match=r"questions without annotation \[70\]"):
        load_vqav2(qpath, apath, tmp_path)
    annotations["annotations"][0]["answers"] = []
    apath.write_text(json.dumps(annotations))
    with pytest.raises(ValueError, match=r"annotations\[0\] \(question_id 420\) has no usable"):
        load_vqav2(qpath, apath, tmp_path)


def test_coco_qa_layout(tmp_path):
    split = tmp_path / "test"
    split.mkdir()
    (split / "questions.txt").write_text("what is on the table\nhow many dogs are there\n")
    (split / "answers.txt").write_text("cup\ntwo\n")
    (split / "img_ids.txt").write_text("42\n7\n")
    (split / "types.txt").write_text("0\n1\n")
    for image_id in (42, 7):
        _image(tmp_path / f"COCO_val2014_{image_id:012d}.jpg")
    task = load_coco_qa(split, tmp_path)
    assert task.ids == ("42/q1", "7/q2")
    assert task.references == (("cup",), ("two",))
    assert load_coco_qa(split, tmp_path, types=["number"]).ids == ("7/q2",)
    (split / "answers.txt").write_text("cup\n")
    with pytest.raises(ValueError, match="differ in length"):
        load_coco_qa(split, tmp_path)


def test_hf_dataset():
    datasets = pytest.importorskip("datasets")
    images = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    ds = datasets.Dataset.from_dict(
        {"qid": ["a", "b"], "img": images, "question": ["x?", "y?"], "answer": ["1", "2"]}
    )
    task = benchmark_from_hf_dataset(ds, name="hf", columns={"qid": "id", "img": "image"})
    assert task.kind == "qa"
    assert task.ids == ("a", "b")
    assert task.groups == ("a", "b")
    assert task.image(1).getpixel((0, 0)) == (0, 0, 255)
    with pytest.raises(ValueError, match="not in the dataset"):
        benchmark_from_hf_dataset(ds, name="hf", columns={"nope": "id"})

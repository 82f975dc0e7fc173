"""`geomalign intervene curves --task ...` as a new user runs it: a VQAv2-layout QA task and a
multiple-choice table on a saved tiny LLaVA pair, and the testbed's held-out benchmarks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tiny_models import TINY_TESTBED
from PIL import Image

from geomalign.interventions import held_out_benchmarks
from geomalign.testbed import TestbedConfig, build_testbed

from .conftest import N_LAYERS, run_intervene, tiny_llava, tiny_processor

WORDS = ["red", "green", "blue", "circle", "square", "triangle"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    processor = tiny_processor()
    for name, seed in (("base", 1), ("tuned", 2)):
        tiny_llava(seed).save_pretrained(root / name)
        processor.save_pretrained(root / name)
    rng = np.random.default_rng(0)
    for image_id in range(3):
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"COCO_val2014_{image_id:012d}.jpg")
    return root


def _curves(pair, task_args, out, analyses="transplant-cumulative,knockout"):
    argv = [
        "intervene", "curves", "--base", str(pair / "base"), "--tuned", str(pair / "tuned"),
        *task_args, "--image-dir", str(pair), "--analyses", analyses, "--resamples", "30",
        "--permutations", "30", "--max-new-tokens", "3", "--batch-size", "4",
    ]  # fmt: skip
    table, _ = run_intervene(argv, out, "effects")
    return table


def test_vqav2_layout_gives_transplant_and_knockout_curves(pair, tmp_path):
    rng = np.random.default_rng(1)
    questions = [
        {"question_id": 10 * i + k, "image_id": i, "question": f"what {WORDS[k]} ?"}
        for i in range(3)
        for k in range(2)
    ]
    annotations = [
        {"question_id": q["question_id"], "answers": [{"answer": a} for a in rng.choice(WORDS, 10)]}
        for q in questions
    ]
    (pair / "q.json").write_text(json.dumps({"data_subtype": "val2014", "questions": questions}))
    (pair / "a.json").write_text(json.dumps({"annotations": annotations}))
    task = ["--task", str(pair / "q.json"), "--annotations", str(pair / "a.json")]
    table = _curves(pair, task, tmp_path / "vqa")
    assert table.unique("analysis") == ["transplant-cumulative", "visual-knockout"]
    assert table.unique("measure") == ["q-vqa"]
    values = table.select(analysis="transplant-cumulative", statistic="value")
    assert len(values) == N_LAYERS + 1
    for row in values:
        assert row.ci_low <= row.value <= row.ci_high
        assert "6 item groups" not in row.notes
        assert "3 item groups" in row.notes
    references = table.select(statistic="reference", analysis="transplant-cumulative")
    assert values[0].value == references[0].value
    assert values[-1].value == references[1].value
    assert "prompt: template 'USER: {image}" in references[0].notes


def test_multiple_choice_table_with_a_seeded_subsample(pair, tmp_path):
    rows = [
        {
            "id": f"m{k}",
            "image": f"COCO_val2014_{k % 3:012d}.jpg",
            "question": f"which {WORDS[k % 6]} ?",
            "options": WORDS[:3],
            "answer": k % 3,
        }
        for k in range(8)
    ]
    path = pair / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = ["--task", str(path), "--limit", "5", "--subsample", "--seed", "3"]
    table = _curves(pair, task, tmp_path / "mc", analyses="transplant-reverse,knockout")
    assert table.unique("measure") == ["mc-choice-norm"]
    assert {r.n_samples for r in table} == {5}
    reverse = table.select(analysis="transplant-reverse", statistic="value")
    assert [r.layer for r in reverse] == [None, 4, 3, 2, 1]


def test_held_out_benchmarks_of_the_testbed(tmp_path):
    built = build_testbed(TINY_TESTBED, cache_dir=tmp_path)
    tasks = held_out_benchmarks(built, max_images=3)
    assert [t.name for t in tasks] == ["qa", "text-qa", "choice", "caption"]
    assert [t.metric for t in tasks] == ["exact", "exact", "choice-norm", "cider"]
    qa, text, choice, caption = tasks
    assert not text.benchmark.has_images
    assert len(caption) == 3
    assert len(qa) == len(text) == len(choice)
    assert len(set(qa.cluster_labels())) == 3
    assert qa.prompts[0].startswith("USER: <image>\n")  # the testbed's own chat template
    world = built.data().test
    first = world.questions[0]
    assert text.prompts[0] == f"USER: {world.pairs.captions[0]}. {first.question} ASSISTANT:"
    assert choice.benchmark.references[0][choice.benchmark.answer_index[0]] == first.answer


def test_testbed_benchmarks_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(TestbedConfig, "small", classmethod(lambda cls, *, seed=0: TINY_TESTBED))
    argv = [
        "intervene", "curves", "--testbed", "small", "--cache-dir", str(tmp_path / "cache"),
        "--testbed-tasks", "", "--testbed-benchmarks", "qa,caption", "--max-images", "2",
        "--analyses", "skip", "--resamples", "20", "--permutations", "20",
    ]  # fmt: skip
    table, _ = run_intervene(argv, tmp_path / "out", "effects")
    assert table.unique("measure") == ["qa-exact", "caption-cider"]

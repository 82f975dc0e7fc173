"""All curves of a checkpoint pair in one table; caption and testbed tasks; the curves CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geomalign.analysis import EffectCurve, effects_table
from geomalign.cli import main
from geomalign.data import PairedDataset
from geomalign.interventions import score_items
from geomalign.interventions.effects import intervention_effects
from geomalign.interventions.plotting import plot_effect_curves
from geomalign.interventions.tasks import caption_task, held_out_tasks

from .conftest import (
    IMAGE_TOKEN,
    N_IMAGE_TOKENS,
    N_LAYERS,
    make_items,
    run_intervene,
    tiny_llava,
    tiny_processor,
)

FAST = {"n_resamples": 50, "n_permutations": 50}
CAPTIONS = ["a red circle on the left", "a large blue square", "a small green triangle", "a circle"]


def _pairs(n=4):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(n)]
    return PairedDataset([f"p{i}" for i in range(n)], CAPTIONS[:n], lambda i: images[i])


def test_intervention_effects_gathers_every_curve():
    base, tuned = tiny_llava(1), tiny_llava(2)
    tasks = [make_items(4), make_items(3, metric="exact-match", seed=1)]
    analyses = ["transplant-sliding", "knockout"]
    curves = intervention_effects(
        base, tuned, tasks, analyses=analyses, visual_checkpoints=["base", "tuned"], **FAST
    )
    assert [(c.analysis, c.checkpoint) for c in curves[:3]] == [
        ("transplant-sliding", "base"),
        ("visual-knockout", "base"),
        ("visual-knockout", "tuned"),
    ]
    table = effects_table(curves)
    assert EffectCurve.from_table(table) == curves
    assert table.unique("analysis") == ["transplant-sliding", "visual-knockout"]
    assert table.unique("measure") == ["toy-loglik", "toy-exact-match"]
    knockout = table.select(analysis="visual-knockout", statistic="value")
    assert knockout.unique("checkpoint") == ["base", "tuned"]
    assert len(knockout) == 2 * 2 * (N_LAYERS - 1)  # tasks x checkpoints x windows of width 2
    fig = plot_effect_curves(curves)
    assert len(fig.axes) == 6  # one panel per curve: 2 tasks x (transplant + 2 knockouts)
    level, resamples = FAST.get("confidence", 0.95), FAST["n_resamples"]
    assert fig.axes[0].get_title().endswith(f"\n{level:.0%} CI, {resamples} resamples; n = 4 items")
    with pytest.raises(ValueError, match="analyses must be a non-empty subset"):
        intervention_effects(base, tuned, tasks, analyses=["transplant"])
    with pytest.raises(ValueError, match="visual_checkpoints must be"):
        intervention_effects(base, tuned, tasks, visual_checkpoints=["llm"])
    with pytest.raises(TypeError, match=r"unexpected options \['image_token_id'\]"):
        intervention_effects(base, tuned, tasks, analyses=["skip"], image_token_id=3)
    with pytest.raises(ValueError, match="no effect curve with windows"):
        plot_effect_curves([])
    with pytest.raises(TypeError, match="sequence of EffectCurve"):
        plot_effect_curves(table)


def test_caption_task_scores_caption_and_end_token():
    processor = tiny_processor()
    task = caption_task(processor, _pairs(), template="USER: {image}\nASSISTANT:")
    tokenizer = processor.tokenizer
    for row, caption in enumerate(CAPTIONS):
        target = task.input_ids[row][task.target_mask[row]].tolist()
        expected = tokenizer(caption, add_special_tokens=False)["input_ids"]
        assert target == [*expected, tokenizer.eos_token_id]
        assert int((task.input_ids[row] == IMAGE_TOKEN).sum()) == N_IMAGE_TOKENS
    assert task.item_ids == ("p0", "p1", "p2", "p3")
    scores = score_items(tiny_llava(1), task)
    assert scores.shape == (4,)
    assert np.all(scores < 0)
    subset = caption_task(processor, _pairs(), indices=[2], end_token=False)
    assert len(subset) == 1
    assert tokenizer.eos_token_id not in subset.input_ids[0].tolist()
    with pytest.raises(ValueError, match="exactly one '\\{image\\}'"):
        caption_task(processor, _pairs(), template="USER: ASSISTANT:")
    with pytest.raises(TypeError, match="vision-language processor"):
        caption_task(tokenizer, _pairs())


class _FakeTestbed:
    """Stands in for a built testbed: only ``data()`` is used."""

    def __init__(self, data):
        self._data = data

    def data(self):
        return self._data


def test_held_out_tasks_follow_the_testbed_sets():
    from geomalign.testbed import TestbedConfig, build_processor, make_testbed_data

    config = TestbedConfig(n_train=4, n_test=6)
    data = make_testbed_data(config, build_processor(config))
    qa, caption = held_out_tasks(_FakeTestbed(data))
    assert qa.metric == "exact-match"
    assert caption.metric == "loglik"
    assert len(qa) == len(data.qa_eval)
    assert len(caption) == len(data.caption_eval) == 6
    scored = data.qa_eval.labels != -100
    assert torch.equal(qa.target_mask, scored)
    ids = data.test.pairs.ids
    assert qa.groups == tuple(ids[i] for i in data.qa_eval.image_index.tolist())
    (first_two,) = held_out_tasks(_FakeTestbed(data), tasks=["qa"], max_images=2)
    assert set(first_two.groups) == set(ids[:2])
    with pytest.raises(ValueError, match="tasks must be a non-empty subset"):
        held_out_tasks(_FakeTestbed(data), tasks=["vqa"])


def test_curves_cli_on_saved_checkpoints(tmp_path):
    processor = tiny_processor()
    for name, seed in (("base", 1), ("tuned", 2)):
        tiny_llava(seed).save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
    pairs = _pairs()
    rows = []
    for i in range(len(pairs)):
        pairs.image(i).save(tmp_path / f"p{i}.png")
        rows.append({"id": f"p{i}", "image": f"p{i}.png", "caption": pairs.captions[i]})
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    argv = [
        "intervene",
        "curves",
        "--base",
        str(tmp_path / "base"),
        "--tuned",
        str(tmp_path / "tuned"),
        "--data",
        str(tmp_path / "pairs.jsonl"),
        "--analyses",
        "transplant-cumulative,skip",
        "--resamples",
        "50",
        "--permutations",
        "50",
    ]
    table, argv = run_intervene(argv, tmp_path / "out", "effects")
    assert table.unique("analysis") == ["transplant-cumulative", "visual-skip"]
    cumulative = table.select(analysis="transplant-cumulative", statistic="value")
    references = table.select(analysis="transplant-cumulative", statistic="reference")
    assert cumulative[0].value == references[0].value  # no block moved: the base model
    assert cumulative[-1].value == references[1].value  # every block moved: the tuned model
    qa = [*argv[: argv.index("--out")], "--testbed-tasks", "qa", "--out", str(tmp_path / "qa")]
    assert main(qa) == 1  # QA needs the testbed

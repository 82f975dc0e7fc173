"""Benchmark tasks on tiny LLaVA and Llama models: every kind and rule, batch-size invariance,
interventions during decoding, identities of the transplantation curve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _tiny_models import NEXT_GRID_PINPOINTS, tiny_llama_config, tiny_llava_next_config
from PIL import Image
from transformers import (
    LlamaForCausalLM,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
)

from geomalign.interventions import (
    Benchmark,
    LayerTransplant,
    knockout_visual_attention,
    prompt_task,
    skip_visual_tokens,
    transplant_curve,
    visual_token_curve,
)

from .conftest import IMAGE_TOKEN, N_LAYERS, tiny_llava, tiny_processor

FAST = {"n_resamples": 20, "n_permutations": 20}
WORDS = ["red", "green", "blue", "circle", "square", "triangle", "small", "large"]


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in range(n)]


def benchmark(kind, n=7, *, images=True, seed=0):
    """``n`` items of ``kind`` over 3 images, questions of different lengths (so batches pad)."""
    pictures = _images(3, seed)
    rng = np.random.default_rng(seed)
    questions = tuple(" ".join(rng.choice(WORDS, size=1 + k % 4)) for k in range(n))
    if kind == "choice":
        refs = tuple(tuple(rng.choice(WORDS, size=3, replace=False)) for _ in range(n))
    elif kind == "caption":
        refs = tuple(tuple(" ".join(rng.choice(WORDS, size=3)) for _ in range(2)) for _ in range(n))
        questions = ("",) * n
    else:
        refs = tuple(tuple(rng.choice(WORDS, size=1 + k % 3)) for k in range(n))
    return Benchmark(
        name=f"{kind}-task",
        kind=kind,
        ids=tuple(f"i{k}" for k in range(n)),
        questions=questions,
        references=refs,
        groups=tuple(f"image {k % 3}" for k in range(n)) if images else tuple(map(str, range(n))),
        answer_index=tuple(k % 3 for k in range(n)) if kind == "choice" else None,
        load_image=(lambda i: pictures[i % 3]) if images else None,
    )


CASES = [
    ("qa", "vqa"),
    ("qa", "exact"),
    ("qa", "relaxed"),
    ("choice", "choice"),
    ("choice", "choice-norm"),
    ("caption", "cider"),
    ("caption", "loglik"),
]


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def model():
    return tiny_llava(1)


@pytest.mark.parametrize(("kind", "metric"), CASES)
def test_scores_do_not_depend_on_the_batch_size(model, processor, kind, metric):
    task = prompt_task(benchmark(kind), processor, metric=metric, max_new_tokens=5)
    one = task.score(model, batch_size=1)
    seven = task.score(model, batch_size=7)
    assert one.shape == (7,)
    assert np.isfinite(one).all()
    if metric == "loglik":
        assert (one < 0).all()
        np.testing.assert_allclose(one, seven, rtol=1e-6)
    else:
        assert np.array_equal(one, seven)
        assert one.min() >= 0
        assert one.max() <= (10 if metric == "cider" else 1)
    if metric in ("vqa", "cider"):
        assert task.generate(model, batch_size=1) == task.generate(model, batch_size=3)


def test_answers_are_scored_by_their_rule(model, processor):
    task = prompt_task(benchmark("qa"), processor, max_new_tokens=4)
    texts = task.generate(model, batch_size=4)
    oracle = dataclasses.replace(task.benchmark, references=tuple((t or "x",) for t in texts))
    exact = prompt_task(oracle, processor, metric="exact", max_new_tokens=4)
    # the model's own answers as the references: every item right (empty answers aside)
    assert exact.score(model, batch_size=4).tolist() == [float(bool(t)) for t in texts]
    assert task.metric == "vqa"
    assert "USER:" in task.prompts[0]
    assert "<image>" in task.prompts[0]
    assert "template 'USER: {image}" in task.prompt_format


def test_chat_template_from_the_processor(processor):
    chat = tiny_processor()
    chat.chat_template = (
        "{% for m in messages %}user : {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        "{% endfor %} assistant :"
    )
    task = prompt_task(benchmark("qa"), chat)
    assert task.prompts[0].startswith("user : <image> ")
    assert task.prompts[0].endswith("assistant :")
    assert task.prompt_format.startswith("chat template of LlavaProcessor")
    explicit = prompt_task(benchmark("qa"), chat, template="Q: {image} {question} A:")
    assert explicit.prompts[0].startswith("Q: <image> ")
    with pytest.raises(ValueError, match=r"template must hold \{question\} and \{image\}"):
        prompt_task(benchmark("qa"), chat, template="{question}")
    with pytest.raises(ValueError, match="metric for a 'qa' task must be one of"):
        prompt_task(benchmark("qa"), chat, metric="cider")


def test_text_only_questions_through_a_vlm_and_a_text_model(model, processor):
    task = prompt_task(benchmark("qa", images=False), processor, metric="exact")
    assert "<image>" not in task.prompts[0]
    scores = task.score(model, batch_size=1)
    assert np.array_equal(scores, task.score(model, batch_size=7))
    torch.manual_seed(0)
    llama = LlamaForCausalLM(tiny_llama_config(vocab_size=50)).eval()
    text = prompt_task(benchmark("choice", images=False), processor.tokenizer)
    assert np.array_equal(text.score(llama, batch_size=1), text.score(llama, batch_size=5))
    with pytest.raises(TypeError, match="needs a vision-language processor"):
        prompt_task(benchmark("qa"), processor.tokenizer)


def test_interventions_act_while_decoding(model, processor):
    task = prompt_task(benchmark("qa"), processor, max_new_tokens=6)
    clean = task.generate(model, batch_size=7)
    with knockout_visual_attention(model, range(0)), skip_visual_tokens(model, 0):
        assert task.generate(model, batch_size=7) == clean
    other = dataclasses.replace(
        task, benchmark=dataclasses.replace(task.benchmark, load_image=lambda i: _images(1, 9)[0])
    )
    assert other.generate(model, batch_size=7) != clean  # the answers depend on the image
    with knockout_visual_attention(model, range(N_LAYERS)):
        blind = task.generate(model, batch_size=7)
        assert other.generate(model, batch_size=7) == blind  # ... and not when knocked out
        assert task.generate(model, batch_size=2) == blind
    assert blind != clean


def test_transplant_identities_on_generated_answers(processor):
    base, tuned = tiny_llava(1), tiny_llava(2)
    task = prompt_task(benchmark("qa"), processor, max_new_tokens=5)
    base_texts, tuned_texts = task.generate(base), task.generate(tuned)
    assert base_texts != tuned_texts
    with LayerTransplant(base, tuned) as hybrid:
        hybrid.set(range(0))
        assert task.generate(base) == base_texts
        hybrid.set(range(N_LAYERS))
        assert task.generate(base) == tuned_texts
    assert task.generate(base) == base_texts
    curve = transplant_curve(base, tuned, task, mode="reverse", **FAST)
    np.testing.assert_array_equal(curve.positions, [4, 3, 2, 1, 0])  # s of tuned blocks [s, 4)
    table = curve.to_table()
    rows = table.select(statistic="value")
    references = table.select(statistic="reference")
    assert [r.layer for r in rows] == [None, 4, 3, 2, 1]  # tuned blocks [s, 4) for s = 4 .. 0
    assert rows[0].value == references[0].value
    assert rows[-1].value == references[1].value
    assert "prompt: template" in references[0].notes


def test_visual_token_curve_on_a_benchmark_task(model, processor):
    task = prompt_task(benchmark("choice"), processor)
    table = visual_token_curve(model, task, intervention="knockout", width=2, **FAST).to_table()
    assert table.unique("measure") == ["choice-task-choice-norm"]
    assert len(table.select(statistic="value")) == N_LAYERS - 1


def _llava_next(seed):
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(tiny_llava_next_config(vocab_size=IMAGE_TOKEN + 1))
    torch.manual_seed(0)  # one vision tower for every seed
    shared = LlavaNextForConditionalGeneration(tiny_llava_next_config(vocab_size=IMAGE_TOKEN + 1))
    model.model.vision_tower.load_state_dict(shared.model.vision_tower.state_dict())
    return model.eval()


def test_llava_next_with_varying_image_token_counts():
    """Images of different sizes give different numbers of image tokens and of tiles: batching
    pads both, and no score depends on the batch."""
    images = _images(7, seed=3)
    sizes = [(16, 16), (32, 16), (16, 32), (40, 40), (16, 16), (24, 40), (32, 32)]
    resized = [im.resize(size) for im, size in zip(images, sizes, strict=True)]
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": 16},
            crop_size={"height": 16, "width": 16},
            image_grid_pinpoints=NEXT_GRID_PINPOINTS,
        ),
        tokenizer=tiny_processor().tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    bench = dataclasses.replace(benchmark("qa"), load_image=lambda i: resized[i])
    task = prompt_task(bench, processor, metric="exact", max_new_tokens=4)
    counts = {sum(t == IMAGE_TOKEN for t in e.ids) for e in task._encode(range(len(task)))}
    assert len(counts) >= 3
    base, tuned = _llava_next(1), _llava_next(2)
    one, seven = task.generate(base, batch_size=1), task.generate(base, batch_size=7)
    assert one == seven
    with knockout_visual_attention(base, range(N_LAYERS)):
        assert task.generate(base, batch_size=1) == task.generate(base, batch_size=7)
    choice = prompt_task(
        dataclasses.replace(benchmark("choice"), load_image=lambda i: resized[i]), processor
    )
    assert np.array_equal(choice.score(base, batch_size=1), choice.score(base, batch_size=7))
    tuned_texts = task.generate(tuned, batch_size=7)
    with LayerTransplant(base, tuned) as hybrid:
        hybrid.set(range(N_LAYERS))
        assert task.generate(base, batch_size=3) == tuned_texts


def test_bfloat16_weights_score_with_float32_reductions(processor):
    model = tiny_llava(1).to(torch.bfloat16)
    caption = prompt_task(benchmark("caption"), processor, metric="loglik")
    scores = caption.score(model, batch_size=7)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, caption.score(tiny_llava(1), batch_size=7), rtol=0.05)
    assert len(prompt_task(benchmark("qa"), processor).generate(model, batch_size=7)) == 7

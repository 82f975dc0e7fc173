"""Testbed parts that need no build: tokenizer, processor, encoded sets, training loop, scoring."""

import dataclasses

import numpy as np
import pytest
import torch
from _tiny_models import TINY_TESTBED
from PIL import Image
from transformers import LlamaForCausalLM, LlavaForConditionalGeneration

from geomalign.data.shapes import make_shapes, shapes_vocabulary
from geomalign.testbed import (
    CAPTION_INSTRUCTION,
    Examples,
    TestbedConfig,
    build_processor,
    build_tokenizer,
    chat_prompt,
    make_testbed_data,
    scene_facts,
    score_responses,
)
from geomalign.testbed.config import llama_config, llava_config
from geomalign.tuning import train_model

TINY = dataclasses.replace(TINY_TESTBED, n_train=24, n_test=8, batch_size=8)


@pytest.fixture(scope="module")
def processor():
    return build_processor(TINY)


@pytest.fixture(scope="module")
def data(processor):
    return make_testbed_data(TINY, processor)


def test_tokenizer_covers_the_world_word_by_word():
    tokenizer = build_tokenizer()
    words = shapes_vocabulary()
    ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    assert len(ids) == len(words)
    assert tokenizer.unk_token_id not in ids
    assert len(set(ids)) == len(words)
    encoded = tokenizer("What colour is the circle?")["input_ids"]
    assert encoded[0] == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(encoded[1:]) == [
        "what",
        "colour",
        "is",
        "the",
        "circle",
        "?",
    ]
    assert tokenizer.image_token == "<image>"
    assert tokenizer.convert_tokens_to_ids("<image>") == tokenizer.image_token_id


def test_chat_template_renders_the_conversation_prompt(processor):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what size?"}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == chat_prompt("what size?") == "USER: <image>\nwhat size? ASSISTANT:"


def test_encoded_prompts_equal_the_processor_output(processor, data):
    """The sets expand ``<image>`` exactly as the saved processor does, and share its pixels."""
    for row in (0, 5, len(data.qa_eval) - 1):
        question = data.test.questions[row]
        image = data.test.pairs.image(question.index)
        expected = processor(
            images=[image], text=[chat_prompt(question.question)], return_tensors="pt"
        )
        ids = data.qa_eval.input_ids[row]
        prompt = ids[data.qa_eval.labels[row] == -100][: expected["input_ids"].shape[1]]
        assert torch.equal(prompt, expected["input_ids"][0])
        pixels = data.qa_eval.pixel_values[data.qa_eval.image_index[row]]
        assert torch.equal(pixels, expected["pixel_values"][0])
    assert (
        (data.qa_eval.input_ids == processor.tokenizer.image_token_id)
        .sum(1)
        .eq(TINY.n_image_tokens)
        .all()
    )


def test_only_the_response_and_end_token_are_scored(processor, data):
    tokenizer = processor.tokenizer
    for examples, world_questions in ((data.qa_eval, data.test.questions),):
        for row in (0, 3):
            scored = examples.labels[row][examples.labels[row] != -100].tolist()
            assert scored == tokenizer(world_questions[row].answer, add_special_tokens=False)[
                "input_ids"
            ] + [tokenizer.eos_token_id]
    caption_ids = data.caption_eval.labels[0][data.caption_eval.labels[0] != -100]
    assert tokenizer.decode(caption_ids[:-1]) == data.test.pairs.captions[0]
    # text pre-training scores everything after <s>
    text = data.text
    assert torch.equal(text.labels[:, 1:] != -100, text.attention_mask[:, 1:].bool())


def test_sets_hold_the_recipe(data):
    assert len(data.train) == TINY.n_train
    assert len(data.test) == TINY.n_test
    assert not set(data.train.pairs.ids) & set(data.test.pairs.ids)
    assert len(data.stage1) == TINY.n_train
    assert len(data.stage2) == len(data.train.questions) + TINY.n_train
    assert data.stage2.tags.count("caption") == TINY.n_train
    assert len(data.qa_eval) == len(data.test.questions)
    assert len(data.text) == TINY.n_train + len(data.train.questions)
    assert data.text.pixel_values is None
    assert data.text.image_index is None
    assert CAPTION_INSTRUCTION == "describe the image."


def test_batch_trims_padding_and_gathers_images(data):
    examples = data.stage2
    batch = examples.batch([0, len(examples) - 1])
    lengths = examples.attention_mask[[0, len(examples) - 1]].sum(1)
    assert batch["input_ids"].shape == (2, int(lengths.max()))
    assert batch["pixel_values"].shape == (2, 3, TINY.image_size, TINY.image_size)
    assert torch.equal(batch["pixel_values"][1], examples.pixel_values[examples.image_index[-1]])


def test_scene_facts_name_every_object():
    world = make_shapes(50, random_state=2)
    facts = scene_facts(world)
    assert torch.equal(facts.sum(1), 4 * torch.as_tensor(world.pairs.labels["n_objects"]).float())


class _Oracle(torch.nn.Module):
    """Predicts the next token of its input exactly, except at positions listed in ``wrong``."""

    def __init__(self, vocab: int, wrong: tuple[int, ...] = ()):
        super().__init__()
        self.vocab, self.wrong = vocab, wrong
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, **_):
        target = torch.roll(input_ids, -1, dims=1)
        for row in self.wrong:
            target[row] = (target[row] + 1) % self.vocab
        logits = torch.nn.functional.one_hot(target, self.vocab).float()
        return type("Output", (), {"logits": logits})()


def _examples(n=4, length=6, response=2):
    input_ids = torch.arange(n * length).reshape(n, length) % 9 + 1
    labels = torch.full_like(input_ids, -100)
    labels[:, -response:] = input_ids[:, -response:]
    return Examples(input_ids, torch.ones_like(input_ids), labels, ("a", "b", "a", "b")[:n])


def test_score_responses_analytic_cases():
    examples = _examples()
    perfect = score_responses(_Oracle(10), examples, batch_size=3)
    assert perfect.exact_match == 1.0
    assert perfect.token_accuracy == 1.0
    half = score_responses(_Oracle(10, wrong=(0, 1)), examples)
    assert half.exact_match == 0.5
    assert half.token_accuracy == 0.5
    assert half.exact_match_by_tag == {"a": 0.5, "b": 0.5}


def _tiny_llava(processor):
    tokenizer = processor.tokenizer
    special = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id, "eos": 3}
    text = llama_config(TINY, len(tokenizer), special)
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(llava_config(TINY, text, tokenizer.image_token_id))


def test_train_model_trains_exactly_the_trainable_parameters(processor, data):
    model = _tiny_llava(processor)
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_model(model, data.stage2, steps=3, lr=1e-2, batch_size=4, progress=False)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    projector = {n for n, _ in model.named_parameters() if "multi_modal_projector" in n}
    assert changed == projector
    assert result.steps == 3
    assert result.losses.shape == (3,)
    assert result.n_trainable == sum(
        p.numel() for p in model.model.multi_modal_projector.parameters()
    )
    assert result.wall_time > 0
    assert np.isfinite(result.metrics["final_loss"])


def test_train_model_is_deterministic_and_reports_evaluation(processor, data):
    runs = []
    for _ in range(2):
        model = _tiny_llava(processor)
        result = train_model(
            model,
            data.stage2,
            steps=2,
            lr=1e-2,
            batch_size=4,
            random_state=5,
            evaluate=lambda m: {"qa": score_responses(m, data.qa_eval).exact_match},
            progress=False,
        )
        runs.append((result, model.state_dict()))
    (first, weights), (second, again) = runs
    np.testing.assert_array_equal(first.losses, second.losses)
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert "qa" in first.metrics


def test_train_model_on_a_text_model(processor, data):
    tokenizer = processor.tokenizer
    special = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id, "eos": 3}
    model = LlamaForCausalLM(llama_config(TINY, len(tokenizer), special))
    result = train_model(model, data.text, steps=20, lr=1e-2, batch_size=8, progress=False)
    assert result.losses[-5:].mean() < result.losses[:5].mean()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps must be a positive integer"),
        ({"steps": 1, "batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"steps": 1, "lr": 0.0}, ValueError, "lr must be > 0"),
    ],
)
def test_train_model_rejects_bad_arguments(processor, data, kwargs, error, match):
    model = _tiny_llava(processor)
    with pytest.raises(error, match=match):
        train_model(model, data.stage2, **{"lr": 1e-3, **kwargs})


def test_train_model_needs_trainable_parameters_and_examples(processor, data):
    model = _tiny_llava(processor).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter with requires_grad=True"):
        train_model(model, data.stage2, steps=1, lr=1e-3)
    with pytest.raises(TypeError, match="examples must be an Examples set"):
        train_model(model, [1, 2], steps=1, lr=1e-3)


def test_config_fingerprint_and_validation():
    config = TestbedConfig()
    assert config.fingerprint() == TestbedConfig().fingerprint()
    assert config.fingerprint() != dataclasses.replace(config, seed=1).fingerprint()
    assert config.text_layers >= 6
    assert TestbedConfig.small().text_layers >= 6
    assert TestbedConfig.small(seed=3).seed == 3
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        TestbedConfig(n_train=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        TestbedConfig(seed=1.5)
    with pytest.raises(ValueError, match="stage2_lr must be a positive float"):
        TestbedConfig(stage2_lr=-1.0)
    with pytest.raises(ValueError, match="must be a multiple of patch_size"):
        TestbedConfig(image_size=30)
    with pytest.raises(ValueError, match="multiple of text_heads"):
        TestbedConfig(text_hidden_size=30)


def test_processor_images_have_the_configured_size(processor):
    image = Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8))
    pixels = processor.image_processor([image], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, TINY.image_size, TINY.image_size)

"""Assembling a LLaVA stage-1 model from a base LLM, a CLIP checkpoint and a projector file."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    CLIPModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
)

from geomalign.extract import (
    LLAVA_TEXT_TEMPLATE,
    TextAdapter,
    assemble_llava,
    llava_projector_weights,
    load_llava_stage1,
)


def _load_stage1(parts, **options):
    """``load_llava_stage1`` on the test's parts; ``options`` override ``reference`` and others."""
    options = {"reference": parts["reference"], **options}
    return load_llava_stage1(parts["llm"], parts["clip"], parts["projector"], **options)


@pytest.fixture(scope="module")
def stage1(stage1_parts):
    return _load_stage1(stage1_parts), stage1_parts


def test_parts_land_where_they_belong(stage1):
    adapter, parts = stage1
    model = adapter.model
    llm = LlamaForCausalLM.from_pretrained(parts["llm"])
    clip = CLIPModel.from_pretrained(parts["clip"])
    projector = torch.load(parts["projector"] / "mm_projector.bin", weights_only=True)
    n_vocab = llm.config.vocab_size
    lm = model.model.language_model
    assert lm.embed_tokens.weight.shape[0] == n_vocab + 8  # grown to the reference vocabulary
    torch.testing.assert_close(lm.embed_tokens.weight[:n_vocab], llm.model.embed_tokens.weight)
    torch.testing.assert_close(
        lm.embed_tokens.weight[n_vocab:], llm.model.embed_tokens.weight.mean(0).expand(8, -1)
    )
    torch.testing.assert_close(model.lm_head.weight[:n_vocab], llm.lm_head.weight)
    torch.testing.assert_close(
        lm.layers[2].mlp.up_proj.weight, llm.model.layers[2].mlp.up_proj.weight
    )
    torch.testing.assert_close(
        model.model.vision_tower.encoder.layers[1].mlp.fc1.weight,
        clip.vision_model.encoder.layers[1].mlp.fc1.weight,
    )
    torch.testing.assert_close(
        model.model.multi_modal_projector.linear_2.weight, projector["model.mm_projector.2.weight"]
    )
    assert (
        model.config.image_token_id == AutoConfig.from_pretrained(parts["reference"]).image_token_id
    )
    assert adapter.name.startswith("stage1(")
    assert str(parts["projector"]) in adapter.name
    assert not model.training


def test_assembled_model_equals_one_loaded_by_state_dict(stage1, pairs):
    """Build the same model the ordinary way (config + load_state_dict) and compare outputs."""
    adapter, parts = stage1
    config = AutoConfig.from_pretrained(parts["reference"])
    reference = LlavaForConditionalGeneration(config).eval()
    llm = LlamaForCausalLM.from_pretrained(parts["llm"])
    n_vocab = llm.config.vocab_size
    state = {f"model.language_model.{k}": v for k, v in llm.model.state_dict().items()}
    state["lm_head.weight"] = llm.lm_head.weight
    for key, old in (
        ("model.language_model.embed_tokens.weight", llm.model.embed_tokens.weight),
        ("lm_head.weight", llm.lm_head.weight),
    ):
        state[key] = torch.cat([old, old.mean(0).expand(8, -1)])
    clip = CLIPModel.from_pretrained(parts["clip"])
    state.update({f"model.vision_tower.{k}": v for k, v in clip.vision_model.state_dict().items()})
    projector = torch.load(parts["projector"] / "mm_projector.bin", weights_only=True)
    state.update(
        {
            f"model.multi_modal_projector.{k}": v
            for k, v in llava_projector_weights(projector).items()
        }
    )
    reference.load_state_dict(state, strict=True)
    assert n_vocab == len(adapter.processor.tokenizer)
    batch = adapter.encode("image", [pairs.image(0), pairs.image(4)])
    with torch.inference_mode():
        expected = reference(**batch.inputs, output_hidden_states=True).hidden_states
    for got, want in zip(adapter.hidden_states(batch, "all"), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_stage1_caption_view_is_the_base_llm(stage1, pairs):
    adapter, parts = stage1
    llm = TextAdapter(
        LlamaForCausalLM.from_pretrained(parts["llm"]),
        adapter.processor.tokenizer,
        template=LLAVA_TEXT_TEMPLATE,
    )
    batch = adapter.encode("text", pairs.captions)
    for got, want in zip(
        adapter.hidden_states(batch, "all"), llm.hidden_states(batch, "all"), strict=True
    ):
        torch.testing.assert_close(got, want)


def test_projector_keys_and_mismatches(stage1_parts):
    weights = {"model.mm_projector.0.weight": torch.zeros(1), "mm_projector.2.bias": torch.ones(1)}
    assert set(llava_projector_weights(weights)) == {"linear_1.weight", "linear_2.bias"}
    ported = {"multi_modal_projector.linear_1.bias": torch.zeros(1)}
    assert set(llava_projector_weights(ported)) == {"linear_1.bias"}
    with pytest.raises(ValueError, match=r"unexpected key 'model.mm_projector.1.weight'"):
        llava_projector_weights({"model.mm_projector.1.weight": torch.zeros(1)})
    config = AutoConfig.from_pretrained(stage1_parts["reference"])
    clip = CLIPModel.from_pretrained(stage1_parts["clip"]).vision_model
    wide = LlamaForCausalLM(
        config.text_config.__class__(
            **{
                **config.text_config.to_dict(),
                "hidden_size": 128,
                "intermediate_size": 256,
            }
        )
    )
    with pytest.raises(ValueError, match=r"language_model.config.hidden_size is 128 but"):
        assemble_llava(wide, clip, {}, config)
    with pytest.raises(ValueError, match=r"projector folder .* has no file 'weights\.bin'"):
        _load_stage1(stage1_parts, projector_file="weights.bin")
    with pytest.raises(ValueError, match=r"not a LlavaConfig"):
        _load_stage1(stage1_parts, reference=stage1_parts["llm"])

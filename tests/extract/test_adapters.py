"""Extracted states equal a direct ``model(..., output_hidden_states=True)`` call, per adapter."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from geomalign.extract import (
    LLAVA_TEXT_TEMPLATE,
    ModuleAdapter,
    TextAdapter,
    VLMAdapter,
    encode_captions,
    extract,
    load_adapter,
)
from geomalign.store import ActivationStore

POOLINGS = ["mean", "last", "first", "random", "none"]
_tokenizer = lru_cache(AutoTokenizer.from_pretrained)
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _minilm_hooks(path):
    bert = AutoModel.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return ModuleAdapter(
        bert,
        [bert.embeddings, *bert.encoder.layer],
        lambda modality, captions: encode_captions(tokenizer, captions),
        hidden_size=bert.config.hidden_size,
        name=str(path),
    )


ADAPTERS = {
    "llava": lambda d: load_adapter(d["llava_dir"]),
    "llava-next": lambda d: load_adapter(d["llava_next_dir"]),
    "llama": lambda d: load_adapter(d["llm_dir"], templates={"text": "Caption: {caption}."}),
    "minilm": lambda d: load_adapter(d["minilm_dir"]),
    "minilm-hooks": lambda d: _minilm_hooks(d["minilm_dir"]),
}


@pytest.fixture(scope="module", params=list(ADAPTERS))
def extracted(request, tmp_path_factory):
    """An adapter and its store, extracted in batches of 4 (rows get padded), every pooling."""
    dirs = {
        name: request.getfixturevalue(name)
        for name in ("llava_dir", "llava_next_dir", "llm_dir", "minilm_dir")
    }
    adapter = ADAPTERS[request.param](dirs)
    pairs = request.getfixturevalue("pairs")
    path = tmp_path_factory.mktemp("stores") / f"{request.param}.h5"
    result = extract(
        adapter, pairs, path, checkpoint_name="m", poolings=POOLINGS, batch_size=4, progress=False
    )
    return adapter, pairs, path, result


def _reference(adapter, modality, pairs, i):
    """Per-layer states (seq, dim) of sample i from a direct, unbatched forward pass."""
    if isinstance(adapter, VLMAdapter):
        processor, model = adapter.processor, adapter.model
        if modality == "image":
            prompt = adapter.image_template.replace("{image}", processor.image_token)
            inputs = processor(images=[pairs.image(i)], text=[prompt], return_tensors="pt")
        else:
            prompt = adapter.text_template.replace("{caption}", pairs.captions[i])
            inputs = processor.tokenizer([prompt], return_tensors="pt")
    else:
        tokenizer = adapter.tokenizer if isinstance(adapter, TextAdapter) else None
        model = adapter.model
        if tokenizer is None:  # the hooks adapter wraps the same MiniLM and tokenizer
            tokenizer = _tokenizer(model.name_or_path)
        template = getattr(adapter, "template", "{caption}")
        inputs = tokenizer([template.replace("{caption}", pairs.captions[i])], return_tensors="pt")
    with torch.inference_mode():
        out = model(**inputs, output_hidden_states=True)
    region = adapter.encode(
        modality, [pairs.image(i) if modality == "image" else pairs.captions[i]]
    )
    states = [h[0].float().numpy() for h in out.hidden_states]
    return states, region.region[0].numpy(), inputs["input_ids"][0]


def test_every_pooling_matches_a_direct_forward_pass(extracted):
    adapter, pairs, path, result = extracted
    assert result.layers == tuple(range(adapter.n_layers))
    assert result.n_encoded == len(pairs) * len(adapter.modalities)
    with ActivationStore(path) as store:
        for modality in adapter.modalities:
            offsets = store.row_offsets("m", modality, "none")
            rows = {
                (p, layer): store.read("m", modality, p, layer)
                for p in POOLINGS
                for layer in range(adapter.n_layers)
            }
            for i in range(len(pairs)):
                states, region, _ = _reference(adapter, modality, pairs, i)
                assert len(states) == adapter.n_layers
                assert offsets[i + 1] - offsets[i] == region.sum() > 0
                candidates = set(np.flatnonzero(region))
                for layer, h in enumerate(states):
                    got = {p: rows[p, layer] for p in POOLINGS}
                    np.testing.assert_allclose(got["mean"][i], h[region].mean(0), **TOL)
                    np.testing.assert_allclose(got["last"][i], h[-1], **TOL)
                    np.testing.assert_allclose(got["first"][i], h[0], **TOL)  # CLS / BOS
                    np.testing.assert_allclose(
                        got["none"][offsets[i] : offsets[i + 1]], h[region], **TOL
                    )
                    # the random token is one of the region's, the same one in every layer
                    # (layer 0 holds token embeddings: a repeated word matches at each place)
                    close = np.abs(h - got["random"][i]).max(1) < 1e-4
                    candidates &= set(np.flatnonzero(close))
                assert candidates


def test_regions_are_the_caption_and_image_tokens(extracted, tokenizer):
    adapter, pairs, _, _ = extracted
    for modality in adapter.modalities:
        for i in (0, 3):
            _, region, input_ids = _reference(adapter, modality, pairs, i)
            if modality == "image":
                image_id = adapter.processor.tokenizer.convert_tokens_to_ids("<image>")
                np.testing.assert_array_equal(region, (input_ids == image_id).numpy())
                if "next" not in adapter.name:
                    assert region.sum() == 16  # 4 x 4 patches of the 32-pixel image
            else:
                tok = adapter.processor.tokenizer if isinstance(adapter, VLMAdapter) else None
                tok = tok or getattr(adapter, "tokenizer", None)
                if tok is None:
                    tok = _tokenizer(adapter.model.name_or_path)
                caption = tok.decode(input_ids[region]).strip()
                assert caption.lower() == pairs.captions[i].lower()


def test_next_image_token_counts_follow_the_image_shape(llava_next_dir, pairs):
    adapter = load_adapter(llava_next_dir)
    batch = adapter.encode("image", [pairs.image(i) for i in range(len(pairs))])
    counts = batch.region.sum(1)
    assert len(set(counts.tolist())) > 1  # any-resolution tiling: not one fixed count


def test_vlm_caption_view_equals_the_llm_view(llava_dir, llm_dir, pairs, tmp_path):
    """The tiny LLaVA's language model holds the LLM's weights: caption views must coincide."""
    path = tmp_path / "both.h5"
    options = {"poolings": ["mean", "last", "none"], "batch_size": 3, "progress": False}
    extract(load_adapter(llava_dir), pairs, path, checkpoint_name="vlm", **options)
    llm = load_adapter(llm_dir, templates={"text": LLAVA_TEXT_TEMPLATE})
    extract(llm, pairs, path, checkpoint_name="llm", **options)
    with ActivationStore(path) as store:
        for pooling in options["poolings"]:
            for layer in range(4):
                np.testing.assert_allclose(
                    store.read("vlm", "text", pooling, layer),
                    store.read("llm", "text", pooling, layer),
                    rtol=1e-5,
                    atol=1e-6,
                )
        # and the image view is a different thing altogether
        assert not np.allclose(
            store.read("vlm", "image", "mean", 2), store.read("vlm", "text", "mean", 2)
        )


def test_hook_adapter_equals_the_text_adapter(minilm_dir, pairs):
    text = load_adapter(minilm_dir)
    hooks = _minilm_hooks(minilm_dir)
    captions = pairs.captions
    batch_text, batch_hooks = text.encode("text", captions), hooks.encode("text", captions)
    for a, b in zip(
        text.hidden_states(batch_text, [0, 3, 6]),
        hooks.hidden_states(batch_hooks, [0, 3, 6]),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("layers", "blocks_run"), [([0], 0), ([0, 2], 2), ([1, -1], 3), ([3], 3)])
def test_only_the_blocks_needed_run(llava_dir, pairs, layers, blocks_run):
    """The pass stops after the last block a requested layer needs; the states stay exact."""
    adapter = load_adapter(llava_dir)
    batch = adapter.encode("image", [pairs.image(0), pairs.image(1)])
    blocks = adapter.model.model.language_model.layers
    ran = []
    handles = [
        block.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
        for i, block in enumerate(blocks)
    ]
    try:
        states = adapter.hidden_states(batch, layers)
    finally:
        for handle in handles:
            handle.remove()
    assert ran == list(range(blocks_run))
    with torch.inference_mode():
        inputs = {k: v for k, v in batch.inputs.items()}
        reference = adapter.model.base_model(**inputs, output_hidden_states=True).hidden_states
    for layer, state in zip(layers, states, strict=True):
        torch.testing.assert_close(state, reference[layer], rtol=0, atol=0)


def test_text_adapter_rejects_images_and_bad_templates(llm_dir):
    adapter = load_adapter(llm_dir)
    with pytest.raises(ValueError, match=r"encodes modalities \['text'\]; got 'image'"):
        adapter.encode("image", [])
    with pytest.raises(ValueError, match=r"must contain '\{caption\}' exactly once"):
        TextAdapter(adapter.model, adapter.tokenizer, template="no placeholder")
    with pytest.raises(ValueError, match=r"must not contain '\{image\}'"):
        TextAdapter(adapter.model, adapter.tokenizer, template="{image} {caption}")
    with pytest.raises(ValueError, match="an image template does not apply"):
        load_adapter(llm_dir, templates={"image": "{image}"})
    with pytest.raises(
        ValueError, match=r"takes keys 'image', 'text' and 'joint'; got \['video'\]"
    ):
        load_adapter(llm_dir, templates={"video": "{video}"})
    with pytest.raises(TypeError, match="must be a transformers PreTrainedModel"):
        TextAdapter(torch.nn.Linear(2, 2), adapter.tokenizer)


def test_vlm_adapter_checks(llava_dir, llm_dir):
    adapter = load_adapter(llava_dir)
    with pytest.raises(ValueError, match=r"image_template must contain '\{image\}' exactly once"):
        VLMAdapter(adapter.model, adapter.processor, image_template="USER: {caption}")
    with pytest.raises(TypeError, match="vision-language processor"):
        VLMAdapter(adapter.model, load_adapter(llm_dir).tokenizer)
    with pytest.raises(TypeError, match="needs PIL images"):
        adapter.encode("image", ["not an image"])
    with pytest.raises(ValueError, match=r"layer 9 is out of range for a model with 4 layers"):
        adapter.check_layers([0, 9])
    with pytest.raises(ValueError, match="distinct"):
        adapter.check_layers([1, -3])
    assert adapter.check_layers("all") == [0, 1, 2, 3]
    assert adapter.check_layers(np.arange(1, 3)) == [1, 2]
    with pytest.raises(TypeError, match=r"layers must hold ints; got 1\.0"):
        adapter.check_layers([1.0])


class _CallsAgain(torch.nn.Module):
    """A block that runs another block of the trunk (as a looped model would)."""

    def __init__(self, other: torch.nn.Module) -> None:
        super().__init__()
        self.other = other

    def forward(self, *args, **kwargs):
        return self.other(*args, **kwargs)


def test_a_block_that_runs_twice_is_refused(llm_dir):
    """A trunk that reuses a block (shared weights, a loop) has no single state per layer."""
    adapter = load_adapter(llm_dir)
    batch = adapter.encode("text", ["a cat", "a dog"])
    blocks = adapter.model.model.layers
    first, second = blocks[0], blocks[1]
    blocks[1] = first
    with pytest.raises(ValueError, match=r"decoder blocks 0 and 1 are one module"):
        adapter.hidden_states(batch, [0, 2])
    blocks[1] = _CallsAgain(first)
    with pytest.raises(ValueError, match=r"decoder block 0 ran more than once"):
        adapter.hidden_states(batch, [1, 3])
    blocks[1] = second
    assert len(adapter.hidden_states(batch, [1, 3])) == 2

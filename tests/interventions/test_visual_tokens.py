"""Image-token skip, ablation and attention knockout: identities, invariances, hook hygiene."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from geomalign.interventions import (
    ablate_visual_tokens,
    knockout_visual_attention,
    skip_visual_tokens,
)
from geomalign.interventions.visual_tokens import _knocked_out_mask

from .conftest import IMAGE_TOKEN, N_LAYERS, forward_logits, make_items, tiny_llava


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model(request):
    return tiny_llava(1, attn=request.param)


def _other_images(task):
    return dataclasses.replace(task, pixel_values=torch.randn_like(task.pixel_values) * 3)


def _text_positions(task):
    return (task.input_ids != IMAGE_TOKEN) & task.attention_mask.bool()


def _hooks(model):
    """Every forward (pre-)hook on the model; transformers installs a few of its own."""
    return {
        (name, kind, key)
        for name, module in model.named_modules()
        for kind, hooks in (("post", module._forward_hooks), ("pre", module._forward_pre_hooks))
        for key in hooks
    }


@pytest.fixture
def no_hooks_left(model, items):
    """Check that a test leaves exactly the hooks that were there before it."""
    forward_logits(model, items)  # let transformers install its output-capturing hooks first
    before = _hooks(model)
    yield
    assert _hooks(model) == before


def test_empty_interventions_change_nothing(model, items, no_hooks_left):
    clean = forward_logits(model, items)
    with skip_visual_tokens(model, 0):
        assert torch.equal(forward_logits(model, items), clean)
    with knockout_visual_attention(model, range(0)):
        assert torch.equal(forward_logits(model, items), clean)
    with ablate_visual_tokens(model, []):
        assert torch.equal(forward_logits(model, items), clean)


def test_interventions_change_the_output(model, items, no_hooks_left):
    clean = forward_logits(model, items)
    for context in (
        skip_visual_tokens(model, 2),
        knockout_visual_attention(model, range(1, 3)),
        ablate_visual_tokens(model, [1], fill="mean"),
        ablate_visual_tokens(model, [1], fill="zero"),
    ):
        with context:
            changed = forward_logits(model, items)
        assert not torch.allclose(changed, clean)
    assert torch.equal(forward_logits(model, items), clean)


@pytest.mark.parametrize("intervention", ["knockout", "ablate-zero"])
def test_full_window_makes_text_blind_to_the_image(model, items, intervention):
    """Text logits stop depending on the image; image-position logits still do."""
    context = (
        knockout_visual_attention(model, range(N_LAYERS))
        if intervention == "knockout"
        else ablate_visual_tokens(model, range(N_LAYERS), fill="zero")
    )
    text = _text_positions(items)
    image = items.input_ids == IMAGE_TOKEN
    with context:
        one = forward_logits(model, items)
        two = forward_logits(model, _other_images(items))
    torch.testing.assert_close(one[text], two[text], rtol=1e-5, atol=1e-5)
    clean_one = forward_logits(model, items)
    clean_two = forward_logits(model, _other_images(items))
    assert not torch.allclose(clean_one[text], clean_two[text])
    if intervention == "knockout":
        assert not torch.allclose(one[image], two[image])


def test_knockout_agrees_between_eager_and_sdpa(items):
    eager, sdpa = tiny_llava(1, attn="eager"), tiny_llava(1, attn="sdpa")
    single = make_items(1)  # no padding: SDPA gets no mask at all and the knockout builds one
    for task in (items, single):
        real = task.attention_mask.bool()
        with knockout_visual_attention(eager, [0, 2]), knockout_visual_attention(sdpa, [0, 2]):
            torch.testing.assert_close(
                forward_logits(eager, task)[real], forward_logits(sdpa, task)[real]
            )


def test_skip_all_blocks_passes_projected_features_through(model, items):
    with skip_visual_tokens(model, N_LAYERS), torch.no_grad():
        logits = forward_logits(model, items)
        features = model.get_image_features(pixel_values=items.pixel_values).pooler_output
    features = torch.stack(list(features))  # (n_items, n_image_tokens, hidden)
    decoder = model.model.language_model
    expected = model.lm_head(decoder.norm(features))
    image = items.input_ids == IMAGE_TOKEN
    torch.testing.assert_close(logits[image], expected.reshape(-1, expected.shape[-1]))


def _capture_block_input(model, index, store):
    def hook(module, args, kwargs):
        store.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    return model.model.language_model.layers[index].register_forward_pre_hook(
        hook, with_kwargs=True
    )


def test_skip_k_feeds_block_k_the_projected_features(model, items):
    seen = []
    handle = _capture_block_input(model, 2, seen)
    try:
        with skip_visual_tokens(model, 2), torch.no_grad():
            forward_logits(model, items)
            features = model.get_image_features(pixel_values=items.pixel_values).pooler_output
    finally:
        handle.remove()
    image = items.input_ids == IMAGE_TOKEN
    torch.testing.assert_close(seen[0][image], torch.cat(list(features)))


def test_mean_ablation_replaces_image_states_by_their_sample_mean(model, items):
    before, after = [], []
    first = _capture_block_input(model, 1, before)
    try:
        with ablate_visual_tokens(model, [1], fill="mean"):
            second = _capture_block_input(model, 1, after)
            try:
                forward_logits(model, items)
            finally:
                second.remove()
    finally:
        first.remove()
    image = items.input_ids == IMAGE_TOKEN
    for row in range(len(items)):
        mean = before[0][row][image[row]].mean(0)
        torch.testing.assert_close(
            after[0][row][image[row]], mean.expand(int(image[row].sum()), -1)
        )
        torch.testing.assert_close(after[0][row][~image[row]], before[0][row][~image[row]])


def test_hooks_are_removed_after_an_exception(model, items, no_hooks_left):
    clean = forward_logits(model, items)

    def fail_inside(context):
        with context:
            forward_logits(model, items)
            raise RuntimeError("boom")

    for context in (
        skip_visual_tokens(model, 3),
        knockout_visual_attention(model, range(N_LAYERS)),
        ablate_visual_tokens(model, [0, 3]),
    ):
        with pytest.raises(RuntimeError, match="boom"):
            fail_inside(context)

    def fail_in_hook():  # the image positions cannot be found without input_ids
        embeds = model.get_input_embeddings()(items.input_ids)
        with skip_visual_tokens(model, 1):
            model(inputs_embeds=embeds, attention_mask=items.attention_mask)

    with pytest.raises(ValueError, match="need `input_ids`"):
        fail_in_hook()
    assert torch.equal(forward_logits(model, items), clean)


@pytest.mark.parametrize(
    "context",
    [
        lambda m: knockout_visual_attention(m, [0, 2]),
        lambda m: skip_visual_tokens(m, 2),
        lambda m: ablate_visual_tokens(m, [1], fill="zero"),
    ],
)
def test_interventions_act_on_every_step_of_cached_decoding(context):
    """Decoding one token at a time with a key/value cache gives the logits of full passes."""
    model = tiny_llava(1)
    single = make_items(1)
    ids = single.input_ids[:, : int(single.attention_mask.sum())]
    with context(model), torch.no_grad():
        full = model(input_ids=ids, pixel_values=single.pixel_values, use_cache=False).logits
        prompt = 7  # the image tokens and two more
        out = model(input_ids=ids[:, :prompt], pixel_values=single.pixel_values, use_cache=True)
        steps = [out.logits]
        for position in range(prompt, ids.shape[1]):
            out = model(
                input_ids=ids[:, position : position + 1], past_key_values=out.past_key_values
            )
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        clean = model(input_ids=ids, pixel_values=single.pixel_values).logits
    assert not torch.allclose(clean[:, -1], full[:, -1])


def test_knockout_refuses_a_cache_filled_outside_it(items):
    model = tiny_llava(1)
    single = make_items(1)
    forward_logits(model, single)
    before = _hooks(model)
    with torch.no_grad():
        out = model(input_ids=single.input_ids, pixel_values=single.pixel_values, use_cache=True)
        with knockout_visual_attention(model, [0]), pytest.raises(ValueError, match="unknown"):
            model(input_ids=single.input_ids[:, -1:], past_key_values=out.past_key_values)
    assert _hooks(model) == before


def test_knockout_mask_formats():
    image = torch.tensor([[False, True, True, False]])
    allowed = _knocked_out_mask(None, image, "test")
    expected = torch.tensor(
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 1]], dtype=torch.bool
    )
    assert torch.equal(allowed[0, 0], expected)
    additive = torch.zeros(1, 1, 4, 4).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), -1e9)
    out = _knocked_out_mask(additive, image, "test")
    assert torch.equal(out[0, 0] == 0, expected)
    with pytest.raises(TypeError, match=r"needs a 4-D attention mask .* got shape \(1, 4\)"):
        _knocked_out_mask(torch.ones(1, 4), image, "test")
    # one new text query over a cache of the four positions: it sees the text keys only
    step = _knocked_out_mask(
        None, torch.tensor([[False]]), "test", torch.cat([image, torch.tensor([[False]])], 1)
    )
    assert step[0, 0].tolist() == [[True, False, False, True, True]]


def test_bad_arguments(model, no_hooks_left):
    with (
        pytest.raises(ValueError, match="k must be an int in \\[0, 4\\]"),
        skip_visual_tokens(model, 5),
    ):
        pass
    with (
        pytest.raises(ValueError, match="fill must be 'mean' or 'zero'"),
        ablate_visual_tokens(model, [0], fill="noise"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="blocks holds block 7"),
        knockout_visual_attention(model, [7]),
    ):
        pass
    with (
        pytest.raises(TypeError, match="image_token_id must be an int"),
        skip_visual_tokens(model, 1, image_token_id="49"),
    ):
        pass

"""Layer transplantation: endpoints are the real checkpoints, hybrids are local, restore works."""

from __future__ import annotations

import pytest
import torch

from geomalign.interventions import LayerTransplant, block_windows

from .conftest import N_LAYERS, forward_logits, tiny_llava


@pytest.fixture
def pair():
    return tiny_llava(1), tiny_llava(2)


def test_all_blocks_give_tuned_logits_exactly_and_none_give_base(pair, items):
    base, tuned = pair
    base_logits = forward_logits(base, items)
    tuned_logits = forward_logits(tuned, items)
    with LayerTransplant(base, tuned) as hybrid:
        hybrid.set(range(N_LAYERS))
        assert torch.equal(forward_logits(base, items), tuned_logits)
        hybrid.set(range(0))
        assert torch.equal(forward_logits(base, items), base_logits)
        hybrid.set(range(1, 3))
    # leaving the block restores the base weights
    assert torch.equal(forward_logits(base, items), base_logits)


def test_differing_parts_exclude_the_shared_vision_tower(pair):
    base, tuned = pair
    hybrid = LayerTransplant(base, tuned)
    assert hybrid.differing_parts == ["input", *[f"block:{i}" for i in range(N_LAYERS)], "output"]
    input_keys = hybrid._keys["input"]
    assert not any("vision_tower" in key for key in input_keys)
    assert any("multi_modal_projector" in key for key in input_keys)
    assert any("embed_tokens" in key for key in input_keys)
    assert sorted(hybrid._keys["output"]) == ["lm_head.weight", "model.language_model.norm.weight"]


def _block_weight(model, index):
    return model.model.language_model.layers[index].mlp.down_proj.weight


@pytest.mark.parametrize(
    ("shell", "window", "input_from", "output_from"),
    [
        ("adjacent", range(0, 2), "tuned", "base"),
        ("adjacent", range(2, 4), "base", "tuned"),
        ("adjacent", range(1, 3), "base", "base"),
        ("base", range(0, 4), "base", "base"),
        ("tuned", range(1, 2), "tuned", "tuned"),
    ],
)
def test_shell_decides_what_moves_besides_blocks(pair, shell, window, input_from, output_from):
    base, tuned = pair
    source = {"base": tiny_llava(1), "tuned": tuned}
    with LayerTransplant(base, tuned, shell=shell) as hybrid:
        hybrid.set(window)
        for index in range(N_LAYERS):
            want = source["tuned" if index in window else "base"]
            assert torch.equal(_block_weight(base, index), _block_weight(want, index))
        assert torch.equal(
            base.model.multi_modal_projector.linear_1.weight,
            source[input_from].model.multi_modal_projector.linear_1.weight,
        )
        assert torch.equal(base.lm_head.weight, source[output_from].lm_head.weight)


def test_sweeping_windows_in_any_order_matches_fresh_hybrids(pair, items):
    base, tuned = pair
    windows = [range(2, 4), range(0, 1), range(1, 3), range(0, 4), range(3, 4)]
    with LayerTransplant(base, tuned) as hybrid:
        swept = []
        for window in windows:
            hybrid.set(window)
            swept.append(forward_logits(base, items))
    for window, logits in zip(windows, swept, strict=True):
        fresh = tiny_llava(1)
        with LayerTransplant(fresh, tuned) as hybrid:
            hybrid.set(window)
            assert torch.equal(forward_logits(fresh, items), logits)


def test_tuned_state_dict_is_accepted(pair, items):
    base, tuned = pair
    with LayerTransplant(base, tuned.state_dict()) as hybrid:
        hybrid.set(range(N_LAYERS))
        assert torch.equal(forward_logits(base, items), forward_logits(tuned, items))


def test_tied_embeddings_move_with_the_input_side(items):
    models = []
    for seed in (1, 2):
        model = tiny_llava(seed)
        model.lm_head.weight = model.model.language_model.embed_tokens.weight  # tie
        models.append(model)
    base, tuned = models
    with LayerTransplant(base, tuned) as hybrid:
        assert "lm_head.weight" in hybrid._keys["input"]
        hybrid.set(range(0, 1))  # input side tuned, output side base: the tied tensor is tuned
        assert torch.equal(base.lm_head.weight, tuned.lm_head.weight)
        hybrid.set(range(N_LAYERS))
        assert torch.equal(forward_logits(base, items), forward_logits(tuned, items))


def test_mismatched_architectures_are_refused(pair):
    base, _ = pair
    other = tiny_llava(3)
    state = other.state_dict()
    state["lm_head.weight"] = torch.zeros(7, 64)
    with pytest.raises(ValueError, match=r"'lm_head.weight' has shape \(50, 64\) in base"):
        LayerTransplant(base, state)
    del state["lm_head.weight"]
    with pytest.raises(ValueError, match=r"tuned lacks \['lm_head.weight'\]"):
        LayerTransplant(base, state)
    with pytest.raises(ValueError, match="shell must be one of"):
        LayerTransplant(base, other, shell="middle")
    with pytest.raises(TypeError, match=r"tuned must be a torch\.nn\.Module or a state dict"):
        LayerTransplant(base, 3)


def test_bad_block_indices_are_refused(pair):
    base, tuned = pair
    hybrid = LayerTransplant(base, tuned)
    with pytest.raises(ValueError, match="blocks holds block 4, outside the model's 4 decoder"):
        hybrid.set([4])
    with pytest.raises(TypeError, match="blocks must hold ints"):
        hybrid.set([1.5])


def test_block_windows():
    assert block_windows(3) == [range(0, 0), range(0, 1), range(0, 2), range(0, 3)]
    assert block_windows(6, mode="sliding", width=2, stride=2) == [
        range(0, 2),
        range(2, 4),
        range(4, 6),
    ]
    assert block_windows(5, mode="sliding", width=5) == [range(0, 5)]
    with pytest.raises(ValueError, match="width must be an int in \\[1, 4\\]"):
        block_windows(4, mode="sliding", width=5)
    with pytest.raises(ValueError, match="width applies to mode='sliding' only"):
        block_windows(4, width=2)
    with pytest.raises(ValueError, match="mode must be"):
        block_windows(4, mode="window")

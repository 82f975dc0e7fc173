"""Freezing: exactly the window (and the projector when asked) trains; the rest stays unchanged."""

from __future__ import annotations

import pytest
import torch
from _tiny_models import tiny_llama_config
from transformers import LlamaForCausalLM

from geomalign.tuning import PARTS, set_trainable, train_model, trainable_parameters

from .conftest import N_LAYERS


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _expected(name: str, blocks: list[int], projector: bool) -> bool:
    in_window = any(name.startswith(f"model.language_model.layers.{b}.") for b in blocks)
    return in_window or (projector and name.startswith("model.multi_modal_projector."))


@pytest.mark.parametrize(("blocks", "projector"), [([1, 2], False), ([3], True), ([], True)])
def test_only_the_window_trains_and_the_rest_is_unchanged(llava, examples, blocks, projector):
    report = set_trainable(llava, blocks=blocks, projector=projector)
    before = _snapshot(llava)
    for name, param in llava.named_parameters():
        assert param.requires_grad == _expected(name, blocks, projector), name
    result = train_model(llava, examples, steps=2, lr=1e-2, batch_size=8, progress=False)
    assert result.n_trainable == report.n_trainable
    for name, param in llava.named_parameters():
        changed = not torch.equal(param, before[name])
        if _expected(name, blocks, projector):
            # every weight matrix of a trained part moves (norm gains may stay put early)
            assert changed or param.ndim == 1, f"{name} did not train"
        else:
            assert not changed, f"{name} changed although frozen"


def test_report_counts_every_part(llava):
    layers = llava.model.language_model.layers
    block_size = sum(p.numel() for p in layers[0].parameters())
    projector_size = sum(p.numel() for p in llava.model.multi_modal_projector.parameters())
    report = set_trainable(llava, blocks=range(1, 3), projector=True)
    assert report.blocks == (1, 2)
    assert report.n_trainable == 2 * block_size + projector_size
    assert report.by_part["blocks"] == (2 * block_size, N_LAYERS * block_size)
    assert report.by_part["projector"] == (projector_size, projector_size)
    assert report.by_part["vision"][0] == 0
    assert list(report.by_part) == [p for p in PARTS if p in report.by_part]
    assert sum(total for _, total in report.by_part.values()) == report.n_total
    assert report.n_total == sum(p.numel() for p in llava.parameters())
    assert report.fraction == pytest.approx(report.n_trainable / report.n_total)
    assert trainable_parameters(llava) == report


def test_full_stage2_trains_everything_but_the_vision_tower(llava):
    report = set_trainable(llava, blocks="all", projector=True, embeddings=True, head=True)
    for name, param in llava.named_parameters():
        assert param.requires_grad == (not name.startswith("model.vision_tower.")), name
    assert report.blocks == tuple(range(N_LAYERS))
    assert "other" not in report.by_part
    assert report.by_part["head"][0] == report.by_part["head"][1] > 0


def test_a_second_call_replaces_the_first(llava):
    set_trainable(llava, blocks="all", projector=True, embeddings=True, head=True)
    report = set_trainable(llava, blocks=[0])
    assert report.blocks == (0,)
    assert report.by_part["projector"][0] == report.by_part["embeddings"][0] == 0


def test_text_only_models_work_and_have_no_projector():
    torch.manual_seed(0)
    llm = LlamaForCausalLM(tiny_llama_config(n_blocks=3))
    report = set_trainable(llm, blocks=[2], head=True)
    assert report.blocks == (2,)
    assert "vision" not in report.by_part
    assert "projector" not in report.by_part
    with pytest.raises(ValueError, match="projector=True but LlamaForCausalLM has none"):
        set_trainable(llm, blocks=[0], projector=True)


@pytest.mark.parametrize(
    ("blocks", "error", "match"),
    [
        ([N_LAYERS], ValueError, f"outside the model's {N_LAYERS} decoder blocks"),
        ("some", TypeError, "blocks must be a range or a sequence"),
        ([1.5], TypeError, "blocks must hold ints"),
        (3, TypeError, "blocks must be a range or a sequence"),
    ],
)
def test_bad_windows_are_rejected(llava, blocks, error, match):
    with pytest.raises(error, match=match):
        set_trainable(llava, blocks=blocks)

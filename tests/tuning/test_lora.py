"""LoRA restricted to a window of decoder blocks (skipped without peft)."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from geomalign.tuning import lora_window, train_model, trainable_parameters

from .conftest import make_llava


def _block_of(name: str) -> int | None:
    match = re.search(r"language_model\.layers\.(\d+)\.", name)
    return None if match is None else int(match.group(1))


def test_adapters_sit_in_the_window_only_and_only_they_train(examples):
    pytest.importorskip("peft")
    model = lora_window(make_llava(), range(1, 3), rank=2)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    adapted = {n for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert adapted, "no adapter was added"
    assert {_block_of(n) for n in adapted} == {1, 2}
    assert not any("vision_tower" in n for n in adapted)
    # every linear layer of a window block is adapted: q, k, v, o, gate, up, down
    assert len(adapted) == 2 * 7
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(".lora_" in n and _block_of(n) in (1, 2) for n in trainable)

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    train_model(model, examples, steps=2, lr=1e-2, batch_size=8, progress=False)
    for name, param in model.named_parameters():
        if name in base:
            assert torch.equal(param, base[name]), f"{name} changed although frozen"
        elif ".lora_B." in name:  # zero at initialisation, so any training moves it
            assert not torch.equal(param, before[name]), f"{name} did not train"


def test_report_and_projector_option():
    pytest.importorskip("peft")
    model = make_llava()
    projector_size = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    wrapped = lora_window(model, [3], rank=4, projector=True, target_modules=["self_attn.q_proj"])
    report = trainable_parameters(wrapped)
    hidden = 16
    assert report.blocks == (3,)
    assert report.by_part["blocks"][0] == 2 * 4 * hidden  # A (4 x 16) and B (16 x 4) of q_proj
    assert report.by_part["projector"][0] == projector_size
    assert report.by_part["vision"][0] == 0
    assert report.n_trainable == 2 * 4 * hidden + projector_size


def test_initialisation_follows_random_state():
    pytest.importorskip("peft")

    def adapters(seed: int) -> list[torch.Tensor]:
        wrapped = lora_window(make_llava(), [0], rank=2, random_state=seed)
        return [p.detach() for n, p in wrapped.named_parameters() if ".lora_A." in n]

    first, again, other = adapters(0), adapters(0), adapters(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("blocks", "kwargs", "match"),
    [
        ([], {}, "blocks is empty"),
        ([0], {"rank": 0}, "rank must be a positive number"),
        ([0], {"target_modules": ["self_attn.out_proj"]}, "must name linear layers"),
        ([0], {"target_modules": "q_proj"}, "sequence of names"),
    ],
)
def test_bad_options_are_rejected(blocks, kwargs, match):
    pytest.importorskip("peft")
    with pytest.raises((ValueError, TypeError), match=match):
        lora_window(make_llava(), blocks, **kwargs)


def test_missing_peft_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"geomalign\[lora\]"):
        lora_window(make_llava(), [0])

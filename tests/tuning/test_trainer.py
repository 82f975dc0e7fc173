"""Fine-tuning a tiny LLaVA with the Trainer: what changes, the loss, LoRA's scope, resuming."""

from __future__ import annotations

import functools
import re
import shutil

import pytest
import torch

from geomalign.tuning import (
    InstructionDataset,
    evaluate_instructions,
    finetune,
    parse_window,
    prepare_window,
)

LM_BLOCK = re.compile(r"language_model\.layers\.(\d+)\.")


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _run(model, processor, rows, tmp_path, **options):
    options = {"steps": 4, "lr": 5e-3, "batch_size": 4, "device": "cpu"} | options
    return finetune(
        model,
        InstructionDataset(rows, processor),
        output_dir=tmp_path,
        pad_token_id=processor.tokenizer.pad_token_id,
        **options,
    )


def test_window_run_changes_exactly_the_window(instruct_llava, instruct_rows, tmp_path):
    model, processor = instruct_llava
    before = _weights(model)
    result = _run(model, processor, instruct_rows, tmp_path, blocks=range(1, 3))
    assert result.blocks == (1, 2)
    assert result.stop_below == 1
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    in_window = {n for n in before if (m := LM_BLOCK.search(n)) and int(m.group(1)) in (1, 2)}
    assert changed == in_window
    assert result.trainable.n_trainable == sum(before[n].numel() for n in in_window)
    # AdamW keeps two float32 moments per trained weight, and a step counter per tensor
    assert result.state["optimizer_state_bytes"] >= 2 * result.state["trainable_bytes"]


def test_full_run_trains_everything_but_the_vision_tower(instruct_llava, instruct_rows, tmp_path):
    model, processor = instruct_llava
    before = _weights(model)
    result = _run(model, processor, instruct_rows, tmp_path, blocks="all", steps=2)
    frozen = {n for n, p in model.named_parameters() if torch.equal(p, before[n])}
    assert frozen == {n for n in before if "vision_tower" in n}
    assert result.stop_below is None
    assert result.trainable.by_part["vision"][0] == 0


def test_loss_falls_and_is_measured_before_and_after(instruct_llava, instruct_rows, tmp_path):
    model, processor = instruct_llava
    evaluate = functools.partial(evaluate_instructions, rows=instruct_rows[:6], processor=processor)
    result = _run(
        model, processor, instruct_rows, tmp_path, blocks=range(0, 4), steps=12, evaluate=evaluate
    )
    assert result.after["response_loss"] < result.before["response_loss"] - 0.3
    assert 0.0 <= result.after["exact_match"] <= 1.0
    assert result.losses[-1] < result.losses[0]
    assert result.tokens > 12 * 4 * 20  # every row has 16 image tokens and a prompt
    assert result.costs.wall_time > 0
    assert result.costs.peak_memory > 0


def test_lora_adapts_only_the_language_models_window(instruct_llava, instruct_rows, tmp_path):
    pytest.importorskip("peft")
    model, processor = instruct_llava
    # the vision tower also has blocks 0 and 1 with q/k/v_proj: they must stay untouched
    before = _weights(model)
    result = _run(
        model, processor, instruct_rows, tmp_path, blocks=range(0, 2), method="lora", lora_rank=2
    )
    wrapped = result.model
    adapted = {n for n, _ in wrapped.named_modules() if n.endswith(".lora_A")}
    assert adapted
    assert not any("vision_tower" in n for n in adapted)
    assert {int(LM_BLOCK.search(n).group(1)) for n in adapted} == {0, 1}
    merged = wrapped.merge_and_unload()
    changed = {n for n, p in merged.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    assert all(int(LM_BLOCK.search(n).group(1)) in (0, 1) for n in changed)


def test_backward_stops_below_the_window_even_with_checkpointing(
    instruct_llava, instruct_rows, tmp_path
):
    """Gradient checkpointing makes the embeddings require grad; the window's input is cut."""
    calls = {"stopped": 0, "not stopped": 0}
    for label, stop in (("stopped", True), ("not stopped", False)):
        model, processor = instruct_llava
        layers = model.model.language_model.layers
        hook = layers[1].register_full_backward_hook(
            lambda *_, label=label: calls.__setitem__(label, calls[label] + 1)
        )
        _run(
            model, processor, instruct_rows, tmp_path / label, blocks=range(2, 4), steps=2,
            gradient_checkpointing=True, stop_gradient=stop,
        )  # fmt: skip
        hook.remove()
    assert calls == {"stopped": 0, "not stopped": 2}


def test_resumed_run_equals_uninterrupted_run(instruct_tokenizer, instruct_rows, tmp_path):
    from _tiny_models import tiny_instruct_llava

    options = {"blocks": range(1, 4), "steps": 4, "save_steps": 2, "batch_size": 2}
    model, processor = tiny_instruct_llava(instruct_tokenizer)
    _run(model, processor, instruct_rows, tmp_path / "whole", **options)
    # a run killed after step 2: only its first checkpoint exists
    (tmp_path / "killed").mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / "killed" / "checkpoint-2")
    resumed, processor = tiny_instruct_llava(instruct_tokenizer)
    result = _run(resumed, processor, instruct_rows, tmp_path / "killed", resume=True, **options)
    assert result.steps == 4
    for (name, a), b in zip(model.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_windows_are_inclusive_and_checked():
    assert parse_window("6-16") == range(6, 17)
    assert parse_window("3") == range(3, 4)
    with pytest.raises(ValueError, match="inclusive"):
        parse_window("6:16")
    with pytest.raises(ValueError, match="the model has 4 decoder blocks"):
        parse_window("2-4", 4)


def test_window_options_are_checked(instruct_llava):
    model, _ = instruct_llava
    with pytest.raises(ValueError, match="method must be one of"):
        prepare_window(model, range(2), method="adapter")
    with pytest.raises(ValueError, match="blocks is empty"):
        prepare_window(model, [])
    # the projector's gradient needs the blocks below the window: no stop then
    assert prepare_window(model, range(2, 4), projector=True).stop_below is None

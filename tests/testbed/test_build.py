"""Building the small testbed: checkpoints, metrics, reload, determinism, cache behaviour."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    LlavaForConditionalGeneration,
)

from geomalign.testbed import (
    CHECKPOINTS,
    Testbed,
    TestbedConfig,
    build_testbed,
    default_cache_dir,
    evaluate_checkpoint,
    evaluate_vlm,
)
from geomalign.testbed import build as build_module


def test_checkpoints_load_back_by_path(small_testbed):
    assert small_testbed.config == TestbedConfig.small()
    assert small_testbed.root.name == small_testbed.config.fingerprint()
    llm = AutoModelForCausalLM.from_pretrained(small_testbed.llm)
    assert llm.config.num_hidden_layers >= 6
    assert AutoTokenizer.from_pretrained(small_testbed.llm).image_token == "<image>"
    for folder in (small_testbed.base, small_testbed.tuned):
        model = LlavaForConditionalGeneration.from_pretrained(folder)
        processor = AutoProcessor.from_pretrained(folder)
        assert model.config.text_config.num_hidden_layers == llm.config.num_hidden_layers
        assert processor.tokenizer.image_token_id == model.config.image_token_id
    for name in CHECKPOINTS:
        summary = json.loads((small_testbed.root / name / "metrics.json").read_text())
        assert summary["metrics"] == small_testbed.metrics[name]
        assert summary["training"]["steps"] >= 1


def test_stage_2_beats_stage_1_on_held_out_questions(small_testbed):
    base, tuned = small_testbed.metrics["base"], small_testbed.metrics["tuned"]
    assert tuned["qa_accuracy"] > base["qa_accuracy"] + 0.15
    assert tuned["caption_token_accuracy"] > base["caption_token_accuracy"]
    kinds = {k for k in tuned if k.startswith("qa_accuracy/")}
    assert kinds == {
        f"qa_accuracy/{k}" for k in ("colour", "shape", "size", "position", "count", "relation")
    }


def test_stage_1_trains_only_the_projector_and_stage_2_freezes_vision(small_testbed):
    llm = AutoModelForCausalLM.from_pretrained(small_testbed.llm)
    base = LlavaForConditionalGeneration.from_pretrained(small_testbed.base)
    tuned = LlavaForConditionalGeneration.from_pretrained(small_testbed.tuned)

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))

    assert same(base.model.language_model, llm.model)
    assert same(base.lm_head, llm.lm_head)
    assert same(base.model.vision_tower, tuned.model.vision_tower)
    assert not same(base.model.language_model, tuned.model.language_model)
    assert not same(base.model.multi_modal_projector, tuned.model.multi_modal_projector)


@pytest.fixture(scope="module")
def data(small_testbed):
    return small_testbed.data()


@pytest.mark.parametrize("name", ["base", "tuned"])
def test_reloaded_checkpoint_gives_identical_logits(small_testbed, data, name):
    folder = getattr(small_testbed, name)
    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    batch = data.qa_eval.batch(range(4))
    batch.pop("labels")
    with torch.inference_mode():
        logits = model(**batch).logits.numpy()
    np.testing.assert_array_equal(logits, np.load(folder / "reference_logits.npy"))


def test_reloaded_checkpoint_reproduces_its_metrics(small_testbed, data):
    model = LlavaForConditionalGeneration.from_pretrained(small_testbed.tuned)
    recorded = small_testbed.metrics["tuned"]
    scores = evaluate_vlm(model, data)
    assert scores == {k: v for k, v in recorded.items() if k != "final_loss"}
    text = evaluate_checkpoint(small_testbed.llm, data)
    assert text == {k: v for k, v in small_testbed.metrics["llm"].items() if k != "final_loss"}


def test_same_seed_gives_the_same_weights(small_testbed, tmp_path):
    again = build_testbed(TestbedConfig.small(), cache_dir=tmp_path, progress=False)
    assert again.root != small_testbed.root
    assert again.metrics == small_testbed.metrics
    for name in CHECKPOINTS:
        first = load_file(small_testbed.root / name / "model.safetensors")
        second = load_file(again.root / name / "model.safetensors")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


def test_cached_build_is_reused(small_testbed):
    manifest = small_testbed.root / "testbed.json"
    stamp = manifest.stat().st_mtime_ns
    again = build_testbed(TestbedConfig.small(), cache_dir=small_testbed.root.parent)
    assert again == small_testbed
    assert manifest.stat().st_mtime_ns == stamp


@pytest.fixture
def counted_builds(monkeypatch):
    """Replace the training by a stub that writes only the manifest, and count its calls."""
    calls = []

    def fake_build(config, out, device, progress):
        calls.append(out)
        manifest = {"config": config.__dict__, "metrics": {"tuned": {"qa_accuracy": len(calls)}}}
        (out / "testbed.json").write_text(json.dumps(manifest))

    monkeypatch.setattr(build_module, "_build", fake_build)
    return calls


def test_incomplete_or_forced_builds_are_rebuilt(counted_builds, tmp_path):
    config = TestbedConfig.small(seed=7)
    killed = tmp_path / f".{config.fingerprint()}.partial-killed"  # a build killed mid-way
    (killed / "llm").mkdir(parents=True)
    first = build_testbed(config, cache_dir=tmp_path)
    assert len(counted_builds) == 1
    assert isinstance(first, Testbed)
    assert build_testbed(config, cache_dir=tmp_path).metrics == first.metrics
    assert len(counted_builds) == 1
    (first.root / "testbed.json").unlink()  # an interrupted copy: no completion marker
    (first.root / "leftover").write_text("x")
    rebuilt = build_testbed(config, cache_dir=tmp_path)
    assert len(counted_builds) == 2
    assert not (rebuilt.root / "leftover").exists()
    forced = build_testbed(config, cache_dir=tmp_path, overwrite=True)
    assert len(counted_builds) == 3
    assert forced.metrics["tuned"]["qa_accuracy"] == 3
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [first.root.name]


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOMALIGN_CACHE", str(tmp_path / "g"))
    assert default_cache_dir() == tmp_path / "g" / "testbed"
    monkeypatch.delenv("GEOMALIGN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "geomalign" / "testbed"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_cache_dir() == tmp_path / "h" / ".cache" / "geomalign" / "testbed"


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="config must be a TestbedConfig"):
        build_testbed({"seed": 0}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        build_testbed(TestbedConfig.small(), cache_dir=tmp_path, num_threads=0)
    with pytest.raises(ValueError, match=r"has no config\.json"):
        evaluate_checkpoint(tmp_path, None)

"""Captions beyond the model's context: cut at tokenisation to fit, with a warning or an error."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from geomalign.data import PairedDataset
from geomalign.extract import TextAdapter, encode_captions, extract
from geomalign.extract.vlm import LLAVA_TEXT_TEMPLATE
from geomalign.store import ActivationStore

HUGE = "a tabby cat looking to the left " * 12_500  # 400,000 characters


def test_a_huge_caption_is_cut_to_the_context(tokenizer):
    short = "a cup of coffee on a saucer"
    batch = encode_captions(tokenizer, [short, HUGE], template=LLAVA_TEXT_TEMPLATE, max_length=64)
    lengths = batch.attention_mask.sum(1).tolist()
    assert lengths[1] <= 64  # the prompt fits (a re-merge at the cut may free one position)
    assert lengths[1] >= 62
    assert list(batch.truncated) == [1]
    assert "caption of 400,000 characters truncated to its first" in batch.truncated[1]
    # the template survives whole: the prompt still ends with "\nASSISTANT:"
    ids = batch.inputs["input_ids"][1, : lengths[1]].tolist()
    tail = tokenizer("\nASSISTANT:", add_special_tokens=False)["input_ids"]
    assert ids[-len(tail) :] == tail
    # the kept caption is a prefix of the caption and its tokens are the region
    kept = tokenizer.decode(ids, skip_special_tokens=True)
    assert kept.startswith("USER: a tabby cat looking to the left a tabby")
    assert int(batch.region[1].sum()) == lengths[1] - len(tail) - 3  # minus <s>, "USER", ":"
    # a caption that fits is untouched
    alone = encode_captions(tokenizer, [short], template=LLAVA_TEXT_TEMPLATE, max_length=64)
    width = int(alone.attention_mask.sum())
    np.testing.assert_array_equal(
        batch.inputs["input_ids"][0, :width], alone.inputs["input_ids"][0]
    )
    assert alone.truncated == {}


def test_a_template_without_room_is_an_error(tokenizer):
    with pytest.raises(ValueError, match=r"alone takes \d+ tokens, leaving no room"):
        encode_captions(tokenizer, [HUGE], template=LLAVA_TEXT_TEMPLATE, max_length=4)


def test_the_context_is_the_models_positions(llm_dir):
    adapter = TextAdapter.from_pretrained(llm_dir, device="cpu")
    assert adapter.max_length == 256  # the tiny Llama's max_position_embeddings


def test_extraction_warns_or_refuses_naming_the_sample(llm_dir, tmp_path, caplog):
    pairs = PairedDataset(["ok", "huge"], ["a green triangle", HUGE], source="long.jsonl")
    out = tmp_path / "acts.h5"
    with caplog.at_level(logging.WARNING):
        result = extract(llm_dir, pairs, out, checkpoint_name="llm", layers=[0, 3], progress=False)
    assert result.n_encoded == 2
    assert "long.jsonl: sample 'huge': caption of 400,000 characters truncated" in caplog.text
    with ActivationStore(out) as store:
        assert store.view_info("llm", "text", "last").complete
    with pytest.raises(ValueError, match=r"long.jsonl: sample 'huge': .* would be truncated"):
        extract(
            llm_dir,
            pairs,
            tmp_path / "refused.h5",
            checkpoint_name="llm",
            layers=[0],
            long_captions="error",
            progress=False,
        )


def test_captions_only_dataset_extracts_text_views(llava_dir, tmp_path, caplog):
    pairs = PairedDataset(["c0", "c1"], ["a green triangle", "a red circle"], source="caps")
    with caplog.at_level(logging.WARNING):
        result = extract(llava_dir, pairs, tmp_path / "a.h5", checkpoint_name="m", progress=False)
    assert {m for m, _ in result.views} == {"text"}
    assert "caps holds captions only: extracting the text views" in caplog.text
    with pytest.raises(ValueError, match=r"caps holds captions only; the 'image' view needs"):
        extract(
            llava_dir,
            pairs,
            tmp_path / "b.h5",
            checkpoint_name="m",
            modalities=["image"],
            progress=False,
        )

"""The joint view: image and caption in one prompt, pooled three ways from one forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomalign.data import PairedDataset
from geomalign.extract import LLAVA_JOINT_TEMPLATE, VLMAdapter, extract
from geomalign.store import ActivationStore

TOL = {"rtol": 1e-4, "atol": 1e-5}
POOLINGS = ["mean", "last", "first", "none"]


@pytest.fixture(scope="module")
def joint(llava_dir, pairs, tmp_path_factory):
    adapter = VLMAdapter.from_pretrained(llava_dir, device="cpu")
    path = tmp_path_factory.mktemp("joint") / "acts.h5"
    result = extract(
        adapter,
        pairs,
        path,
        checkpoint_name="m",
        modalities=["joint"],
        poolings=POOLINGS,
        batch_size=4,
        progress=False,
    )
    return adapter, path, result


def test_one_forward_pass_fills_image_text_and_last_views(joint, pairs, tokenizer):
    adapter, path, result = joint
    assert result.n_encoded == len(pairs)  # one joint prompt per sample
    assert sorted(result.views) == sorted(
        [
            ("joint-image", "mean"),
            ("joint-text", "mean"),
            ("joint", "last"),
            ("joint", "first"),
            ("joint-image", "none"),
            ("joint-text", "none"),
        ]
    )
    token = adapter.processor.image_token
    with ActivationStore(path) as store:
        for i, caption in enumerate(pairs.captions):
            image = pairs.image(i)
            prompt = LLAVA_JOINT_TEMPLATE.replace("{image}", token).replace("{caption}", caption)
            inputs = adapter.processor(images=[image], text=[prompt], return_tensors="pt")
            with torch.inference_mode():
                states = adapter.model(**inputs, output_hidden_states=True).hidden_states
            ids = inputs["input_ids"][0]
            image_part = (ids == adapter.model.config.image_token_id).numpy()
            text_offsets = np.diff(store.row_offsets("m", "joint-text", "none"))
            for layer, h in enumerate(s[0].numpy() for s in states):

                def row(modality, pooling, layer=layer, i=i):
                    return store.read("m", modality, pooling, layer, ids=[pairs.ids[i]])

                np.testing.assert_allclose(row("joint", "last")[0], h[-1], **TOL)
                np.testing.assert_allclose(row("joint", "first")[0], h[0], **TOL)
                np.testing.assert_allclose(
                    row("joint-image", "mean")[0], h[image_part].mean(0), **TOL
                )
                text_rows = row("joint-text", "none")
                np.testing.assert_allclose(row("joint-text", "mean")[0], text_rows.mean(0), **TOL)
            # the text part is exactly the caption's tokens, after the image's
            encoded = adapter.encode("joint", [(image, caption)])
            text_ids = encoded.inputs["input_ids"][0][encoded.regions["text"][0]]
            assert tokenizer.decode(text_ids).strip() == caption
            assert int(encoded.regions["text"][0].sum()) == text_offsets[i]
            assert not (encoded.regions["text"] & encoded.regions["image"]).any()
            assert int(encoded.regions["image"][0].sum()) == int(image_part.sum()) == 16


def test_joint_captions_are_cut_to_the_context(joint, pairs):
    adapter = joint[0]
    huge = "a tabby cat looking to the left " * 2_000
    batch = adapter.encode("joint", [(pairs.image(0), huge), (pairs.image(1), "a cup")])
    assert int(batch.attention_mask[0].sum()) <= adapter.max_length == 256
    assert int(batch.regions["image"][0].sum()) == 16  # the image is never cut
    assert list(batch.truncated) == [0]
    assert "caption of 64,000 characters truncated" in batch.truncated[0]


def test_joint_view_of_llava_next_and_bad_templates(llava_next_dir, llava_dir, pairs):
    adapter = VLMAdapter.from_pretrained(llava_next_dir, device="cpu")
    batch = adapter.encode("joint", [(pairs.image(i), pairs.captions[i]) for i in range(3)])
    counts = batch.regions["image"].sum(1)
    single = [int(adapter.encode("image", [pairs.image(i)]).region.sum()) for i in range(3)]
    assert counts.tolist() == single  # image token counts vary with the image's shape
    assert (batch.regions["text"].sum(1) > 0).all()
    with pytest.raises(ValueError, match=r"must hold \{image\} before \{caption\}"):
        VLMAdapter.from_pretrained(
            llava_dir, device="cpu", joint_template="USER: {caption} {image}\nASSISTANT:"
        )
    with pytest.raises(TypeError, match=r"joint view needs \(PIL image, caption\) pairs"):
        adapter.encode("joint", ["just a caption"])


def test_captions_only_dataset_has_no_joint_view(llava_dir, tmp_path):
    pairs = PairedDataset(["a"], ["a caption"], source="caps")
    with pytest.raises(ValueError, match=r"caps holds captions only; the 'joint' view needs"):
        extract(llava_dir, pairs, tmp_path / "a.h5", checkpoint_name="m", modalities=["joint"])


def test_the_two_halves_of_one_prompt_are_analysed(joint):
    from geomalign.analysis import analyze_store

    table = analyze_store(
        joint[1],
        measures=["cka-linear"],
        image=("joint-image", "mean"),
        text=("joint-text", "mean"),
    )
    rows = table.select(measure="cka-linear")
    assert len(rows) > 0
    assert np.isfinite(rows.column("value")).all()

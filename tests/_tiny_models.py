"""Tiny random model configurations shared by the intervention, tuning and testbed tests.

Built from configs, offline: a Llama decoder, a LLaVA (and a LLaVA-NeXT) joining it to a
one-layer CLIP tower, and a testbed configuration that builds real checkpoints in seconds.
"""

from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaNextConfig

from geomalign.testbed import TestbedConfig


def tiny_llama_config(
    *, hidden_size: int = 16, n_blocks: int = 4, n_heads: int = 2, vocab_size: int = 40
) -> LlamaConfig:
    """A Llama decoder with an MLP twice its width, 2 key/value heads and padding id 0."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=n_blocks,
        num_attention_heads=n_heads,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )


def tiny_llava_config(
    *,
    text_hidden_size: int,
    text_heads: int,
    vision_hidden_size: int,
    vocab_size: int,
    image_size: int,
    patch_size: int,
    n_blocks: int = 4,
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "default",
) -> LlavaConfig:
    """A LLaVA: one-layer CLIP tower, MLP projector, :func:`tiny_llama_config` decoder.

    The image token is the last id of the vocabulary; an image gives one token per patch, plus
    one for the CLS token with ``vision_feature_select_strategy="full"``.
    """
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=2 * vision_hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = tiny_llama_config(
        hidden_size=text_hidden_size, n_blocks=n_blocks, n_heads=text_heads, vocab_size=vocab_size
    )
    n_image_tokens = (image_size // patch_size) ** 2 + (vision_feature_select_strategy == "full")
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=vocab_size - 1,
        image_seq_length=n_image_tokens,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
    )


#: Image grids of :func:`tiny_llava_next_config`, in pixels.
NEXT_GRID_PINPOINTS = [[16, 32], [32, 16], [32, 32]]


def tiny_llava_next_config(*, vocab_size: int, n_blocks: int = 4) -> LlavaNextConfig:
    """A LLaVA-NeXT over 16-pixel tiles of 8-pixel patches: the number of image tokens depends on
    the image's size (anyres grids of :data:`NEXT_GRID_PINPOINTS`). Image token: the last id."""
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
    )
    text = tiny_llama_config(hidden_size=64, n_blocks=n_blocks, n_heads=4, vocab_size=vocab_size)
    return LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=vocab_size - 1,
        image_grid_pinpoints=NEXT_GRID_PINPOINTS,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )


#: A testbed far smaller than the "small" preset: it trains nothing useful, but builds real
#: checkpoints in a few seconds.
TINY_TESTBED = TestbedConfig(
    n_train=48,
    n_test=16,
    vision_hidden_size=16,
    vision_heads=2,
    text_hidden_size=16,
    text_heads=2,
    text_intermediate_size=32,
    batch_size=16,
    lm_steps=2,
    vision_steps=2,
    stage1_steps=2,
    stage2_steps=2,
)


#: LLaVA's special tokens, in id order: ``<image>`` is id 4.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")


def tiny_tokenizer(corpus: list[str], *, vocab_size: int = 320):
    """A byte-level BPE trained on ``corpus`` (offline), with LLaVA's special tokens.

    It puts ``<s>`` before every text, as Llama's tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def tiny_llava_processor(tokenizer, *, image_size: int, patch_size: int):
    """A LLaVA-1.5 processor: CLIP image processing to ``image_size`` px, CLS token dropped."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    side = {"height": image_size, "width": image_size}
    return LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size=side),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


#: Colours of the tiny instruction set's images: each image is one flat colour.
INSTRUCT_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_instruction_set(folder, *, n_rows: int = 12):
    """Flat-colour PNG images and a LLaVA conversation JSON about them, under ``folder``.

    Row ``i`` shows colour ``i % 3``; it asks for the colour and, in every other row, a second
    round asks for its opposite word. Returns the JSON file's path (images under
    ``folder/images``, named relative to ``folder``).
    """
    import json
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = list(INSTRUCT_COLOURS)
    rows = []
    for i in range(n_rows):
        name = names[i % len(names)]
        Image.new("RGB", (20, 20), INSTRUCT_COLOURS[name]).save(folder / "images" / f"{i}.png")
        turns = [
            {"from": "human", "value": "<image>\nwhat colour is the image?"},
            {"from": "gpt", "value": name},
        ]
        if i % 2:
            turns += [
                {"from": "human", "value": "and the colour after it?"},
                {"from": "gpt", "value": names[(i + 1) % len(names)]},
            ]
        rows.append({"id": f"c{i}", "image": f"images/{i}.png", "conversations": turns})
    path = folder / "train.json"
    path.write_text(json.dumps(rows, indent=1))
    return path


#: Texts the tiny instruction tokenizer is trained on.
INSTRUCT_CORPUS = [
    "USER: what colour is the image? ASSISTANT: red</s>",
    "USER: and the colour after it? ASSISTANT: green blue</s>",
] * 4


def tiny_instruct_llava(tokenizer, *, n_blocks: int = 4, hidden_size: int = 32, seed: int = 0):
    """A LLaVA-1.5 for the instruction tokenizer: 2-layer CLIP tower (16 px, 4 px patches).

    Returns ``(model, processor)``; an image gives 16 image tokens (CLS dropped).
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    config = tiny_llava_config(
        text_hidden_size=hidden_size,
        text_heads=2,
        vision_hidden_size=16,
        vocab_size=len(tokenizer),
        image_size=16,
        patch_size=4,
        n_blocks=n_blocks,
    )
    config.vision_config.num_hidden_layers = 2
    config.image_token_index = tokenizer.convert_tokens_to_ids("<image>")
    config.image_seq_length = 16
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(config.text_config, key, getattr(tokenizer, key))
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    return model, tiny_llava_processor(tokenizer, image_size=16, patch_size=4)

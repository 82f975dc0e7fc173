"""The word-level tokenizer, the image processor and the prompt templates of the testbed."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import CLIPImageProcessorPil, LlavaProcessor, PreTrainedTokenizerFast

from geomalign.data.shapes import shapes_vocabulary
from geomalign.testbed.config import TestbedConfig

__all__ = [
    "CAPTION_INSTRUCTION",
    "IMAGE_TOKEN",
    "build_processor",
    "build_tokenizer",
    "chat_prompt",
    "plain_prompt",
]

IMAGE_TOKEN = "<image>"
#: Special tokens in id order: padding, unknown word, begin and end of sequence, image placeholder.
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN)
#: The instruction that asks a tuned VLM for a caption.
CAPTION_INSTRUCTION = "describe the image."
# Words of the prompt templates, beside the shapes world's own words.
_TEMPLATE_WORDS = ("user", "assistant", ":", ".", "describe", "image")

_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %} "
    "{% else %}ASSISTANT: "
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}</s>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def chat_prompt(instruction: str, *, image: bool = True) -> str:
    """The LLaVA-1.5 conversation prompt: ``"USER: <image>\\n{instruction} ASSISTANT:"``.

    With ``image=False`` the image placeholder is left out (a text-only question).
    """
    if image:
        return f"USER: {IMAGE_TOKEN}\n{instruction} ASSISTANT:"
    return f"USER: {instruction} ASSISTANT:"


def plain_prompt() -> str:
    """The LLaVA stage-1 ("plain") prompt: the image placeholder alone, the caption follows."""
    return f"{IMAGE_TOKEN}\n"


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer over the shapes world and the prompt templates.

    Words split on white space and punctuation; every sequence starts with ``<s>``. The image
    placeholder is a special token, reachable as ``tokenizer.image_token``. The vocabulary is
    fixed by the grammar of :mod:`geomalign.data.shapes`, not by any sample, so it never depends
    on a seed.
    """
    words = sorted(set(shapes_vocabulary()) | set(_TEMPLATE_WORDS))
    vocabulary = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocabulary["<s>"])]
    )
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=128,
        padding_side="right",
    )


def build_processor(config: TestbedConfig) -> LlavaProcessor:
    """The LLaVA processor of ``config``: CLIP image preprocessing and :func:`build_tokenizer`.

    Images are resized to ``config.image_size`` (no crop) and normalised with the CLIP mean and
    standard deviation; each ``<image>`` in a prompt expands to ``config.n_image_tokens``
    placeholders (one per patch). The processor carries a chat template that renders the
    conversation prompt of :func:`chat_prompt`.
    """
    side = {"height": config.image_size, "width": config.image_size}
    image_processor = CLIPImageProcessorPil(size=side, crop_size=side, do_center_crop=False)
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_CHAT_TEMPLATE,
    )

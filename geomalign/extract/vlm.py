"""Vision-language models of transformers' image-text-to-text family (LLaVA-1.5, NeXT, ...)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

from geomalign.extract._base import EncodedBatch, check_template, fill_template
from geomalign.extract._hf import HFAdapter
from geomalign.extract.text import context_length, encode_captions

__all__ = ["LLAVA_IMAGE_TEMPLATE", "LLAVA_TEXT_TEMPLATE", "VLMAdapter"]

#: LLaVA-1.5's conversation format with the image alone as the user turn.
LLAVA_IMAGE_TEMPLATE = "USER: {image}\nASSISTANT:"
#: The same format with the caption alone as the user turn.
LLAVA_TEXT_TEMPLATE = "USER: {caption}\nASSISTANT:"


class VLMAdapter(HFAdapter):
    """The language model of a vision-language model, seen through two prompts per pair.

    The image view is an image-only prompt (``image_template``, no caption); its region is the
    image-placeholder tokens, which hold the projected vision features. The text view is a
    caption-only prompt (``text_template``, no image); its region is the caption's tokens. Both
    return the language model's hidden states: layer 0 is the input of the first decoder block
    (token embeddings with the image features merged in), layer ``l`` the output of block ``l``
    (the last one after the final norm, as transformers reports it).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An image-text-to-text model such as ``LlavaForConditionalGeneration``,
        ``LlavaNextForConditionalGeneration`` or ``LlavaOnevisionForConditionalGeneration``.
        Put in eval mode.
    processor : transformers.ProcessorMixin
        Its processor, with an ``image_token`` and a fast tokenizer.
    image_template : str, default=LLAVA_IMAGE_TEMPLATE
        Prompt with one ``{image}`` placeholder (replaced by the processor's image token, which
        the processor expands to the image's tokens).
    text_template : str, default=LLAVA_TEXT_TEMPLATE
        Prompt with one ``{caption}`` placeholder. The defaults follow LLaVA-1.5; pass the
        conversation format of other families.
    name : str, default=None
        Model id or path recorded as provenance; defaults to the path the model was loaded from.
    revision : str, default=None
        Hub revision recorded as provenance.
    """

    modalities = ("image", "text")

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        *,
        image_template: str = LLAVA_IMAGE_TEMPLATE,
        text_template: str = LLAVA_TEXT_TEMPLATE,
        name: str | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__(model, name=name, revision=revision)
        image_token = getattr(processor, "image_token", None)
        if not isinstance(image_token, str) or not hasattr(processor, "tokenizer"):
            raise TypeError(
                f"processor must be a vision-language processor with an image_token and a "
                f"tokenizer; got {type(processor).__name__}."
            )
        self.processor = processor
        self.image_template = check_template(
            image_template, "{image}", "{caption}", "image_template"
        )
        self.text_template = check_template(text_template, "{caption}", "{image}", "text_template")
        self._image_token_id = int(processor.tokenizer.convert_tokens_to_ids(image_token))
        self.max_length = context_length(model, processor.tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        model_id: str | os.PathLike,
        *,
        revision: str | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device | None = None,
        image_template: str = LLAVA_IMAGE_TEMPLATE,
        text_template: str = LLAVA_TEXT_TEMPLATE,
    ) -> VLMAdapter:
        """Load a model (``AutoModelForImageTextToText``) and its processor from the hub or a
        local folder; ``device`` defaults to CUDA when present."""
        return cls._load(
            AutoModelForImageTextToText,
            AutoProcessor,
            model_id,
            revision=revision,
            dtype=dtype,
            device=device,
            image_template=image_template,
            text_template=text_template,
        )

    @property
    def templates(self) -> dict[str, str]:
        """The prompt template of each view."""
        return {"image": self.image_template, "text": self.text_template}

    def _template_record(self) -> str:
        return json.dumps(self.templates)

    def encode(self, modality: str, items: Sequence[object]) -> EncodedBatch:
        self.check_modality(modality)
        if modality == "text":
            return encode_captions(
                self.processor.tokenizer,
                [str(c) for c in items],
                template=self.text_template,
                max_length=self.max_length,
            )
        images = list(items)
        for image in images:
            if not isinstance(image, Image.Image):
                raise TypeError(f"image view needs PIL images; got {type(image).__name__}.")
        prompt, _ = fill_template(self.image_template, "{image}", self.processor.image_token)
        encoded = self.processor(
            images=images,
            text=[prompt] * len(images),
            return_tensors="pt",
            padding=True,
            padding_side="right",
        )
        inputs = dict(encoded)
        region = inputs["input_ids"] == self._image_token_id
        return EncodedBatch(inputs=inputs, attention_mask=inputs["attention_mask"], region=region)

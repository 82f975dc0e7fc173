"""Vision-language models of transformers' image-text-to-text family (LLaVA-1.5, NeXT, ...)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

from geomalign.extract._base import EncodedBatch, check_template, fill_template
from geomalign.extract._hf import HFAdapter, load_pretrained, source_name
from geomalign.extract.text import (
    context_length,
    encode_captions,
    fit_caption,
    precut,
    truncation_notes,
)

__all__ = ["LLAVA_IMAGE_TEMPLATE", "LLAVA_JOINT_TEMPLATE", "LLAVA_TEXT_TEMPLATE", "VLMAdapter"]

#: LLaVA-1.5's conversation format with the image alone as the user turn.
LLAVA_IMAGE_TEMPLATE = "USER: {image}\nASSISTANT:"
#: The same format with the caption alone as the user turn.
LLAVA_TEXT_TEMPLATE = "USER: {caption}\nASSISTANT:"
#: The image and then the caption (or question) in one user turn, as LLaVA is prompted.
LLAVA_JOINT_TEMPLATE = "USER: {image}\n{caption}\nASSISTANT:"


class VLMAdapter(HFAdapter):
    """The language model of a vision-language model, seen through two prompts per pair.

    The image view is an image-only prompt (``image_template``, no caption); its region is the
    image-placeholder tokens, which hold the projected vision features. The text view is a
    caption-only prompt (``text_template``, no image); its region is the caption's tokens. Both
    return the language model's hidden states: layer 0 is the input of the first decoder block
    (token embeddings with the image features merged in), layer ``l`` the output of block ``l``
    (the last one after the final norm, as transformers reports it).

    On request (``modalities=["joint"]``) a third view puts the image and the caption in one
    prompt (``joint_template``), as the study reads an image + question prompt: its region has
    two parts, the image tokens and the caption tokens, so one forward pass fills the views
    ``joint-image`` and ``joint-text`` (region poolings such as mean) and ``joint`` (the last or
    first token).

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
    joint_template : str, default=LLAVA_JOINT_TEMPLATE
        Prompt with one ``{image}`` and then one ``{caption}`` placeholder.
    name : str, default=None
        Model id or path recorded as provenance; defaults to the path the model was loaded from.
    revision : str, default=None
        Hub revision recorded as provenance.
    """

    modalities = ("image", "text")
    optional_modalities = ("joint",)

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        *,
        image_template: str = LLAVA_IMAGE_TEMPLATE,
        text_template: str = LLAVA_TEXT_TEMPLATE,
        joint_template: str = LLAVA_JOINT_TEMPLATE,
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
        for placeholder in ("{image}", "{caption}"):
            check_template(joint_template, placeholder, None, "joint_template")
        if joint_template.index("{image}") > joint_template.index("{caption}"):
            raise ValueError(
                f"joint_template must hold {{image}} before {{caption}}; got {joint_template!r}."
            )
        self.joint_template = joint_template
        self._image_token: str = image_token
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
        joint_template: str = LLAVA_JOINT_TEMPLATE,
    ) -> VLMAdapter:
        """Load a model (``AutoModelForImageTextToText``) and its processor from the hub or a
        local folder; ``device`` defaults to CUDA when present."""
        model, processor = load_pretrained(
            AutoModelForImageTextToText,
            AutoProcessor,
            model_id,
            revision=revision,
            dtype=dtype,
            device=device,
        )
        return cls(
            model,
            processor,
            name=source_name(model_id),
            revision=revision,
            image_template=image_template,
            text_template=text_template,
            joint_template=joint_template,
        )

    @property
    def templates(self) -> dict[str, str]:
        """The prompt template of each view."""
        return {
            "image": self.image_template,
            "text": self.text_template,
            "joint": self.joint_template,
        }

    def regions(self, modality: str) -> tuple[str, ...]:
        return ("image", "text") if modality == "joint" else ()

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
        if modality == "joint":
            return self._encode_joint(items)
        images = list(items)
        for image in images:
            if not isinstance(image, Image.Image):
                raise TypeError(f"image view needs PIL images; got {type(image).__name__}.")
        prompt, _ = fill_template(self.image_template, "{image}", self._image_token)
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

    def _encode_joint(self, items: Sequence[object]) -> EncodedBatch:
        """Image + caption prompts; the region's parts are the image and the caption tokens."""
        images: list[Image.Image] = []
        captions: list[str] = []
        for item in items:
            if not (
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Image.Image)
            ):
                raise TypeError(f"joint view needs (PIL image, caption) pairs; got {item!r:.80}.")
            images.append(item[0])
            captions.append(str(item[1]))
        token = self._image_token
        template = self.joint_template.replace("{image}", token)
        texts = precut(captions, self.max_length)
        inputs, n_image = self._process(images, template, texts)
        limit = self.max_length
        if limit is not None:
            lengths = inputs["attention_mask"].sum(1).tolist()
            over = [i for i, n in enumerate(lengths) if n > limit]
            for i in over:
                expanded = template.replace(token, token * int(n_image[i]))
                texts[i] = fit_caption(self.processor.tokenizer, expanded, texts[i], limit)
            if over:
                inputs, n_image = self._process(images, template, texts)
        offsets = inputs.pop("offset_mapping")
        start, stop = offsets[..., 0], offsets[..., 1]
        # the processor repeats the image token before tokenising: the caption moves right
        lo = template.index("{caption}") + (n_image - 1) * len(token)
        hi = lo + torch.tensor([len(t) for t in texts])
        for i, text in enumerate(texts):
            expanded = fill_template(template, "{caption}", text)[0]
            expanded = expanded.replace(token, token * int(n_image[i]))
            if expanded[int(lo[i]) : int(hi[i])] != text:
                raise ValueError(
                    f"{type(self.processor).__name__} expands the image token in a way that "
                    "hides where the caption is; the joint view needs the image token repeated."
                )
        image_part = inputs["input_ids"] == self._image_token_id
        text_part = (stop > start) & (start < hi[:, None]) & (stop > lo[:, None]) & ~image_part
        return EncodedBatch(
            inputs=inputs,
            attention_mask=inputs["attention_mask"],
            region=image_part | text_part,
            truncated=truncation_notes(captions, texts, self.max_length),
            regions={"image": image_part, "text": text_part},
        )

    def _process(
        self, images: list[Image.Image], template: str, captions: list[str]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Run the processor on the joint prompts; return its outputs and image tokens per row."""
        encoded = self.processor(
            images=images,
            text=[fill_template(template, "{caption}", c)[0] for c in captions],
            return_tensors="pt",
            padding=True,
            padding_side="right",
            return_offsets_mapping=True,
        )
        inputs = dict(encoded)
        return inputs, (inputs["input_ids"] == self._image_token_id).sum(1)

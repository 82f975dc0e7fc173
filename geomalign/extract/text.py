"""Text models on captions: tokenisation with caption-token positions, and the text-LLM adapter."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from geomalign.extract._base import EncodedBatch, check_template, fill_template
from geomalign.extract._hf import HFAdapter

__all__ = ["TextAdapter", "encode_captions"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def encode_captions(
    tokenizer: PreTrainedTokenizerBase, captions: Sequence[str], *, template: str = "{caption}"
) -> EncodedBatch:
    """Tokenise captions placed in a prompt template, marking the caption tokens.

    Parameters
    ----------
    tokenizer : transformers fast tokenizer
        Must provide character offsets (any ``tokenizers``-backed tokenizer does). Its special
        tokens (e.g. a BOS token) are added as it is configured to.
    captions : sequence of str
        The captions of the batch.
    template : str, default="{caption}"
        Prompt text with one ``{caption}`` placeholder.

    Returns
    -------
    EncodedBatch
        Right-padded ``input_ids``, ``attention_mask`` (and any other tokenizer outputs such as
        ``token_type_ids``); ``region`` marks the tokens that overlap the caption's characters.

    Raises
    ------
    TypeError
        If the tokenizer cannot return character offsets.
    """
    check_template(template, "{caption}", "{image}", "template")
    prompts, spans = [], []
    for caption in captions:
        text, start = fill_template(template, "{caption}", caption)
        prompts.append(text)
        spans.append((start, start + len(caption)))
    try:
        encoded = tokenizer(prompts, return_offsets_mapping=True)
    except NotImplementedError as exc:
        raise TypeError(
            f"{type(tokenizer).__name__} cannot return character offsets, which locate the "
            "caption tokens; load a fast (tokenizers-backed) tokenizer."
        ) from exc
    offsets = encoded.pop("offset_mapping")
    width = max(len(ids) for ids in encoded["input_ids"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = {}
    for key, rows in encoded.items():
        fill = pad_id if key == "input_ids" else 0
        inputs[key] = torch.tensor([list(row) + [fill] * (width - len(row)) for row in rows])
    bounds = torch.zeros((len(prompts), width, 2), dtype=torch.long)
    for i, row in enumerate(offsets):
        bounds[i, : len(row)] = torch.tensor(row, dtype=torch.long).reshape(-1, 2)
    start, stop = bounds[..., 0], bounds[..., 1]
    lo, hi = torch.tensor(spans, dtype=torch.long).T[..., None]
    region = (stop > start) & (start < hi) & (stop > lo)
    return EncodedBatch(inputs=inputs, attention_mask=inputs["attention_mask"], region=region)


class TextAdapter(HFAdapter):
    """A Hugging Face text model (a causal LLM or an encoder) applied to the captions.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A model taking ``input_ids`` and ``attention_mask`` whose trunk (``model.base_model``)
        returns hidden states, e.g. ``LlamaForCausalLM`` or ``BertModel``. Put in eval mode.
    tokenizer : transformers fast tokenizer
        The model's tokenizer (see :func:`encode_captions`).
    template : str, default="{caption}"
        Prompt with one ``{caption}`` placeholder; use the VLM's text-view template to compare a
        VLM's language model with its base LLM token for token.
    name : str, default=None
        Model id or path recorded as provenance; defaults to the path the model was loaded from.
    revision : str, default=None
        Hub revision recorded as provenance.
    """

    modalities = ("text",)

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        template: str = "{caption}",
        name: str | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__(model, name=name, revision=revision)
        self.tokenizer = tokenizer
        self.template = check_template(template, "{caption}", "{image}", "template")

    @classmethod
    def from_pretrained(
        cls,
        model_id: str | os.PathLike,
        *,
        revision: str | None = None,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device | None = None,
        template: str = "{caption}",
    ) -> TextAdapter:
        """Load a model and its tokenizer from the hub or a local folder.

        Causal language models (architectures ending in ``ForCausalLM``) load through
        ``AutoModelForCausalLM``, others (encoders) through ``AutoModel``. ``device`` defaults to
        CUDA when present.
        """
        config = AutoConfig.from_pretrained(model_id, revision=revision)
        causal = any(a.endswith(_CAUSAL_SUFFIXES) for a in config.architectures or ())
        return cls._load(
            AutoModelForCausalLM if causal else AutoModel,
            AutoTokenizer,
            model_id,
            revision=revision,
            dtype=dtype,
            device=device,
            template=template,
        )

    def _template_record(self) -> str:
        return self.template

    def encode(self, modality: str, items: Sequence[object]) -> EncodedBatch:
        self.check_modality(modality)
        return encode_captions(self.tokenizer, [str(c) for c in items], template=self.template)

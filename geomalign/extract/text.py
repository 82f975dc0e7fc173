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
from geomalign.extract._hf import HFAdapter, load_pretrained, source_name

__all__ = ["TextAdapter", "context_length", "encode_captions"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


#: Captions are cut at this many characters per position of the context before tokenising, so
#: that a caption of any length costs bounded memory (no token of a real vocabulary is longer).
_CHARS_PER_POSITION = 64


def context_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The most tokens a prompt may have: the text model's positions, or the tokenizer's limit.

    None when neither is known (the tokenizer's "no limit" sentinel counts as unknown).
    """
    limits = [getattr(model.config.get_text_config(), "max_position_embeddings", None)]
    limits.append(getattr(tokenizer, "model_max_length", None))
    known = [int(n) for n in limits if isinstance(n, int) and 0 < n < 10**8]
    return min(known) if known else None


def encode_captions(
    tokenizer: PreTrainedTokenizerBase,
    captions: Sequence[str],
    *,
    template: str = "{caption}",
    max_length: int | None = None,
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
    max_length : int, default=None
        The model's context in tokens. A caption whose prompt would be longer is cut (at a token
        boundary, the template kept whole) so that the prompt fits; the cut rows are listed in
        ``truncated``. Memory stays bounded whatever the caption's length. None: no limit.

    Returns
    -------
    EncodedBatch
        Right-padded ``input_ids``, ``attention_mask`` (and any other tokenizer outputs such as
        ``token_type_ids``); ``region`` marks the tokens that overlap the caption's characters.

    Raises
    ------
    TypeError
        If the tokenizer cannot return character offsets.
    ValueError
        If the template alone does not fit in ``max_length`` tokens.
    """
    check_template(template, "{caption}", "{image}", "template")
    texts = precut([str(c) for c in captions], max_length)
    encoded, spans = _tokenize(tokenizer, template, texts)
    if max_length is not None:
        over = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_length]
        for i in over:
            texts[i] = fit_caption(tokenizer, template, texts[i], max_length)
        if over:
            encoded, spans = _tokenize(tokenizer, template, texts)
    truncated = truncation_notes(captions, texts, max_length)
    offsets = encoded.pop("offset_mapping")
    width = max(len(ids) for ids in encoded["input_ids"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = {}
    for key, rows in encoded.items():
        fill = pad_id if key == "input_ids" else 0
        inputs[key] = torch.tensor([list(row) + [fill] * (width - len(row)) for row in rows])
    bounds = torch.zeros((len(texts), width, 2), dtype=torch.long)
    for i, row in enumerate(offsets):
        bounds[i, : len(row)] = torch.tensor(row, dtype=torch.long).reshape(-1, 2)
    start, stop = bounds[..., 0], bounds[..., 1]
    lo, hi = torch.tensor(spans, dtype=torch.long).T[..., None]
    region = (stop > start) & (start < hi) & (stop > lo)
    return EncodedBatch(
        inputs=inputs, attention_mask=inputs["attention_mask"], region=region, truncated=truncated
    )


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, template: str, captions: Sequence[str]
) -> tuple[dict, list[tuple[int, int]]]:
    """Tokenise the prompts (with character offsets); return them and each caption's span."""
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
    return dict(encoded), spans


def precut(captions: list[str], max_length: int | None) -> list[str]:
    """Captions cut at a length no prompt of ``max_length`` tokens can use (bounded memory)."""
    if max_length is None:
        return captions
    return [c[: max_length * _CHARS_PER_POSITION] for c in captions]


def truncation_notes(
    captions: Sequence[str], kept: Sequence[str], max_length: int | None
) -> dict[int, str]:
    """For each row whose caption was cut, a note saying how much of it was kept."""
    return {
        i: f"caption of {len(caption):,} characters truncated to its first {len(text):,} to fit "
        f"the model's context of {max_length} tokens"
        for i, (caption, text) in enumerate(zip(captions, kept, strict=True))
        if len(text) < len(caption)
    }


def fit_caption(
    tokenizer: PreTrainedTokenizerBase, template: str, caption: str, max_length: int
) -> str:
    """The longest prefix of ``caption`` (cut at a token's end) whose prompt fits ``max_length``."""
    while True:
        encoded, [(lo, hi)] = _tokenize(tokenizer, template, [caption])
        n_tokens = len(encoded["input_ids"][0])
        if n_tokens <= max_length:
            return caption
        ends = [e for s, e in encoded["offset_mapping"][0] if e > s and s < hi and e > lo]
        keep = len(ends) - (n_tokens - max_length)
        if keep < 1:
            raise ValueError(
                f"the prompt template {template!r} alone takes {n_tokens - len(ends)} tokens, "
                f"leaving no room for a caption in the model's context of {max_length} tokens."
            )
        # cutting may merge tokens differently at the new end: check again
        caption = caption[: min(ends[keep - 1] - lo, len(caption) - 1)]


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
        self.max_length = context_length(model, tokenizer)

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
        model, tokenizer = load_pretrained(
            AutoModelForCausalLM if causal else AutoModel,
            AutoTokenizer,
            model_id,
            revision=revision,
            dtype=dtype,
            device=device,
        )
        return cls(
            model, tokenizer, template=template, name=source_name(model_id), revision=revision
        )

    def _template_record(self) -> str:
        return self.template

    def encode(self, modality: str, items: Sequence[object]) -> EncodedBatch:
        self.check_modality(modality)
        return encode_captions(
            self.tokenizer,
            [str(c) for c in items],
            template=self.template,
            max_length=self.max_length,
        )

"""Pick and load the adapter that fits a checkpoint on the hub or on disk."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from geomalign.extract._base import Adapter

__all__ = ["load_adapter"]


def load_adapter(
    model_id: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    templates: Mapping[str, str] | None = None,
) -> Adapter:
    """Load a hub id or local folder as a :class:`VLMAdapter` or a :class:`TextAdapter`.

    A checkpoint whose config has a ``vision_config`` is a vision-language model
    (``AutoModelForImageTextToText`` + ``AutoProcessor``); any other is a text model (a causal
    LLM, or an encoder such as BERT) with its tokenizer.

    Parameters
    ----------
    model_id : str or path-like
        Hub id (e.g. ``"llava-hf/llava-1.5-7b-hf"``) or folder written by ``save_pretrained``.
    revision : str, default=None
        Hub revision (branch, tag or commit).
    dtype : {"float32", "float16", "bfloat16"} or torch.dtype, default="float32"
        Dtype of the weights.
    device : str or torch.device, default=None
        CUDA when present, else the CPU.
    templates : mapping of str to str, default=None
        Prompt templates by modality: ``"image"`` (with ``{image}``), ``"text"`` (with
        ``{caption}``) and ``"joint"`` (with both). Defaults: LLaVA-1.5's conversation format for
        a VLM, the bare caption for a text model.

    Returns
    -------
    Adapter

    Notes
    -----
    Needs the ``hf`` extra (transformers), imported here so that the rest of
    :mod:`geomalign.extract` works without it.
    """
    from transformers import AutoConfig

    from geomalign.extract.text import TextAdapter
    from geomalign.extract.vlm import (
        LLAVA_IMAGE_TEMPLATE,
        LLAVA_JOINT_TEMPLATE,
        LLAVA_TEXT_TEMPLATE,
        VLMAdapter,
    )

    templates = dict(templates or {})
    unknown = sorted(set(templates) - {"image", "text", "joint"})
    if unknown:
        raise ValueError(f"templates takes keys 'image', 'text' and 'joint'; got {unknown}.")
    config = AutoConfig.from_pretrained(model_id, revision=revision)
    if getattr(config, "vision_config", None) is not None:
        return VLMAdapter.from_pretrained(
            model_id,
            revision=revision,
            dtype=dtype,
            device=device,
            image_template=templates.get("image", LLAVA_IMAGE_TEMPLATE),
            text_template=templates.get("text", LLAVA_TEXT_TEMPLATE),
            joint_template=templates.get("joint", LLAVA_JOINT_TEMPLATE),
        )
    if "image" in templates or "joint" in templates:
        raise ValueError(f"{model_id} is a text model; an image template does not apply.")
    return TextAdapter.from_pretrained(
        model_id,
        revision=revision,
        dtype=dtype,
        device=device,
        template=templates.get("text", "{caption}"),
    )

"""Hidden states of vision-language and text models on paired data, into an activation store.

Adapters turn a batch of images or captions into model inputs and return the hidden states of
chosen layers: :class:`VLMAdapter` (transformers image-text-to-text models, an image-only and a
caption-only prompt per pair), :class:`TextAdapter` (a text LLM or encoder on the captions) and
:class:`ModuleAdapter` (any ``torch.nn.Module``, through forward hooks). :func:`extract` runs one
over a :class:`~geomalign.data.PairedDataset`, pools the tokens and writes a resumable store.
Layer 0 is always the embedding output and layer ``l`` the output of block ``l``.

:class:`ModuleAdapter`, :func:`extract` and :func:`load_adapter` import without transformers; the
Hugging Face adapters (:class:`VLMAdapter`, :class:`TextAdapter`, the LLaVA stage-1 helpers) need
the ``hf`` extra and are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from geomalign.extract._base import Adapter, EncodedBatch
from geomalign.extract._pooling import POOLINGS
from geomalign.extract.auto import load_adapter
from geomalign.extract.hooks import ModuleAdapter
from geomalign.extract.runner import ExtractionResult, extract

if TYPE_CHECKING:
    from geomalign.extract.llava_stage1 import (
        assemble_llava,
        llava_projector_weights,
        load_llava_stage1,
    )
    from geomalign.extract.text import TextAdapter, encode_captions
    from geomalign.extract.vlm import (
        LLAVA_IMAGE_TEMPLATE,
        LLAVA_JOINT_TEMPLATE,
        LLAVA_TEXT_TEMPLATE,
        VLMAdapter,
    )

# Names whose modules need transformers, and those modules.
_HF_NAMES = {
    "LLAVA_IMAGE_TEMPLATE": "vlm",
    "LLAVA_JOINT_TEMPLATE": "vlm",
    "LLAVA_TEXT_TEMPLATE": "vlm",
    "VLMAdapter": "vlm",
    "TextAdapter": "text",
    "encode_captions": "text",
    "assemble_llava": "llava_stage1",
    "llava_projector_weights": "llava_stage1",
    "load_llava_stage1": "llava_stage1",
}


def __getattr__(name: str) -> object:
    if name in _HF_NAMES:
        module = importlib.import_module(f"geomalign.extract.{_HF_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'geomalign.extract' has no attribute {name!r}")


__all__ = [
    "LLAVA_IMAGE_TEMPLATE",
    "LLAVA_JOINT_TEMPLATE",
    "LLAVA_TEXT_TEMPLATE",
    "POOLINGS",
    "Adapter",
    "EncodedBatch",
    "ExtractionResult",
    "ModuleAdapter",
    "TextAdapter",
    "VLMAdapter",
    "assemble_llava",
    "encode_captions",
    "extract",
    "llava_projector_weights",
    "load_adapter",
    "load_llava_stage1",
]

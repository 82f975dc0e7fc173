"""Hidden states of vision-language and text models on paired data, into an activation store.

Adapters turn a batch of images or captions into model inputs and return the hidden states of
chosen layers: :class:`VLMAdapter` (transformers image-text-to-text models, an image-only and a
caption-only prompt per pair), :class:`TextAdapter` (a text LLM or encoder on the captions) and
:class:`ModuleAdapter` (any ``torch.nn.Module``, through forward hooks). :func:`extract` runs one
over a :class:`~geomalign.data.PairedDataset`, pools the tokens and writes a resumable store.
Layer 0 is always the embedding output and layer ``l`` the output of block ``l``.
"""

from geomalign.extract._base import Adapter, EncodedBatch
from geomalign.extract._pooling import POOLINGS
from geomalign.extract.auto import load_adapter
from geomalign.extract.hooks import ModuleAdapter
from geomalign.extract.llava_stage1 import (
    assemble_llava,
    llava_projector_weights,
    load_llava_stage1,
)
from geomalign.extract.runner import ExtractionResult, extract
from geomalign.extract.text import TextAdapter, encode_captions
from geomalign.extract.vlm import (
    LLAVA_IMAGE_TEMPLATE,
    LLAVA_JOINT_TEMPLATE,
    LLAVA_TEXT_TEMPLATE,
    VLMAdapter,
)

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

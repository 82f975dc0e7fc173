"""Assemble a LLaVA stage-1 checkpoint: base LLM + CLIP vision tower + pre-trained projector.

LLaVA is trained in two stages. Stage 1 trains only the projector (vision features -> LLM
embeddings) with the vision tower and the base LLM frozen; stage 2 (visual instruction tuning)
then tunes the projector and the LLM. The stage-1 release of LLaVA-1.5
(``liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5``) holds only the projector
(``mm_projector.bin``), so the stage-1 model is rebuilt from three sources: the base LLM
(``lmsys/vicuna-7b-v1.5``), the vision tower (``openai/clip-vit-large-patch14-336``) and that
projector, laid out like the tuned model's transformers port (``llava-hf/llava-1.5-7b-hf``), whose
config and processor the assembled model shares.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoProcessor,
    CLIPVisionModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from geomalign.extract._base import resolve_device, resolve_dtype
from geomalign.extract._hf import source_name
from geomalign.extract.vlm import LLAVA_IMAGE_TEMPLATE, LLAVA_TEXT_TEMPLATE, VLMAdapter

__all__ = ["assemble_llava", "llava_projector_weights", "load_llava_stage1"]

# The original LLaVA code names the projector's two linear layers mm_projector.0 and .2 (a GELU
# sits between them); transformers' LlavaMultiModalProjector names them linear_1 and linear_2.
_ORIGINAL_KEY = re.compile(r"^(?:model\.)?mm_projector\.(0|2)\.(weight|bias)$")
_PORTED_KEY = re.compile(r"^(?:model\.)?(?:multi_modal_projector\.)?(linear_[12])\.(weight|bias)$")


def llava_projector_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a LLaVA projector state dict to transformers' ``LlavaMultiModalProjector`` keys.

    Parameters
    ----------
    state : mapping of str to torch.Tensor
        Keys of the original release (``model.mm_projector.0.weight``, ``...2.bias``) or of the
        transformers port (``multi_modal_projector.linear_1.weight``, ...).

    Returns
    -------
    dict
        Keys ``linear_1.weight``, ``linear_1.bias``, ``linear_2.weight``, ``linear_2.bias``.
    """
    out = {}
    for key, value in state.items():
        if match := _ORIGINAL_KEY.match(key):
            layer = "linear_1" if match.group(1) == "0" else "linear_2"
            out[f"{layer}.{match.group(2)}"] = value
        elif match := _PORTED_KEY.match(key):
            out[f"{match.group(1)}.{match.group(2)}"] = value
        else:
            raise ValueError(
                f"unexpected key {key!r} in the projector weights; expected mm_projector.0/2 or "
                f"linear_1/2 weights and biases (keys: {sorted(state)})."
            )
    return out


def assemble_llava(
    language_model: PreTrainedModel,
    vision_tower: PreTrainedModel,
    projector: Mapping[str, torch.Tensor],
    config: LlavaConfig,
) -> LlavaForConditionalGeneration:
    """Put a causal LLM, a vision tower and projector weights together into one LLaVA model.

    The parts are used as they are (not copied): the LLM's trunk becomes the language model and
    its head the LM head. If ``config`` has a larger vocabulary than the LLM (the image and
    padding tokens a LLaVA tokenizer adds), the LLM's embeddings grow to it; new rows are the
    mean of the old ones (they never reach a hidden state: image tokens are replaced by image
    features, padding is masked).

    Parameters
    ----------
    language_model : transformers.PreTrainedModel
        A causal LM such as ``LlamaForCausalLM``, of the architecture of ``config.text_config``.
    vision_tower : transformers.PreTrainedModel
        A vision encoder such as ``CLIPVisionModel``, of ``config.vision_config``'s architecture.
    projector : mapping of str to torch.Tensor
        Projector weights (see :func:`llava_projector_weights` for accepted key names).
    config : transformers.LlavaConfig
        Projector and feature-selection settings and the image token id.

    Returns
    -------
    transformers.LlavaForConditionalGeneration
        In eval mode, with the language model's dtype and device.
    """
    text, vision = _part_config(config, "text_config"), _part_config(config, "vision_config")
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        have, want = getattr(language_model.config, field), getattr(text, field)
        if have != want:
            raise ValueError(
                f"language_model.config.{field} is {have} but the LLaVA config's text_config "
                f"has {want}; the LLM does not match the reference architecture."
            )
    if vision_tower.config.hidden_size != vision.hidden_size:
        raise ValueError(
            f"vision_tower hidden size {vision_tower.config.hidden_size} differs from the LLaVA "
            f"config's vision_config.hidden_size {vision.hidden_size}."
        )
    _grow_vocabulary(language_model, text.vocab_size)
    config = copy.deepcopy(config)
    config.text_config = copy.deepcopy(language_model.config)
    config.vision_config = copy.deepcopy(vision_tower.config)
    dtype = next(language_model.parameters()).dtype
    device = next(language_model.parameters()).device
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    head = model.model.multi_modal_projector = LlavaMultiModalProjector(config)
    head.load_state_dict(llava_projector_weights(projector))
    model.model.vision_tower = vision_tower
    model.model.language_model = language_model.base_model
    model.lm_head = language_model.get_output_embeddings()
    # transformers types PreTrainedModel.to through a wrapper that mypy reads as unbound
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"assembled LLaVA model has unset tensors: {left[:5]}.")
    return model.eval()


def load_llava_stage1(
    language_model: str | os.PathLike = "lmsys/vicuna-7b-v1.5",
    vision_tower: str | os.PathLike = "openai/clip-vit-large-patch14-336",
    projector: str | os.PathLike = "liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5",
    *,
    reference: str | os.PathLike = "llava-hf/llava-1.5-7b-hf",
    projector_file: str = "mm_projector.bin",
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    image_template: str = LLAVA_IMAGE_TEMPLATE,
    text_template: str = LLAVA_TEXT_TEMPLATE,
) -> VLMAdapter:
    """Load the LLaVA stage-1 model (base LLM + vision tower + pre-trained projector).

    Every source is a hub id or a local path. The defaults rebuild the stage-1 base of
    LLaVA-1.5-7B, to compare with ``llava-hf/llava-1.5-7b-hf`` (its stage-2 model).

    Parameters
    ----------
    language_model : str or path-like, default="lmsys/vicuna-7b-v1.5"
        The base LLM (``AutoModelForCausalLM``).
    vision_tower : str or path-like, default="openai/clip-vit-large-patch14-336"
        The vision encoder (``CLIPVisionModel``; a full CLIP checkpoint works).
    projector : str or path-like
        Hub repository or folder holding ``projector_file``, or the file itself; by default
        ``"liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5"``.
    reference : str or path-like, default="llava-hf/llava-1.5-7b-hf"
        The transformers LLaVA checkpoint whose config (projector layout, vision feature layer,
        image token, vocabulary) and processor the stage-1 model uses; its weights are not loaded.
    projector_file : str, default="mm_projector.bin"
        File name of the projector weights in ``projector``.
    dtype, device :
        As for :meth:`VLMAdapter.from_pretrained`.
    image_template, text_template : str
        Prompt templates of the two views (see :class:`VLMAdapter`).

    Returns
    -------
    VLMAdapter
        Named ``"stage1(<language_model> + <vision_tower> + <projector>)"``.
    """
    torch_dtype = resolve_dtype(dtype)
    config = AutoConfig.from_pretrained(reference)
    if not isinstance(config, LlavaConfig):
        raise ValueError(f"reference {reference} is a {type(config).__name__}, not a LlavaConfig.")
    processor = AutoProcessor.from_pretrained(reference)
    llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch_dtype)
    vision = CLIPVisionModel.from_pretrained(vision_tower, dtype=torch_dtype)
    model = assemble_llava(llm, vision, _projector_state(projector, projector_file), config)
    return VLMAdapter(
        model.to(resolve_device(device)),  # type: ignore[arg-type]  # as in assemble_llava
        processor,
        image_template=image_template,
        text_template=text_template,
        name="stage1({})".format(
            " + ".join(source_name(s) for s in (language_model, vision_tower, projector))
        ),
    )


def _projector_state(source: str | os.PathLike, filename: str) -> dict[str, torch.Tensor]:
    path = Path(source)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        if Path(source).exists():
            raise ValueError(f"projector folder {source} has no file {filename!r}.")
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(str(source), filename))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _part_config(config: LlavaConfig, part: str) -> PretrainedConfig:
    """``config.text_config`` or ``config.vision_config``, checked to be a config object."""
    sub = getattr(config, part)
    if not isinstance(sub, PretrainedConfig):
        raise ValueError(f"the LLaVA config's {part} is a {type(sub).__name__}, not a config.")
    return sub


def _grow_vocabulary(model: PreTrainedModel, size: int) -> None:
    """Grow the input and output embeddings to ``size`` rows; new rows are the old rows' mean."""
    embeddings = model.get_input_embeddings().weight
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"{type(model).__name__}'s input embeddings have no weight tensor.")
    old = embeddings.shape[0]
    if size < old:
        raise ValueError(
            f"the LLaVA config's vocabulary ({size}) is smaller than the LLM's ({old})."
        )
    if size == old:
        return
    model.resize_token_embeddings(size, mean_resizing=False)
    with torch.no_grad():
        for weight in {model.get_input_embeddings().weight, model.get_output_embeddings().weight}:
            weight[old:] = weight[:old].mean(0)

"""Locating decoder layers, the image token and attention modules without model-specific code."""

from __future__ import annotations

import pytest
from _tiny_models import tiny_llama_config
from torch import nn
from transformers import LlamaForCausalLM

from geomalign.interventions import decoder_blocks
from geomalign.interventions._model import attention_module, image_token_id

from .conftest import IMAGE_TOKEN, N_LAYERS, tiny_llava


def test_decoder_blocks_of_llava_and_of_a_text_model():
    llava = tiny_llava(1)
    assert decoder_blocks(llava) is llava.model.language_model.layers
    assert decoder_blocks(llava.model) is llava.model.language_model.layers
    assert len(decoder_blocks(llava)) == N_LAYERS
    llama = LlamaForCausalLM(tiny_llama_config(n_blocks=3))
    assert decoder_blocks(llama) is llama.model.layers


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer = _CustomAttention()


class _CustomAttention(nn.Module):
    pass


class _Plain(nn.Module):
    """No get_decoder(): found through the `model.layers` path."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([_Block(), _Block()])


def test_attribute_paths_and_attention_by_class_name():
    plain = _Plain()
    assert decoder_blocks(plain) is plain.model.layers
    assert attention_module(plain.model.layers[1], 1) is plain.model.layers[1].mixer
    with pytest.raises(TypeError, match="decoder block 0 \\(Linear\\) has no `self_attn`"):
        attention_module(nn.Linear(2, 2), 0)
    with pytest.raises(TypeError, match="could not find the decoder blocks of Linear"):
        decoder_blocks(nn.Linear(2, 2))


def test_image_token_id_from_config_or_override():
    llava = tiny_llava(1)
    assert image_token_id(llava) == IMAGE_TOKEN
    assert image_token_id(llava, 7) == 7
    with pytest.raises(ValueError, match="pass image_token_id= explicitly"):
        image_token_id(_Plain())
    with pytest.raises(TypeError, match="image_token_id must be an int"):
        image_token_id(llava, True)

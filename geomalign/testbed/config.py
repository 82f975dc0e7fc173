"""Sizes, step counts and seed of the testbed, and the transformers configs they define."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

#: Bumped whenever the training recipe changes, so that caches of an older recipe are rebuilt.
RECIPE_VERSION = 2


@dataclass(frozen=True)
class TestbedConfig:
    """Everything that determines a testbed build.

    The default is the full build (about 85 s of CPU time on one thread; its tuned VLM answers
    about 70% of held-out questions, its base VLM about 30%); :meth:`small` is a preset for tests
    that builds in about 5 s of CPU time and trains little. Both have 6 decoder layers so that
    layer curves have a shape.

    Parameters
    ----------
    seed : int, default=0
        Seed of the shapes world, of every initialisation and of every batch order.
    n_train, n_test : int
        Number of training and held-out images of the shapes world.
    image_size, patch_size : int
        Image side and vision patch side, in pixels: the language model sees one token per
        patch, ``(image_size // patch_size) ** 2`` of them.
    vision_hidden_size, vision_layers, vision_heads : int
        Width, depth and attention heads of the CLIP-style vision tower.
    text_hidden_size, text_layers, text_heads, text_intermediate_size : int
        Width, decoder layers, attention heads and MLP width of the Llama-style language model.
    batch_size : int
        Sequences (or images) per optimisation step in every stage.
    lm_steps, vision_steps, stage1_steps, stage2_steps : int
        Optimisation steps of text pre-training, vision pre-training, stage 1 and stage 2.
    lm_lr, vision_lr, stage1_lr, stage2_lr : float
        Peak learning rates (AdamW, linear warm-up then cosine decay) of the same stages.
    """

    __test__ = False  # not a pytest test class despite its name

    seed: int = 0
    n_train: int = 5000
    n_test: int = 300
    image_size: int = 24
    patch_size: int = 8
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden_size: int = 64
    text_layers: int = 6
    text_heads: int = 4
    text_intermediate_size: int = 128
    batch_size: int = 32
    lm_steps: int = 400
    vision_steps: int = 1000
    stage1_steps: int = 200
    stage2_steps: int = 700
    lm_lr: float = 1e-3
    vision_lr: float = 3e-3
    stage1_lr: float = 3e-3
    stage2_lr: float = 2e-3

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                    raise ValueError(
                        f"TestbedConfig.{field.name} must be a positive float; got {value!r}."
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TestbedConfig.{field.name} must be an integer; got {value!r}.")
            minimum = 0 if field.name == "seed" else 1
            if value < minimum:
                raise ValueError(f"TestbedConfig.{field.name} must be >= {minimum}; got {value!r}.")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"TestbedConfig.image_size ({self.image_size}) must be a multiple of "
                f"patch_size ({self.patch_size})."
            )
        for width, heads, name in (
            (self.text_hidden_size, self.text_heads, "text"),
            (self.vision_hidden_size, self.vision_heads, "vision"),
        ):
            if width % heads:
                raise ValueError(
                    f"TestbedConfig.{name}_hidden_size ({width}) must be a multiple of "
                    f"{name}_heads ({heads})."
                )

    @classmethod
    def small(cls, *, seed: int = 0) -> TestbedConfig:
        """A preset for tests: same architecture and depth, narrower, built in a few seconds.

        It trains little (its tuned VLM mostly learns which kind of word answers which
        question), but stage 2 still beats stage 1 clearly on held-out questions.
        """
        return cls(
            seed=seed,
            n_train=300,
            n_test=60,
            vision_hidden_size=32,
            text_hidden_size=32,
            text_intermediate_size=64,
            lm_steps=40,
            vision_steps=60,
            stage1_steps=20,
            stage2_steps=60,
            lm_lr=5e-3,
            vision_lr=1e-2,
            stage1_lr=1e-2,
            stage2_lr=5e-3,
        )

    def fingerprint(self) -> str:
        """A short hash of the configuration and recipe version: the name of its cache folder."""
        payload = json.dumps(
            {"recipe": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True
        ).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    @property
    def n_image_tokens(self) -> int:
        """Image tokens per image in the language model: one per patch (CLS is dropped)."""
        return (self.image_size // self.patch_size) ** 2


def llama_config(
    config: TestbedConfig, vocab_size: int, special_ids: dict[str, int]
) -> LlamaConfig:
    """The Llama-style language model of ``config`` over a vocabulary of ``vocab_size`` words."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.text_hidden_size,
        intermediate_size=config.text_intermediate_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=128,
        pad_token_id=special_ids["pad"],
        bos_token_id=special_ids["bos"],
        eos_token_id=special_ids["eos"],
        tie_word_embeddings=False,
    )


def clip_vision_config(config: TestbedConfig) -> CLIPVisionConfig:
    """The CLIP-style vision tower of ``config``."""
    return CLIPVisionConfig(
        hidden_size=config.vision_hidden_size,
        intermediate_size=4 * config.vision_hidden_size,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden_size,
    )


def llava_config(
    config: TestbedConfig, text_config: LlamaConfig, image_token_id: int
) -> LlavaConfig:
    """The VLM joining the vision tower and ``text_config`` through a two-layer MLP projector.

    The projector reads the patch tokens of the last vision layer (the CLS token dropped, as in
    LLaVA), the layer that the tower's pre-training supervises
    (:func:`~geomalign.testbed.pretrain_vision`).
    """
    return LlavaConfig(
        vision_config=clip_vision_config(config),
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=config.n_image_tokens,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )

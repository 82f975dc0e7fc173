"""A built-in testbed: tiny base and instruction-tuned VLM checkpoints trained on the shapes world.

Real ``transformers`` models (a Llama-style LLM and a CLIP-style vision tower joined by a projector
in ``LlavaForConditionalGeneration``), trained on the CPU in minutes and deterministically from a
seed, following the LLaVA recipe. Because the world is synthetic, what the models must represent is
known exactly, which makes the testbed a controlled place to check geometry measurements,
interventions and selective fine-tuning. It is not a substitute for real checkpoints.

>>> from geomalign.testbed import TestbedConfig, build_testbed
>>> testbed = build_testbed(TestbedConfig.small())  # doctest: +SKIP
>>> scores = testbed.metrics  # doctest: +SKIP
>>> scores["tuned"]["qa_accuracy"] > scores["base"]["qa_accuracy"]  # doctest: +SKIP
True
"""

from geomalign.testbed.build import CHECKPOINTS, Testbed, build_testbed, default_cache_dir
from geomalign.testbed.config import TestbedConfig
from geomalign.testbed.evaluation import (
    ResponseScores,
    evaluate_checkpoint,
    evaluate_llm,
    evaluate_vlm,
    score_responses,
)
from geomalign.testbed.examples import Examples, TestbedData, make_testbed_data, scene_facts
from geomalign.testbed.planted import PLANTED_KINDS, planted_blocks, tune_planted
from geomalign.testbed.planted_study import PlantedStudy, planted_study
from geomalign.testbed.recovery import Located, iou, recovered
from geomalign.testbed.tokenizer import (
    CAPTION_INSTRUCTION,
    IMAGE_TOKEN,
    build_processor,
    build_tokenizer,
    chat_prompt,
    plain_prompt,
)
from geomalign.testbed.vision_tower import pretrain_vision

__all__ = [
    "CAPTION_INSTRUCTION",
    "CHECKPOINTS",
    "IMAGE_TOKEN",
    "PLANTED_KINDS",
    "Examples",
    "Located",
    "PlantedStudy",
    "ResponseScores",
    "Testbed",
    "TestbedConfig",
    "TestbedData",
    "build_processor",
    "build_testbed",
    "build_tokenizer",
    "chat_prompt",
    "default_cache_dir",
    "evaluate_checkpoint",
    "evaluate_llm",
    "evaluate_vlm",
    "iou",
    "make_testbed_data",
    "plain_prompt",
    "planted_blocks",
    "planted_study",
    "pretrain_vision",
    "recovered",
    "scene_facts",
    "score_responses",
    "tune_planted",
]

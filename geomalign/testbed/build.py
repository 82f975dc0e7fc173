"""Build the testbed checkpoints following the LLaVA recipe, and cache them on disk."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
import transformers
from transformers import (
    AutoProcessor,
    CLIPVisionModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from geomalign._version import __version__
from geomalign.testbed.config import (
    RECIPE_VERSION,
    TestbedConfig,
    clip_vision_config,
    llama_config,
    llava_config,
)
from geomalign.testbed.evaluation import evaluate_llm, evaluate_vlm
from geomalign.testbed.examples import Examples, TestbedData, make_testbed_data
from geomalign.testbed.tokenizer import build_processor
from geomalign.testbed.vision_tower import pretrain_vision
from geomalign.tuning.training import TrainingResult, train_model

__all__ = ["CHECKPOINTS", "Testbed", "build_testbed", "default_cache_dir"]

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: concurrent builds may duplicate work
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

#: Checkpoint folders of a testbed, in build order.
CHECKPOINTS = ("llm", "base", "tuned")
_MANIFEST = "testbed.json"  # written last: its presence marks a complete build
METRICS_FILE = "metrics.json"
#: Logits of the first held-out examples, computed before saving, to check a reload against.
REFERENCE_LOGITS_FILE = "reference_logits.npy"
_N_REFERENCE = 4


@dataclass(frozen=True)
class Testbed:
    """A built testbed: three checkpoints in a cache folder, and their held-out metrics.

    Attributes
    ----------
    root : pathlib.Path
        The folder of this configuration, ``<cache_dir>/<config fingerprint>``.
    config : TestbedConfig
        The configuration it was built from.
    metrics : dict of str to dict
        Held-out metrics of ``"llm"``, ``"vision"`` (the vision pre-training), ``"base"`` and
        ``"tuned"``; see :func:`~geomalign.testbed.evaluate_vlm`.
    """

    __test__ = False  # not a pytest test class despite its name

    root: Path
    config: TestbedConfig
    metrics: dict[str, dict[str, float]]

    @property
    def llm(self) -> Path:
        """The text-only base LLM (``LlamaForCausalLM`` + tokenizer)."""
        return self.root / "llm"

    @property
    def base(self) -> Path:
        """The stage-1 VLM (``LlavaForConditionalGeneration`` + processor): projector aligned."""
        return self.root / "base"

    @property
    def tuned(self) -> Path:
        """The stage-2 VLM: projector and language model instruction-tuned."""
        return self.root / "tuned"

    def data(self) -> TestbedData:
        """Regenerate the training and held-out sets the checkpoints were built and scored on."""
        processor = AutoProcessor.from_pretrained(self.base)
        return make_testbed_data(self.config, processor)


def default_cache_dir() -> Path:
    """Where testbeds are cached unless told otherwise.

    ``$GEOMALIGN_CACHE/testbed`` when the ``GEOMALIGN_CACHE`` environment variable is set, else
    ``$XDG_CACHE_HOME/geomalign/testbed``, else ``~/.cache/geomalign/testbed``.
    """
    if os.environ.get("GEOMALIGN_CACHE"):
        return Path(os.environ["GEOMALIGN_CACHE"]).expanduser() / "testbed"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "geomalign" / "testbed"


def build_testbed(
    config: TestbedConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    num_threads: int | None = 1,
    progress: bool = True,
) -> Testbed:
    """Build (or reuse) the testbed checkpoints of ``config``.

    The recipe is LLaVA's, on the shapes world:

    0. a word-level tokenizer over the world's vocabulary (:func:`build_tokenizer`);
    1. text pre-training of a Llama-style LLM on captions and text-only questions about them
       (every token scored) -> ``llm/``;
    2. supervised pre-training of a CLIP-style vision tower on the scene facts
       (:func:`pretrain_vision`), which stands in for CLIP pre-training and is then frozen;
    3. stage 1: a LLaVA model (vision tower + projector + the LLM) trains its projector alone on
       image -> caption with the plain prompt -> ``base/``;
    4. stage 2: projector and LLM train on the training images' questions and on captioning in
       conversation prompts -> ``tuned/``.

    Each checkpoint folder is written with ``save_pretrained`` (model and tokenizer or processor)
    and loads back with ``from_pretrained`` by path. Beside it lie ``metrics.json`` (its held-out
    scores and training summary) and ``reference_logits.npy`` (its logits on the first held-out
    examples, computed before saving). ``testbed.json`` at the root is written last; a folder
    without it is rebuilt. Builds go to a temporary folder renamed into place, and processes
    building one configuration at once wait for each other (a lock file beside the folder), so
    a cached testbed is always complete and built once.

    Parameters
    ----------
    config : TestbedConfig, default=None
        What to build; None means ``TestbedConfig()`` (the full build).
    cache_dir : path-like, default=None
        Folder holding one subfolder per configuration fingerprint; None means
        :func:`default_cache_dir`.
    overwrite : bool, default=False
        Rebuild (replacing the cached build) even if a complete build is cached.
    device : str or torch.device, default="cpu"
        Where to train. Builds are deterministic on the CPU for a given ``num_threads``; other
        devices give other weights under the same fingerprint.
    num_threads : int or None, default=1
        Torch intra-op threads during the build (restored afterwards); None leaves the current
        setting. The models are so small that one thread is fastest, and several threads on a
        busy machine are an order of magnitude slower.
    progress : bool, default=True
        Show progress bars.

    Returns
    -------
    Testbed
    """
    config = TestbedConfig() if config is None else config
    if not isinstance(config, TestbedConfig):
        raise TypeError(f"config must be a TestbedConfig or None; got {type(config).__name__}.")
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None; got {num_threads!r}.")
    cache = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    root = cache / config.fingerprint()
    if not overwrite and (root / _MANIFEST).is_file():
        logger.info("reusing the testbed in %s", root)
        return _read(root)
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / f".{root.name}.lock"):
        if not overwrite and (root / _MANIFEST).is_file():  # built while we waited
            return _read(root)
        if fcntl is not None:  # the lock is held: folders of killed builds are stale
            for stale in cache.glob(f".{root.name}.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=cache))
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(num_threads or threads)
            _build(config, staging, torch.device(device), progress)
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            torch.set_num_threads(threads)
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("testbed built in %s", root)
    return _read(root)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs."""
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read(root: Path) -> Testbed:
    manifest = json.loads((root / _MANIFEST).read_text())
    return Testbed(
        root=root, config=TestbedConfig(**manifest["config"]), metrics=manifest["metrics"]
    )


def _build(config: TestbedConfig, out: Path, device: torch.device, progress: bool) -> None:
    start = time.perf_counter()
    processor = build_processor(config)
    data = make_testbed_data(config, processor)
    tokenizer = processor.tokenizer
    special = {
        "pad": tokenizer.pad_token_id,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
    text_config = llama_config(config, len(tokenizer), special)
    common: _TrainingOptions = {"batch_size": config.batch_size, "progress": progress}
    metrics: dict[str, dict[str, float]] = {}
    timing: dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        llm = LlamaForCausalLM(text_config).to(device)  # type: ignore[arg-type]  # transformers types PreTrainedModel.to as unbound
        result = train_model(
            llm,
            data.text,
            steps=config.lm_steps,
            lr=config.lm_lr,
            random_state=config.seed,
            evaluate=lambda m: evaluate_llm(m, data),
            description="text pre-training",
            **common,
        )
        _save(llm, tokenizer, out / "llm", result, data.text_qa_eval)
        metrics["llm"], timing["llm"] = result.metrics, result.wall_time

        torch.manual_seed(config.seed)
        vision = CLIPVisionModel(clip_vision_config(config)).to(device)  # type: ignore[arg-type]  # transformers types PreTrainedModel.to as unbound
        result = pretrain_vision(
            vision,
            *data.vision_train,
            steps=config.vision_steps,
            lr=config.vision_lr,
            random_state=config.seed,
            test=data.vision_test,
            **common,
        )
        metrics["vision"], timing["vision"] = result.metrics, result.wall_time

        torch.manual_seed(config.seed)
        vlm = LlavaForConditionalGeneration(
            llava_config(config, text_config, tokenizer.image_token_id)
        ).to(device)  # type: ignore[arg-type]  # transformers types PreTrainedModel.to as unbound
        vlm.model.vision_tower.load_state_dict(vision.state_dict())
        vlm.model.language_model.load_state_dict(llm.model.state_dict())
        vlm.lm_head.load_state_dict(llm.lm_head.state_dict())
        del llm, vision

        # Stage 1 trains the projector (the base VLM), stage 2 the LLM as well (the tuned VLM).
        vlm.requires_grad_(False)
        stages = (
            (1, "base", data.stage1, config.stage1_steps, config.stage1_lr, "stage 1 (projector)",
             [vlm.model.multi_modal_projector]),
            (2, "tuned", data.stage2, config.stage2_steps, config.stage2_lr,
             "stage 2 (projector + LLM)", [vlm.model.language_model, vlm.lm_head]),
        )  # fmt: skip
        for stage, name, examples, steps, lr, description, unfrozen in stages:
            for module in unfrozen:
                module.requires_grad_(True)
            result = train_model(
                vlm,
                examples,
                steps=steps,
                lr=lr,
                random_state=config.seed + stage,
                evaluate=lambda m: evaluate_vlm(m, data),
                description=description,
                **common,
            )
            _save(vlm, processor, out / name, result, data.qa_eval)
            metrics[name], timing[name] = result.metrics, result.wall_time

    manifest = {
        "fingerprint": config.fingerprint(),
        "recipe_version": RECIPE_VERSION,
        "config": dataclasses.asdict(config),
        "metrics": metrics,
        "train_seconds": timing,
        "build_seconds": time.perf_counter() - start,
        "versions": {
            "geomalign": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    (out / _MANIFEST).write_text(json.dumps(manifest, indent=2))


class _TrainingOptions(TypedDict):
    """The options every training stage of the build shares."""

    batch_size: int
    progress: bool


def _save(
    model: transformers.PreTrainedModel,
    processor: LlavaProcessor | transformers.PreTrainedTokenizerBase,
    folder: Path,
    result: TrainingResult,
    reference: Examples,
) -> None:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    batch = reference.batch(range(_N_REFERENCE), device=next(model.parameters()).device)
    batch.pop("labels")
    with torch.inference_mode():
        logits = model(**batch).logits.float().cpu().numpy()
    np.save(folder / REFERENCE_LOGITS_FILE, logits)
    summary = {
        "metrics": result.metrics,
        "training": {
            "steps": result.steps,
            "wall_time": result.wall_time,
            "n_trainable": result.n_trainable,
        },
    }
    (folder / METRICS_FILE).write_text(json.dumps(summary, indent=2))

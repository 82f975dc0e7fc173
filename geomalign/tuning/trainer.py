"""Fine-tune a (vision-)language model on instruction data with the Hugging Face ``Trainer``.

The ``Trainer`` (rather than a loop over ``accelerate`` written here) brings, tested by its many
users, what a real run needs: gradient accumulation with the loss normalised by the number of
response tokens of the whole accumulated (and, under DDP, global) batch, gradient checkpointing,
bf16 autocast, checkpoints holding the optimizer, scheduler and RNG states so that a resumed run
continues the same data order, and DDP / FSDP under ``torchrun`` or ``accelerate launch`` with no
change of code. geomalign adds what is specific to layer-selective tuning: what trains
(:func:`~geomalign.tuning.prepare_window`, which also stops the backward pass below the window)
and the cost of the run (:class:`~geomalign.tuning.costs.CostMeter`, tokens per second, bytes of
optimizer state), with an evaluation before and after.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from geomalign._validation import check_positive_int
from geomalign.tuning.costs import CostMeter, Costs, state_bytes
from geomalign.tuning.freezing import TrainableParameters
from geomalign.tuning.instruct_encoding import InstructionCollator
from geomalign.tuning.windows import prepare_window

__all__ = ["FinetuneResult", "finetune"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tuning run trained, what it cost and how it scored.

    Attributes
    ----------
    blocks : tuple of int
        Decoder blocks that trained (all of them in a full run).
    method : str
        ``"weights"`` or ``"lora"``.
    steps : int
        Optimizer steps (each of ``batch_size x gradient_accumulation x world_size`` rows).
    costs : Costs
        Wall, CPU and device time and peak memory of the training (evaluation excluded).
    optimizer_time : float
        Seconds of it in optimizer steps (gradient clipping excluded): the part that grows
        with the trained parameters, where the forward and backward passes grow with the
        blocks they cross.
    tokens : int
        Tokens (image tokens included, padding excluded) of every process's training batches.
    trainable : TrainableParameters
        What trained, per part.
    state : dict of str to int
        Bytes of trainable weights (their gradients take as many) and of optimizer states, on
        this process.
    stop_below : int or None
        Block whose input was detached, or None.
    world_size : int
        Processes that trained together.
    losses : numpy.ndarray
        Training loss at every logged step.
    before, after : dict of str to float
        Evaluation before and after training (empty on ranks other than 0 and without one).
    model : torch.nn.Module
        The trained model (a peft wrapper for LoRA).
    """

    blocks: tuple[int, ...]
    method: str
    steps: int
    costs: Costs
    optimizer_time: float
    tokens: int
    trainable: TrainableParameters
    state: dict[str, int]
    stop_below: int | None
    world_size: int
    losses: np.ndarray = field(repr=False)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def tokens_per_second(self) -> float:
        """Training tokens per second of wall time, all processes together."""
        return self.tokens / self.costs.wall_time if self.costs.wall_time else float("nan")


def finetune(
    model: nn.Module,
    train: torch.utils.data.Dataset,
    *,
    output_dir: str | os.PathLike[str],
    blocks: Sequence[int] | range | Literal["all"] = "all",
    method: Literal["weights", "lora"] = "weights",
    projector: bool = False,
    lora_rank: int = 8,
    steps: int,
    lr: float = 2e-5,
    batch_size: int = 4,
    gradient_accumulation: int = 1,
    warmup_ratio: float = 0.03,
    gradient_checkpointing: bool = False,
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto",
    save_steps: int | None = None,
    resume: bool | str = False,
    stop_gradient: bool = True,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    pad_token_id: int = 0,
    device: str | None = None,
    random_state: int = 0,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` (all of it, a window of blocks, or LoRA on a window) on ``train``.

    Under ``torchrun`` / ``accelerate launch`` every process runs this same call and the
    ``Trainer`` joins them in DDP (``batch_size`` is per process). Only process 0 evaluates.

    Parameters
    ----------
    model : torch.nn.Module
        A Hugging Face (vision-)language model whose forward takes ``labels`` and returns the
        loss; changed in place (peft-wrapped for LoRA: use the returned result's blocks and
        the saved checkpoint).
    train : torch.utils.data.Dataset
        Encoded examples, e.g. an :class:`~geomalign.tuning.InstructionDataset`.
    output_dir : str or os.PathLike
        Where checkpoints go (``checkpoint-<step>/``).
    blocks, method, projector, lora_rank, stop_gradient
        What trains, as in :func:`~geomalign.tuning.prepare_window`.
    steps : int
        Optimizer steps.
    lr : float, default=2e-5
        Peak learning rate (AdamW, linear warm-up then cosine decay).
    batch_size : int, default=4
        Rows per process per forward pass.
    gradient_accumulation : int, default=1
        Forward passes per optimizer step.
    warmup_ratio : float, default=0.03
        Share of the steps spent warming up.
    gradient_checkpointing : bool, default=False
        Recompute activations in the backward pass (non-reentrant checkpointing).
    precision : {"auto", "bf16", "fp16", "fp32"}, default="auto"
        Autocast mode; ``"auto"`` is bf16 on a CUDA device that supports it, else fp32.
    save_steps : int, default=None
        Save a checkpoint every this many steps (None: no checkpoints).
    resume : bool or str, default=False
        Resume from the last checkpoint in ``output_dir`` (True) or from this checkpoint folder.
    evaluate : callable, default=None
        ``evaluate(model) -> dict`` run before and after training on process 0, e.g. a partial
        of :func:`~geomalign.tuning.evaluate_instructions`.
    pad_token_id : int, default=0
        Padding id of the batches.
    device : str, default=None
        ``"cpu"`` forces the CPU; None lets the ``Trainer`` choose (the GPU of the process).
    random_state : int, default=0
        Seed of the data order, of LoRA's initialisation and of every RNG the run uses.
    progress : bool, default=False
        Show the ``Trainer``'s progress bar.

    Returns
    -------
    FinetuneResult
    """
    from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed

    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    gradient_accumulation = check_positive_int(gradient_accumulation, "gradient_accumulation")
    if not lr > 0 or not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"lr must be > 0 and warmup_ratio in [0, 1); got {lr!r}, {warmup_ratio!r}")
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32; got {precision!r}")
    if save_steps is not None:
        save_steps = check_positive_int(save_steps, "save_steps")
    set_seed(random_state)
    prepared = prepare_window(
        model,
        blocks,
        method=method,
        projector=projector,
        lora_rank=lora_rank,
        stop_gradient=stop_gradient,
        random_state=random_state,
    )
    model = prepared.model
    use_cpu = device == "cpu" or not torch.cuda.is_available()
    if precision == "auto":
        precision = "bf16" if not use_cpu and torch.cuda.is_bf16_supported() else "fp32"
    # transformers 5 renamed gradient_checkpointing* to activation_checkpointing*
    fields = TrainingArguments.__dataclass_fields__
    checkpointing = next(
        n for n in ("activation_checkpointing", "gradient_checkpointing") if n in fields
    )
    checkpointing_options: dict[str, Any] = {
        checkpointing: gradient_checkpointing,
        f"{checkpointing}_kwargs": {"use_reentrant": False},
    }
    args = TrainingArguments(
        output_dir=os.fspath(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=int(warmup_ratio * steps),
        weight_decay=0.0,
        max_grad_norm=1.0,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **checkpointing_options,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        logging_steps=1,
        seed=random_state,
        data_seed=random_state,
        use_cpu=use_cpu,
        ddp_find_unused_parameters=False,
        ddp_backend="gloo" if use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )
    meter = CostMeter(args.device)
    optimizer_time = [0.0, 0.0]  # total, start of the current step

    class Measure(TrainerCallback):
        """Runs the meter from the start to the end of training; times the optimizer steps."""

        def on_train_begin(self, *_: Any, **__: Any) -> None:
            meter.__enter__()

        def on_pre_optimizer_step(self, *_: Any, **__: Any) -> None:
            _synchronize(args.device)
            optimizer_time[1] = time.perf_counter()

        def on_optimizer_step(self, *_: Any, **__: Any) -> None:
            _synchronize(args.device)
            optimizer_time[0] += time.perf_counter() - optimizer_time[1]

        def on_train_end(self, *_: Any, **__: Any) -> None:
            meter.__exit__()

    trainer = _CountingTrainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=InstructionCollator(pad_token_id),
        callbacks=[Measure()],
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    main = trainer.is_world_process_zero()
    before = evaluate(model) if evaluate is not None and main else {}
    trainer.train(resume_from_checkpoint=resume or None)
    counted = torch.tensor([trainer.tokens], device=args.device)
    tokens = int(trainer.accelerator.reduce(counted, reduction="sum"))
    after = evaluate(model) if evaluate is not None and main else {}
    losses = np.array([entry["loss"] for entry in trainer.state.log_history if "loss" in entry])
    assert meter.costs is not None
    result = FinetuneResult(
        blocks=prepared.blocks,
        method=method,
        steps=trainer.state.global_step,
        costs=meter.costs,
        optimizer_time=optimizer_time[0],
        tokens=tokens,
        trainable=prepared.trainable,
        state=state_bytes(trainer.optimizer, model),
        stop_below=prepared.stop_below,
        world_size=args.world_size,
        losses=losses,
        before=before,
        after=after,
        model=model,
    )
    prepared.remove_stop()
    logger.info(
        "blocks %s (%s): %d steps in %.1f s, %.0f tokens/s, %s -> %s",
        _describe(result.blocks),
        method,
        result.steps,
        result.costs.wall_time,
        result.tokens_per_second,
        before,
        after,
    )
    return result


def save_model(result_model: Any, processor: Any, folder: str | os.PathLike[str]) -> Path:
    """Save a fine-tuned model (or its LoRA adapters) and its processor with ``save_pretrained``."""
    path = Path(folder)
    result_model.save_pretrained(path)
    if processor is not None:
        processor.save_pretrained(path)
    return path


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _describe(blocks: Sequence[int]) -> str:
    return f"{blocks[0]}-{blocks[-1]}" if blocks else "-"


def _CountingTrainer(**kwargs: Any) -> Any:
    from transformers import PreTrainedModel, Trainer

    class CountingTrainer(Trainer):
        """A ``Trainer`` that counts the tokens of its training batches and resumes LLaVA."""

        tokens = 0

        def compute_loss(self, model: nn.Module, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            if model.training:
                self.tokens += int(inputs["attention_mask"].sum())
            return super().compute_loss(model, inputs, *args, **kwargs)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            # transformers saves LLaVA-family checkpoints under their original key names but
            # the Trainer loads them back without renaming, so that no weight loads (it only
            # warns): load through from_pretrained, which renames, then copy the weights in.
            target = self.model if model is None else model
            if not isinstance(target, PreTrainedModel):  # peft adapters load correctly
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            loaded = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype)
            target.load_state_dict(loaded.state_dict(), strict=True)
            return None

    return CountingTrainer(**kwargs)

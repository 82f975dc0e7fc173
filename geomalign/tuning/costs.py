"""What a training run costs: wall, CPU and device time, peak memory, bytes of training state.

Peak memory is the CUDA allocator's peak (``torch.cuda.max_memory_allocated``, reset when the
meter starts) on a GPU; on a CPU it is the peak resident set size of the process while the meter
runs, sampled every few milliseconds from ``/proc/self/statm`` (the whole process: the model,
the data and the allocator's cached memory, so compare runs made in separate processes or in
the same order).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch

__all__ = ["CostMeter", "Costs", "state_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Costs:
    """Time and memory of a run.

    Attributes
    ----------
    wall_time : float
        Seconds.
    cpu_time : float
        CPU seconds of the process (all threads).
    device_time : float or None
        Seconds between CUDA events recorded at start and stop on the device; None on a CPU.
    peak_memory : int
        Bytes: the CUDA allocator's peak on a GPU, else the process's peak resident set size.
    memory_kind : str
        ``"cuda-allocated"`` or ``"cpu-rss"``.
    """

    wall_time: float
    cpu_time: float
    device_time: float | None
    peak_memory: int
    memory_kind: str


class CostMeter:
    """Measure the time and peak memory of a block of code: ``with CostMeter(device) as m:``.

    After the block, :attr:`costs` holds the :class:`Costs`.
    """

    def __init__(self, device: torch.device | str = "cpu", *, interval: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.costs: Costs | None = None
        self._peak_rss = 0
        self._stop = threading.Event()

    def __enter__(self) -> CostMeter:
        self._cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if self._cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
            self._events[0].record()
        else:
            self._peak_rss = _rss()
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        device_time = None
        if self._cuda:
            self._events[1].record()
            torch.cuda.synchronize(self.device)
            device_time = self._events[0].elapsed_time(self._events[1]) / 1000.0
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        if self._cuda:
            peak, kind = torch.cuda.max_memory_allocated(self.device), "cuda-allocated"
        else:
            self._stop.set()
            self._sampler.join()
            peak, kind = max(self._peak_rss, _rss()), "cpu-rss"
        self.costs = Costs(wall, cpu, device_time, int(peak), kind)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak_rss = max(self._peak_rss, _rss())


def _rss() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the process's lifetime peak is all there is
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def state_bytes(optimizer: torch.optim.Optimizer | None, model: torch.nn.Module) -> dict[str, int]:
    """Bytes of the training state: trainable weights (gradients take as many), optimizer states.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer or None
        After at least one step (its states exist then).
    model : torch.nn.Module

    Returns
    -------
    dict
        ``trainable_bytes`` and ``optimizer_state_bytes`` (every tensor of the optimizer's
        state).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    states = 0
    if optimizer is not None:
        for state in optimizer.state.values():
            states += sum(
                v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v)
            )
    return {
        "trainable_bytes": sum(p.numel() * p.element_size() for p in trainable),
        "optimizer_state_bytes": states,
    }

"""Kernels of small analyses run on one thread; large ones keep theirs."""

from __future__ import annotations

import torch

from geomalign.analysis._threads import PARALLEL_WORK, kernel_threads


def test_one_thread_below_the_parallel_work_only():
    torch.set_num_threads(2)  # the suite's fixture restores its own count afterwards
    with kernel_threads(40, 64):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with kernel_threads(2000, PARALLEL_WORK // 2000**2 + 1):
        assert torch.get_num_threads() == 2

"""How many threads the measure kernels get: one for small inputs, where more only wait."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

__all__ = ["kernel_threads"]

#: Below this many multiply-adds in one n x n x width product, kernels run on one thread.
PARALLEL_WORK = 2**28


@contextmanager
def kernel_threads(n_samples: int, width: int) -> Iterator[None]:
    """Run the block on one torch and one BLAS thread when a product is too small to share.

    An analysis calls its kernels thousands of times (every layer, permutation and resample) on
    products of ``n_samples`` rows of ``width`` features. Below :data:`PARALLEL_WORK`
    multiply-adds (n = 400 at width 1,600) a product takes microseconds to milliseconds, and
    handing it to a second thread costs more than it saves: on shared cores each call then waits
    for a busy thread (a 40 x 64 product took 1.2 ms on two threads, 17 us on one). Larger inputs
    keep the threads they have.
    """
    if n_samples * n_samples * width >= PARALLEL_WORK:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(threads)

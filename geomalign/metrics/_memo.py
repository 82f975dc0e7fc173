"""Results of recent computations, found again by the contents of their inputs."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
import torch

__all__ = ["Memo", "digest"]

T = TypeVar("T")


def digest(X: np.ndarray | torch.Tensor, settings: tuple[object, ...]) -> Hashable | None:
    """A key for results computed from ``X`` with ``settings``, or None where not kept.

    A digest (BLAKE2b, 128 bits) of the bytes of ``X`` with its dtype, shape and the settings:
    the same rows give the same key whichever array holds them, and rows changed in place give
    another. Hashing costs one pass over the rows. Rows on an accelerator are not kept (their
    digest would copy them to the host).
    """
    if isinstance(X, torch.Tensor):
        if X.device.type != "cpu":
            return None
        data = X.detach().contiguous().view(torch.uint8).numpy()
    else:
        data = np.ascontiguousarray(X)
    code = hashlib.blake2b(data.data.cast("B"), digest_size=16).digest()
    return (code, str(X.dtype), tuple(X.shape), settings)


class Memo(Generic[T]):
    """The latest results, at most ``max_bytes`` of them (least recent out).

    Results are copied in and out (``copy``), so that a caller changing its copy does not change
    the memo's; ``size`` gives a result's bytes. A None key is never kept.
    """

    def __init__(self, max_bytes: int, *, size: Callable[[T], int], copy: Callable[[T], T]):
        self.max_bytes = max_bytes
        self._size, self._copy = size, copy
        self._kept: OrderedDict[Hashable, T] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable | None) -> T | None:
        """A copy of the result kept under ``key``, or None."""
        if key is None:
            return None
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            self._kept.move_to_end(key)
        return self._copy(found)

    def put(self, key: Hashable | None, result: T) -> T:
        """Keep a copy of ``result`` under ``key`` (unless None) and return ``result``."""
        size = self._size(result)
        if key is None or size > self.max_bytes:
            return result
        with self._lock:
            if key not in self._kept:
                self._kept[key] = self._copy(result)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._kept.popitem(last=False)
                self._bytes -= self._size(old)
        return result

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._kept.clear()
            self._bytes = 0

"""The results of recent neighbour searches, found again by the contents of the rows searched."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from geomalign.metrics._neighbors import Neighbors

__all__ = ["SearchMemo"]


class SearchMemo:
    """Neighbour lists of the latest searches, at most ``max_bytes`` of them (least recent out).

    A search is found again by a digest (BLAKE2b, 128 bits) of the bytes of the rows searched,
    with their dtype, shape and the search settings: the same rows give the same lists whichever
    array holds them, and rows changed in place are searched afresh. Hashing costs one pass over
    the rows, against the n^2 products of a search. Rows on an accelerator are not kept (their
    digest would copy them to the host). Results are copied in and out, so that a caller
    changing its lists does not change the memo's.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, Neighbors] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(X: np.ndarray | torch.Tensor, settings: tuple[object, ...]) -> Hashable | None:
        """The key of a search of the rows ``X`` with ``settings``, or None where not kept."""
        if isinstance(X, torch.Tensor):
            if X.device.type != "cpu":
                return None
            data = X.detach().contiguous().view(torch.uint8).numpy()
        else:
            data = np.ascontiguousarray(X)
        dtype = str(X.dtype)
        digest = hashlib.blake2b(data.data.cast("B"), digest_size=16).digest()
        return (digest, dtype, tuple(X.shape), settings)

    def get(self, key: Hashable | None) -> Neighbors | None:
        """A copy of the lists kept under ``key``, or None."""
        if key is None:
            return None
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            self._kept.move_to_end(key)
        return _copied(found)

    def put(self, key: Hashable | None, found: Neighbors) -> Neighbors:
        """Keep a copy of ``found`` under ``key`` (unless None) and return ``found``."""
        size = found.indices.nbytes + found.distances.nbytes
        if key is None or size > self.max_bytes:
            return found
        with self._lock:
            if key not in self._kept:
                self._kept[key] = _copied(found)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._kept.popitem(last=False)
                self._bytes -= old.indices.nbytes + old.distances.nbytes
        return found

    def clear(self) -> None:
        """Forget every search."""
        with self._lock:
            self._kept.clear()
            self._bytes = 0


def _copied(found: Neighbors) -> Neighbors:
    return replace(found, indices=found.indices.copy(), distances=found.distances.copy())

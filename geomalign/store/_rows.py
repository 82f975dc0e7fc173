"""Low-level row I/O for the activation store: allocation, validation, and contiguous runs."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np


def allocated(
    group: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    dtype,
    chunks,
    *,
    compression=None,
    zeroed=False,
) -> h5py.Dataset:
    """Create a chunked dataset whose chunks all exist on disk from the start.

    Uncompressed chunks are allocated at creation, so later writes never touch the file's
    metadata. Compressed chunks have no size until written and are allocated as they come.
    """
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    if compression is None:
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    else:
        dcpl.set_deflate(4)
    if zeroed:
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    htype = h5py.h5t.py_create(np.dtype(dtype))
    space = h5py.h5s.create_simple(shape)
    return h5py.Dataset(h5py.h5d.create(group.id, name.encode(), htype, space, dcpl=dcpl))


BFLOAT16 = "bfloat16"  # stored as its uint16 bit pattern, with attribute dtype="bfloat16"


def to_bfloat16_bits(arr: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) of float32 values, rounded to nearest even.

    Exact for values that came from bfloat16; NaN stays NaN and overflow becomes Inf.
    """
    bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16  # wraps to Inf on overflow
    out = rounded.astype(np.uint16)
    out[nan] = 0x7FC0
    return out


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def as_numpy(data) -> np.ndarray:
    if hasattr(data, "detach"):  # a torch tensor, possibly bfloat16 (no numpy twin) or on a GPU
        tensor = data.detach().to("cpu")
        return (tensor.float() if str(tensor.dtype) == "torch.bfloat16" else tensor).numpy()
    return np.asarray(data)


# Per float format: the unsigned view and the exponent mask; all exponent bits set = NaN or Inf.
_EXPONENT: dict[str, tuple[type[np.unsignedinteger], int]] = {
    "float16": (np.uint16, 0x7C00),
    "float32": (np.uint32, 0x7F800000),
    "float64": (np.uint64, 0x7FF << 52),
    BFLOAT16: (np.uint16, 0x7F80),
}


def has_nonfinite(arr: np.ndarray, kind: str | None = None, block: int = 1 << 18) -> bool:
    """Whether ``arr`` holds a NaN or Inf: an exponent-bit test in cache-sized blocks.

    ``kind`` names the float format of ``arr``'s bits (default: its dtype; "bfloat16" for
    uint16 bit patterns). Several times faster than ``np.isfinite`` on float16, which keeps row
    validation cheap against the write itself.
    """
    utype, bits = _EXPONENT[kind or str(arr.dtype)]
    flat = np.ascontiguousarray(arr).reshape(-1).view(utype)
    mask = utype(bits)
    scratch = np.empty(min(block, flat.size), dtype=utype)
    for lo in range(0, flat.size, block):
        part = flat[lo : lo + block]
        exponent = np.bitwise_and(part, mask, out=scratch[: part.size])
        if exponent.max() == mask:
            return True
    return False


def runs(starts: np.ndarray, stops: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """Merge consecutive row ranges: yield (lo, hi, position in the concatenated buffer)."""
    run_lo, run_hi, run_pos = int(starts[0]), int(stops[0]), 0
    pos = run_hi - run_lo
    for lo, hi in zip(starts[1:].tolist(), stops[1:].tolist(), strict=True):
        if lo == run_hi:
            run_hi = hi
        else:
            yield run_lo, run_hi, run_pos
            run_lo, run_hi, run_pos = lo, hi, pos
        pos += hi - lo
    yield run_lo, run_hi, run_pos


def index_runs(
    sorted_idx: np.ndarray, flags: np.ndarray | None = None
) -> Iterator[tuple[int, int, int]]:
    """Split sorted indices into runs of consecutive indices (with equal ``flags``, if given):
    yield (first index, last index + 1, position of the first in ``sorted_idx``)."""
    cuts = np.diff(sorted_idx) != 1
    if flags is not None:
        cuts |= np.diff(flags) != 0
    breaks = np.flatnonzero(cuts) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, sorted_idx.size], strict=True):
        yield int(sorted_idx[start]), int(sorted_idx[stop - 1]) + 1, int(start)

"""Progress bars that stay quiet where nobody watches them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(iterable: Iterable | None = None, *, progress: bool, **options: object) -> tqdm:
    """A tqdm bar (on stderr) when ``progress`` and stderr is a terminal, else a silent one.

    Logs and pipes get no bar: tqdm's ``disable=None`` turns it off on a non-terminal.
    """
    return tqdm(iterable, disable=None if progress else True, **options)


_bar: ContextVar[tqdm | None] = ContextVar("geomalign_progress_bar", default=None)


@contextmanager
def reporting_to(bar: tqdm) -> Iterator[tqdm]:
    """Make :func:`advance` calls inside the block move ``bar`` (one bar over nested loops)."""
    token = _bar.set(bar)
    try:
        yield bar
    finally:
        _bar.reset(token)


def advance(steps: int = 1) -> None:
    """Move the bar of the enclosing :func:`reporting_to` block by ``steps``; no bar, no-op."""
    bar = _bar.get()
    if bar is not None:
        bar.update(steps)


def ticking(items: Iterable[T]) -> Iterator[T]:
    """Yield ``items``, calling :func:`advance` once each item's loop body has run."""
    for item in items:
        yield item
        advance()

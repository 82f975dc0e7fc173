"""Progress bars that stay quiet where nobody watches them."""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable | None = None, *, progress: bool, **options: object) -> tqdm:
    """A tqdm bar (on stderr) when ``progress`` and stderr is a terminal, else a silent one.

    Logs and pipes get no bar: tqdm's ``disable=None`` turns it off on a non-terminal.
    """
    return tqdm(iterable, disable=None if progress else True, **options)

"""Layout changes of a store as transactions: made in a partial copy, renamed over the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from geomalign.store._errors import StoreError
from geomalign.store._files import Partial
from geomalign.store._hdf5 import hdf5_errors


class Transactions:
    """The layout-change half of :class:`~geomalign.store.ActivationStore` (a mixin)."""

    path: Path
    _file: h5py.File
    _live: h5py.File | None
    _partial: Partial | None
    _depth: int
    _lock_fd: int
    _dead: bool

    def _writable(self) -> None:
        raise NotImplementedError

    def _sync(self) -> None:
        raise NotImplementedError

    def _open(self, path: Path) -> h5py.File:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Transactions]:
        """Make the layout changes inside the block (checkpoints, views) as one atomic step.

        The first change copies the store to a partial file beside it, every change of the block
        goes to that copy, and at the end of the block the copy is reserved on disk, synced and
        renamed over the store. A process killed inside the block leaves the store as it was
        before the block (the partial file is removed by the next writer); an exception
        discards the changes and is re-raised. Each :meth:`add_checkpoint` and
        :meth:`create_view` outside a block is a transaction of its own; group them so that the
        store is copied once. Readers that opened the store before the block keep the old file.

        Examples
        --------
        >>> with store.transaction():  # doctest: +SKIP
        ...     store.add_checkpoint("base", model="path/to/stage1")
        ...     store.create_view("base", "image", "mean", layers=range(33), dim=4096)
        """
        self._writable()
        self._depth += 1
        try:
            yield self
            if self._depth == 1 and self._partial is not None:
                self._commit()
        except BaseException:
            if self._depth == 1 and self._partial is not None:
                self._discard()
            raise
        finally:
            self._depth -= 1

    def _stage(self) -> None:
        """Redirect the store to a partial copy of itself, if not done yet in this transaction."""
        if self._partial is not None:
            return
        with hdf5_errors(self.path, "cannot copy the store for a layout change"):
            self._sync()
            partial = Partial(self.path, copy_of=self.path)
        try:
            staged = self._open(partial.path)
        except BaseException:
            partial.discard()
            raise
        self._live, self._file, self._partial = self._file, staged, partial

    def _commit(self) -> None:
        partial, live = self._partial, self._live
        if partial is None or live is None:  # pragma: no cover - only called while staged
            return
        failure = f"{self.path}: layout change failed, store unchanged"
        try:
            self._file.flush()
            self._file.close()
        except (OSError, RuntimeError, ValueError) as exc:
            self._discard()
            raise StoreError(f"{failure}: {exc}") from exc
        try:
            # closed before the rename, so that its errors still count; our flock stays on it
            live.close()
        except (OSError, RuntimeError, ValueError) as exc:
            # HDF5 keeps a file whose close failed half open: touching it again is not safe
            partial.discard()
            self._partial = self._live = None
            self._dead = True
            self._release()
            raise StoreError(f"{failure}; the store is closed: {exc}") from exc
        try:
            lock_fd = partial.commit()
        except OSError as exc:
            partial.discard()
            self._partial = self._live = None
            self._dead = True
            self._release()
            raise StoreError(f"{failure}; the store is closed: {exc}") from exc
        self._partial = None
        self._live = None
        os.close(self._lock_fd)
        self._lock_fd = lock_fd  # the partial's lock, now on the store
        self._file = self._open(self.path)

    def _discard(self) -> None:
        partial, live = self._partial, self._live
        if partial is None or live is None:  # pragma: no cover - only called while staged
            return
        try:
            if self._file.id.valid:
                self._file.close()
        except (OSError, RuntimeError):
            pass  # the copy is thrown away whatever state it is in
        partial.discard()
        self._partial = None
        self._file, self._live = live, None

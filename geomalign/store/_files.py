"""Crash-safe file operations: build a file beside its target, make it durable, rename it in.

A layout change of a store (its creation, a new checkpoint, a new view) never edits the live file's
HDF5 metadata. It is made in a partial copy ``.<name>.<hex>.partial`` in the same folder, which is
reserved on disk (``posix_fallocate``), synced, and renamed over the store (an atomic step on
POSIX file systems), then the folder is synced. A process killed at any instant leaves either the
old store or the new one, plus at most one partial file, which holds an exclusive ``flock`` while
its writer lives and is removed by the next writer of that store once the lock is free.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

_COPY_BLOCK = 1 << 24
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def partial_path(target: Path) -> Path:
    """A fresh hidden name beside ``target`` for a file that will replace it."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")


def clean_stale_partials(target: Path) -> None:
    """Remove the partial files left beside ``target`` by killed writers (no live lock held)."""
    for path in target.parent.glob(f".*{glob.escape(target.name)}.*.partial"):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(fd)
            continue
        try:
            path.unlink(missing_ok=True)
            logger.info("%s: removed %s, left by an interrupted writer", target, path.name)
        finally:
            os.close(fd)


def lock(path: Path, fd: int) -> None:
    """Take the exclusive lock that marks ``path`` as being written by a live process."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise OSError(
            exc.errno, f"{path}: open for writing by another writer ({exc.strerror})"
        ) from exc


def open_locked(path: Path) -> int:
    """Open ``path`` and take its writer's lock; return the descriptor that holds it."""
    fd = os.open(path, os.O_RDWR)
    try:
        lock(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reserve(fd: int, path: Path) -> None:
    """Allocate disk blocks for the whole file, so that a full disk fails now, not mid-run.

    File systems without ``fallocate`` support are skipped (nothing can be reserved there).
    """
    size = os.fstat(fd).st_size
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return
        raise OSError(
            exc.errno, f"{path}: cannot reserve {size / 1e6:,.1f} MB on disk: {exc.strerror}"
        ) from exc


def copy_into(src: Path, fd: int) -> None:
    """Copy the bytes of ``src`` into the empty file open as ``fd``."""
    with open(src, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        done = 0
        if hasattr(os, "copy_file_range"):
            try:
                while done < size:
                    n = os.copy_file_range(source.fileno(), fd, size - done, done, done)
                    if n == 0:
                        break
                    done += n
            except OSError as exc:
                if exc.errno not in _NO_COPY_RANGE or done:
                    raise
        while done < size:
            block = os.pread(source.fileno(), min(_COPY_BLOCK, size - done), done)
            if not block:
                break
            done += os.pwrite(fd, block, done)
    if done != size:
        raise OSError(errno.EIO, f"{src}: changed size while being copied ({done} of {size} bytes)")


class Partial:
    """A locked partial file that replaces ``target`` on :meth:`commit`, or vanishes on
    :meth:`discard`. ``copy_of`` starts it as a byte copy of an existing file."""

    def __init__(self, target: Path, *, copy_of: Path | None = None) -> None:
        self.target = target
        clean_stale_partials(target)
        self.path = partial_path(target)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            lock(self.path, self.fd)
            if copy_of is not None:
                copy_into(copy_of, self.fd)
        except BaseException:
            self.discard()
            raise

    def commit(self) -> int:
        """Reserve the file's blocks, sync it, and rename it over the target (durably).

        Returns the file descriptor, still holding the lock, now on the target; the caller
        closes it.
        """
        reserve(self.fd, self.path)
        os.fsync(self.fd)
        os.replace(self.path, self.target)
        fd, self.fd = self.fd, -1
        try:
            fsync_dir(self.target.parent)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def discard(self) -> None:
        """Remove the partial file (the target is left as it was)."""
        self.path.unlink(missing_ok=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

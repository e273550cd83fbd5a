"""An inter-process write lock for an embedded index directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from phi3industry.errors import IndexLockedError


@contextlib.contextmanager
def write_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``directory`` while writing to it.

    The lock is an ``flock`` on ``directory/.write.lock``: the kernel releases it when the
    holder exits, even on SIGKILL, so a crashed writer never leaves the index locked.

    Args:
        directory: The index directory.

    Raises:
        IndexLockedError: If another process holds the lock.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".write.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise IndexLockedError(
                f"Another process (pid {holder}) is writing to the index at {directory}. "
                "Wait for it to finish, or write to a different index path. "
                "Searching the index meanwhile is safe."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock

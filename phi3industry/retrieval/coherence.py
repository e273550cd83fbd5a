"""Several processes, one embedded index: a write lock, and a marker that tells readers to reopen.

An embedded Chroma client never sees another process's writes by itself: it keeps the vector
index it loaded in memory. Every write therefore rewrites a marker file with a new random
value (at its start too, so a writer killed mid-write still leaves a new one); readers
compare it with the value they last saw before each search and reopen Chroma when it
changed. Writers take an ``flock``, released by the kernel even when the writer is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from phi3industry.errors import IndexLockedError

#: Rewritten by every write; readers reopen Chroma when it differs from what they saw.
CHANGED_FILE = ".changed"


class ChangeMarker:
    """The change marker of one embedded index directory (a no-op for a server index).

    Args:
        directory: The index directory, or None for a Chroma server (which sees all writes).
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.path = Path(directory) / CHANGED_FILE if directory is not None else None
        self.seen = self.read()

    def read(self) -> str | None:
        """The marker's current value (None if there is none)."""
        if self.path is None:
            return None
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return None

    def changed(self) -> bool:
        """Whether another process wrote since this one last saw the index."""
        return self.read() != self.seen

    def mark(self) -> None:
        """Announce a write to readers in other processes (a new random value)."""
        if self.path is None:
            return
        marker = os.urandom(8).hex()
        tmp = self.path.with_name(f"{CHANGED_FILE}.{os.getpid()}.tmp")
        tmp.write_text(marker, encoding="utf-8")
        os.replace(tmp, self.path)
        self.seen = marker


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

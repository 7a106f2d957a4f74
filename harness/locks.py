"""Exclusive lock files: for the things built once however many processes ask (a trained checkpoint,
the demo models), and for a run dir's one writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive fcntl lock; on platforms without fcntl, no locking."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class HeldLock:
    """A lock held until release() or the end of the process (the OS drops it even after kill -9)."""

    def __init__(self, handle: IO[str] | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None


def try_lock(lock_path: Path) -> HeldLock | None:
    """Take an exclusive lock without waiting; None when another process holds it. The holder's pid is
    written into the file so that the one refused can say who holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return HeldLock(None)
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return HeldLock(handle)


def lock_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"

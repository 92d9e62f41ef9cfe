"""Reload something derived from files when those files change, without a restart."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


def file_state(path: Path) -> tuple[int, int, int]:
    """Return what changes when a file is rewritten or replaced: inode, mtime (ns), size.

    Raises :class:`OSError` when the file cannot be read.
    """
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class Reloading(Generic[T]):
    """A value built from files, rebuilt on the first use after any of them changes.

    ``build`` is called with no arguments; checking costs one ``stat`` per
    file per use. Thread-safe. If a file disappears or ``build`` fails the
    error propagates (callers fail closed), and the next use tries again.
    """

    def __init__(self, paths: Sequence[Path], build: Callable[[], T]):
        self.paths = [Path(p) for p in paths]
        self._build = build
        self._lock = threading.Lock()
        self._state: tuple | None = None
        self._value: T | None = None

    def get(self) -> T:
        """Return the current value, rebuilding it if a file changed since it was built."""
        state = tuple(file_state(p) for p in self.paths)
        with self._lock:
            if state != self._state:
                self._value = self._build()
                self._state = state
            return self._value  # type: ignore[return-value]

"""One deploy per model at a time: an exclusive lock file per model name.

The lock is an flock(2) on .modelgate/locks/NAME.lock, so it is released by the kernel when
the holder exits, crash included. A second deploy waits up to a timeout, then fails clearly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .. import paths
from . import interrupt

LOCK_DIR = Path(".modelgate") / "locks"


class Busy(Exception):
    """Another deploy of the same model holds the lock."""

    def __init__(self, name: str, holder: str) -> None:
        super().__init__(f"another deploy of {name} is in progress ({holder})")
        self.name, self.holder = name, holder


@contextlib.contextmanager
def deploy_lock(root: Path, name: str, timeout: float) -> Iterator[None]:
    path = root / LOCK_DIR / f"{name}.lock"
    paths.make_dirs(path.parent, root)
    descriptor = paths.open_for_write(path, root, os.O_RDWR | os.O_CREAT)
    try:
        _acquire(descriptor, name, path, timeout)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _acquire(descriptor: int, name: str, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
                raise Busy(name, holder) from None
            interrupt.pause(0.1)


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """An exclusive flock(2) on `path`, waited for as long as it takes: for work another
    process may be doing at the same time (installing an environment, building a program)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

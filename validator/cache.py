"""The on-disk cache of compiled schema checks and templates (like .pyc files).

A cache only saves time: an entry that cannot be read is rebuilt, and a cache that cannot be
written is skipped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("MODELGATE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "modelgate"


def store_text(path: Path, text: str) -> None:
    store_bytes(path, text.encode("utf-8"))


def store_bytes(path: Path, payload: bytes) -> None:
    """Write a cache file atomically; a cache that cannot be written is only slower."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, path)

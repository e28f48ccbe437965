"""The on-disk cache of compiled schema checks and templates (like .pyc files).

A cache only saves time, and is trusted no further than the user's own files:
- a directory is used only if it belongs to the user running modelgate and neither group nor
  others may write it (checked with one stat per directory per process); directories are
  created with mode 0700;
- MODELGATE_CACHE_DIR is used only if it is absolute and outside any git working tree (a
  checkout holds what a pull request wrote, with the reader as owner); otherwise the default;
- every entry is sealed: a sha256 of its payload bound to its name, which is derived from the
  entry's key and modelgate's version. An entry whose seal does not match is rebuilt.
The seal catches damaged, truncated and misplaced entries; keeping others out is the
directory check's job (whoever can write the directory can also write a matching seal).
An entry that cannot be read is rebuilt; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
from pathlib import Path

VERSION = "0.1.0"  # modelgate's version (pyproject.toml); tests/test_cache.py keeps them equal
_MAGIC = b"modelgate-cache-1\n"
HEADER_SIZE = len(_MAGIC) + hashlib.sha256().digest_size
_TRUSTED: set[str] = set()  # directories that passed the check in this process


def load(kind: str, key: str) -> bytes | None:
    """The payload stored for (kind, key), or None when there is none that can be trusted."""
    directory = cache_dir()
    if directory is None or not _trusted(directory):
        return None
    name = entry_name(kind, key)
    try:
        with open(os.path.join(directory, name), "rb") as stream:
            sealed = stream.read()
    except OSError:
        return None
    payload = sealed[HEADER_SIZE:]
    if sealed[:HEADER_SIZE] != _MAGIC + _digest(name, payload):
        return None
    return payload


def store(kind: str, key: str, payload: bytes) -> None:
    """Write an entry atomically; a cache that cannot be written is only slower."""
    directory = cache_dir()
    if directory is None:
        return
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _trusted(directory):
            name = entry_name(kind, key)
            _write_atomically(directory / name, seal(name, payload))


def entry_name(kind: str, key: str) -> str:
    return f"{kind}-{hashlib.sha256(f'{VERSION}|{kind}|{key}'.encode()).hexdigest()}.bin"


def seal(name: str, payload: bytes) -> bytes:
    """The entry's bytes: a header, the sha256 of the name and payload, then the payload."""
    return _MAGIC + _digest(name, payload) + payload


def _digest(name: str, payload: bytes) -> bytes:
    hashed = hashlib.sha256(name.encode() + b"\0")
    hashed.update(payload)
    return hashed.digest()


def cache_dir() -> Path | None:
    """MODELGATE_CACHE_DIR when it is safe to use, else the user's cache (XDG), else None."""
    get = os.environ.get
    return _cache_dir(get("MODELGATE_CACHE_DIR", ""), get("XDG_CACHE_HOME", ""), get("HOME", ""))


@functools.lru_cache(maxsize=4)
def _cache_dir(configured: str, xdg_cache_home: str, home: str) -> Path | None:
    if configured and _acceptable(configured):
        return Path(configured)
    base = xdg_cache_home
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        base = os.path.join(home or os.path.expanduser("~"), ".cache")
    return Path(base) / "modelgate" if os.path.isabs(base) else None


def _acceptable(configured: str) -> bool:
    """Absolute, and not inside a git working tree (a repository the cache would trust)."""
    if not os.path.isabs(configured):
        return False
    directory = os.path.realpath(configured)
    while True:
        if os.path.lexists(os.path.join(directory, ".git")):
            return False
        parent = os.path.dirname(directory)
        if parent == directory:
            return True
        directory = parent


def _trusted(directory: Path) -> bool:
    """A directory of the current user that neither group nor others may write."""
    if str(directory) in _TRUSTED:
        return True
    try:
        found = os.stat(directory)
    except OSError:
        return False
    own_uid = os.geteuid() if hasattr(os, "geteuid") else found.st_uid
    trusted = (
        stat.S_ISDIR(found.st_mode)
        and found.st_uid == own_uid
        and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )
    if trusted:
        _TRUSTED.add(str(directory))
    return trusted


def _write_atomically(path: Path, content: bytes) -> None:
    import tempfile  # 5 ms of imports (shutil, random) that a run reading the cache never needs

    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@functools.lru_cache(maxsize=16)
def installed_version(distribution: str) -> str:
    """The installed version of a distribution, from the name of its .dist-info folder on
    sys.path: a cache key that changes when the lock upgrades it, without importing the
    package or importlib.metadata (tens of milliseconds a pre-commit hook need not pay)."""
    import sys

    prefix = distribution.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.lower().startswith(prefix) and name.endswith(".dist-info"):
                return name[len(prefix) : -len(".dist-info")]
    return "missing"

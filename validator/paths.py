"""Reading and writing inside the repository without following a link out of it.

Everything in the repository may come from a pull request, symbolic links included. A link
under rendered/, templates/, policies/ or .modelgate/ that points out of the repository would
otherwise make modelgate print a file of the machine it runs on, render it into manifests, or
overwrite it. Reads check where the path really leads; writes never go through a link at all
(O_NOFOLLOW on the file, every directory on the way resolved inside the root).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import BinaryIO

from . import memo
from .diagnostics import Diagnostic, error

LINK_OUT = "MG118"


class LinkOut(OSError):
    """A path that leads out of the repository through a symbolic link."""

    def __init__(self, path: Path | str, root: Path | str) -> None:
        shown = _shown(path, root)
        super().__init__(f"{shown} leads out of the repository through a symbolic link")
        self.shown = shown


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """The stream's bytes up to one past `limit` (more than `limit` says the file is too
    large). The first read asks for the file's size, not the limit: a read of n bytes
    allocates n bytes first, and a 1 MiB buffer for a 2 KiB spec costs more than reading it."""
    try:
        size = os.fstat(stream.fileno()).st_size
    except OSError:
        size = 0
    data = stream.read(min(size, limit) + 1)
    if len(data) <= min(size, limit) or len(data) > limit:
        return data  # the end of the file, or past the limit
    return data + stream.read(limit + 1 - len(data))  # it grew, or has no size (a pipe)


def leads_out(path: Path | str, root: Path | str) -> bool:
    """True when `path`, every link on the way followed, lies outside `root`."""
    return memo.remembered("leads_out", (str(path), str(root)), lambda: _leads_out(path, root))


def _leads_out(path: Path | str, root: Path | str) -> bool:
    real_root = _real(str(root))
    real = os.path.realpath(path)
    return real != real_root and not real.startswith(real_root + os.sep)


def read_bytes(path: Path | str, root: Path | str) -> bytes:
    if leads_out(path, root):
        raise LinkOut(path, root)
    with open(path, "rb") as stream:
        return stream.read()


def read_text(path: Path | str, root: Path | str) -> str:
    return read_bytes(path, root).decode("utf-8")


def open_for_write(path: Path | str, root: Path | str, flags: int, mode: int = 0o644) -> int:
    """os.open of a file to write inside `root`: its directory must resolve inside the root
    and the file itself must not be a link (anywhere)."""
    if leads_out(os.path.dirname(os.path.abspath(path)), root):
        raise LinkOut(path, root)
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise LinkOut(path, root) from exc
        raise


def write_bytes(path: Path | str, root: Path | str, payload: bytes) -> None:
    descriptor = open_for_write(path, root, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(payload)


def make_dirs(directory: Path | str, root: Path | str) -> None:
    """os.makedirs inside `root`, refusing a directory on the way that is a link out (checked
    before anything is created: a link out must not receive even an empty directory)."""
    existing = os.path.abspath(directory)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if leads_out(existing, root):
        raise LinkOut(directory, root)
    os.makedirs(directory, exist_ok=True)


def link_finding(path: Path | str, root: Path | str) -> Diagnostic | None:
    """MG118 for a repository file that leads out of the repository; None when it does not."""
    if not leads_out(path, root):
        return None
    shown = _shown(path, root)
    return error(
        shown,
        0,
        0,
        LINK_OUT,
        f"{shown} leads out of the repository through a symbolic link; it was not read",
        "commit the file itself, not a link to a file outside the repository",
    )


@functools.lru_cache(maxsize=8)
def _real(root: str) -> str:
    return os.path.realpath(root)


def _shown(path: Path | str, root: Path | str) -> str:
    absolute = os.path.abspath(path)
    base = os.path.abspath(root)
    if absolute.startswith(base + os.sep):
        return absolute[len(base) + 1 :].replace(os.sep, "/")
    return str(path)

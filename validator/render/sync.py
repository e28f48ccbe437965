"""rendered/ on disk: write what changed, find what drifted, prune what no spec makes.

Walks use os.scandir and strings: pathlib costs 10x more for thousands of files.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import paths
from ..diagnostics import Diagnostic, error

RENDERED_DIR = "rendered"
LINK = b"\x00link"  # stands for a symbolic link's content, which is never read
ARGOCD = "argocd"
RBAC = "_rbac"  # rendered/ENV/_rbac/: no spec is named so (names are DNS labels)
ADMISSION = "_admission"  # rendered/ENV/_admission/ (admission.py): made from the policy
DRIFT = "MG404"
NOT_A_DIRECTORY = "MG407"


@dataclass(frozen=True)
class RenderedFile:
    path: PurePosixPath  # relative to the repository root, e.g. rendered/local/iris/settings.json
    content: str
    # rendered/ already holds exactly this (content then left out: a check of thousands of
    # specs need not carry every file back to the process that reports)
    same: bool = False


def unchanged(
    files: list[RenderedFile], root: Path, directories: Directories | None = None
) -> list[RenderedFile]:
    """`files`, those rendered/ already holds as they are marked `same`, without content."""
    directories = directories or Directories(root)
    return [
        RenderedFile(item.path, "", same=True)
        if _current(os.path.join(root, item.path), root, directories) == item.content.encode()
        else item
        for item in files
    ]


def scope(environment: str | None) -> tuple[str, ...]:
    """Where a render of `environment` (None: of everything) may find orphans."""
    if environment is None:
        return (f"{RENDERED_DIR}/",)
    return (f"{RENDERED_DIR}/{environment}/", f"{RENDERED_DIR}/{ARGOCD}/{environment}.yaml")


def write(
    files: list[RenderedFile],
    root: Path,
    prune: bool = False,
    within: tuple[str, ...] = (f"{RENDERED_DIR}/",),
) -> tuple[list, list]:
    """Write files whose content changed; with `prune`, delete the rendered files `within`
    those prefixes (see scope) that no spec makes. Returns (written, removed) paths."""
    present = _present(root)
    written = []
    directories = Directories(root)
    for item in files:
        relative = str(item.path)
        target = os.path.join(root, relative)
        content = item.content.encode("utf-8")
        if relative in present and _current(target, root, directories) == content:
            continue
        directories.make(os.path.dirname(target))
        descriptor = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        written.append(item.path)
    removed = []
    if prune:
        for orphan in _orphans(files, present, within):
            os.unlink(os.path.join(root, orphan))
            removed.append(orphan)
        if removed:
            _remove_empty_dirs(root / RENDERED_DIR)
    return written, removed


def links(files: list[RenderedFile], root: Path) -> list[Diagnostic]:
    """A finding for every rendered file that would be written through a symbolic link: the
    file itself is a link, or a directory on its way leads out of the repository."""
    findings = []
    directories = Directories(root)
    for item in files:
        target = os.path.join(root, item.path)
        blocked = directories.blocked(item.path.parent)
        if blocked:
            findings.append(
                error(
                    str(item.path),
                    0,
                    0,
                    NOT_A_DIRECTORY,
                    f"{item.path} cannot be written: {blocked} is a file, not a directory",
                    f"delete {blocked}: rendered/ is made by `modelgate render`",
                )
            )
        elif os.path.islink(target) or directories.leads_out(os.path.dirname(target)):
            findings.append(
                error(
                    str(item.path),
                    0,
                    0,
                    paths.LINK_OUT,
                    f"{item.path} would be written through a symbolic link",
                    "rendered/ holds plain files only: delete the link, then `modelgate render`",
                )
            )
    return findings


class Directories:
    """What the directories of rendered files are, each looked at once per run (thousands of
    files share a few hundred directories; resolving every path costs 0.1 s per 1,000)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._leads_out: dict[str, bool] = {}
        self._blocked: dict[PurePosixPath, str] = {}
        self._made: set[str] = set()

    def leads_out(self, directory: str) -> bool:
        if directory not in self._leads_out:
            self._leads_out[directory] = paths.leads_out(directory, self.root)
        return self._leads_out[directory]

    def blocked(self, relative: PurePosixPath) -> str:
        """The first directory on the way that exists as something else, or ''."""
        if relative not in self._blocked:
            parent = relative.parent
            found = self.blocked(parent) if parent != relative else ""
            place = os.path.join(self.root, relative)
            if not found and os.path.lexists(place) and not os.path.isdir(place):
                found = str(relative)
            self._blocked[relative] = found
        return self._blocked[relative]

    def make(self, directory: str) -> None:
        """os.makedirs, refusing a link out (checked before anything is created)."""
        if directory not in self._made:
            paths.make_dirs(directory, self.root)
            self._made.add(directory)


def _current(target: str, root: Path, directories: Directories | None = None) -> bytes | None:
    """What the file holds now; None when it is missing, and never what a link points at
    (a link in rendered/ differs from every rendered file, so it is rewritten or reported)."""
    directories = directories or Directories(root)
    if directories.leads_out(os.path.dirname(target)):
        return LINK
    # O_NOFOLLOW: a link is refused by the open itself, without a look beforehand;
    # O_NONBLOCK: a FIFO named like a rendered file reads as empty instead of waiting
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        descriptor = os.open(target, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        if os.path.islink(target):
            return LINK
        if os.path.isdir(target):
            return None
        raise
    with os.fdopen(descriptor, "rb") as stream:
        try:
            return stream.read()
        except IsADirectoryError:
            return None


def orphans(
    files: list[RenderedFile],
    root: Path,
    within: tuple[str, ...] = (f"{RENDERED_DIR}/",),
    present: set[str] | None = None,
) -> list[PurePosixPath]:
    """Files under rendered/ (and within those prefixes) that no spec renders. `present` is
    what present(root, within) found, when the caller looked while rendering."""
    return _orphans(files, present if present is not None else _present(root, within), within)


def present(root: Path, within: tuple[str, ...] = (f"{RENDERED_DIR}/",)) -> set[str]:
    return _present(root, within)


def _orphans(
    files: list[RenderedFile], present: set[str], within: tuple[str, ...]
) -> list[PurePosixPath]:
    made = {str(item.path) for item in files}
    return sorted(
        PurePosixPath(path) for path in present if path.startswith(within) and path not in made
    )


def _present(root: Path, within: tuple[str, ...] = (f"{RENDERED_DIR}/",)) -> set[str]:
    """Every file under rendered/ (only those within the prefixes: a directory's files when
    one ends in '/', else the file it names), as a path relative to the root with '/'
    separators (os.scandir and strings: pathlib costs 10x more for thousands of files)."""
    found: set[str] = set()
    pending = []
    for prefix in within:
        if prefix.endswith("/"):
            pending.append(prefix.rstrip("/"))
        elif os.path.lexists(os.path.join(root, prefix)):
            found.add(prefix)
    while pending:
        relative = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(root, relative)))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = f"{relative}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)
            else:
                found.add(path)
    return found


def drift(
    files: list[RenderedFile],
    root: Path,
    with_orphans: bool = True,
    within: tuple[str, ...] = (f"{RENDERED_DIR}/",),
    present: set[str] | None = None,
    held: Collection[str] = (),
) -> tuple[list[Diagnostic], str]:
    """Findings and a unified diff for every rendered file that differs from the specs:
    edited by hand, missing, or orphaned (its spec is gone). Files marked `same` were
    compared where they were rendered. The files of the specs named in `held` (which failed
    their checks, so rendered nothing) are not compared, nor, when there are such specs,
    the files every spec contributes to (ApplicationSets, deployer Roles)."""
    findings, diffs = [], []
    directories = Directories(root)
    for item in files:
        if item.same or is_held(str(item.path), held):
            continue
        current = _current(os.path.join(root, item.path), root, directories)
        if current == item.content.encode("utf-8"):
            continue
        state = (
            "is missing" if current is None
            else "is a symbolic link (rendered files are plain files)" if current is LINK
            else "differs from what the specs render"
        )  # fmt: skip
        findings.append(
            error(
                str(item.path),
                0,
                0,
                DRIFT,
                f"{item.path} {state}",
                "run `modelgate render` and commit rendered/",
            )
        )
        before = "" if current is LINK else (current or b"").decode("utf-8", errors="replace")
        diffs.append(_diff(str(item.path), before, item.content))
    for orphan in orphans(files, root, within, present) if with_orphans else []:
        if is_held(str(orphan), held):
            continue
        content = _current(os.path.join(root, orphan), root, directories)
        current = "" if content is LINK else (content or b"").decode("utf-8", errors="replace")
        findings.append(
            error(
                str(orphan),
                0,
                0,
                DRIFT,
                f"{orphan} is orphaned: no spec renders it",
                "run `modelgate render` (it prunes orphans) and commit rendered/",
            )
        )
        diffs.append(_diff(str(orphan), current, ""))
    return findings, "".join(diffs)


def is_held(path: str, held: Collection[str]) -> bool:
    """Whether rendered/ENV/NAME/... belongs to a spec named in `held`, or is a file every
    spec contributes to (which cannot be judged while one of them renders nothing)."""
    if not held:
        return False
    parts = path.split("/")
    return len(parts) > 2 and (
        parts[1] == ARGOCD or parts[2] in (RBAC, ADMISSION) or parts[2] in held
    )


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )


def _remove_empty_dirs(base: Path) -> None:
    for directory, _, names in os.walk(base, topdown=False):
        if not names and directory != str(base):
            with contextlib.suppress(OSError):  # not empty: a subdirectory stayed
                os.rmdir(directory)

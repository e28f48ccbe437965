"""An artifact kept in the repository is the one its spec's digest names.

A pull request that changes only the artifact's bytes would otherwise pass every check and
fail at the next real deploy (or, where nothing checks, serve unreviewed weights).

A file is named by `spec.model.sha256`, the sha256 of its bytes. A folder (a SavedModel, a
Hugging Face snapshot, a KServe or Seldon model directory) is named by `spec.model.treeSha256`,
its tree digest (docs/artifacts.md defines it): the sha256 of a listing with one line
`<sha256 of the file>  <path relative to the folder>\\n` per file, sorted by the path's UTF-8
bytes; the same lines `sha256sum` prints. Nothing but regular files and folders may be in it:
a link is never followed, and a FIFO, socket or device is not data.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import memo, paths
from ..diagnostics import Diagnostic
from .load import Document, JsonPath

ARTIFACT_CHANGED = "MG119"
ARTIFACT_UNHASHABLE = "MG120"
DIGEST_KIND = "MG121"
FILE_FIELD, TREE_FIELD = "sha256", "treeSha256"
CHUNK = 1024 * 1024
# Refused in names: what sha256sum escapes (backslash, newline), and every other control.
_UNLISTABLE = re.compile(r"[\x00-\x1f\x7f\\]")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
Problem = tuple[JsonPath, str, str, str]  # where in the spec, code, message, hint

# (reason, hint) of each refusal
_LINK = (
    "is a symbolic link; a tree digest never follows links",
    "replace the link with the file or folder it names",
)
_GIT = (
    "is a git repository's own data, which is never committed with the artifact",
    "copy the model's files out of the checkout, without .git",
)
_SPECIAL = (
    "is not a regular file or folder",
    "artifacts hold regular files and folders only: remove it",
)
_NAME_IT = "name an existing file or folder"
_READABLE = "make it readable by the user who runs modelgate"
_RENAME = "rename it: artifact names are UTF-8 without backslashes or control characters"


class Unhashable(Exception):
    """An artifact that has no digest: it holds a link, a special file, a `.git`, a name that
    cannot be listed, or nothing at all. `where` is the offending path as the user named it."""

    def __init__(self, where: str, reason: str, hint: str) -> None:
        where = where.encode("utf-8", "backslashreplace").decode("utf-8")  # bytes not UTF-8
        super().__init__(f"{where} {reason}")
        self.where, self.reason, self.hint = where, reason, hint


@dataclass(frozen=True)
class Digest:
    field: str  # the spec.model field that takes it: sha256 (a file) or treeSha256 (a folder)
    value: str

    def spec_line(self) -> str:
        """The digest as the spec takes it, ready to paste under spec.model."""
        return f"{self.field}: {self.value}"


def digest_of(path: Path, root: Path, shown: str | None = None) -> Digest:
    """The digest of the file or folder at `path`; `shown` names it in refusals.

    Raises paths.LinkOut when a path inside `root` leads out of it, Unhashable when it has
    no digest (missing, a special file, or a folder holding what a tree digest refuses)."""
    shown = shown or str(path)
    key = (str(path), str(root), shown)
    return memo.remembered("digest", key, lambda: _digest_of(path, root, shown))


def _digest_of(path: Path, root: Path, shown: str) -> Digest:
    if _inside(path, root) and paths.leads_out(path, root):
        raise paths.LinkOut(path, root)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise Unhashable(shown, f"cannot be read ({exc.strerror})", _NAME_IT) from exc
    if stat.S_ISDIR(mode):
        return Digest(TREE_FIELD, tree_sha256(path, shown))
    if stat.S_ISREG(mode):
        return Digest(FILE_FIELD, _file_sha256(path, shown))
    raise Unhashable(shown, *_SPECIAL)


def tree_sha256(folder: Path, shown: str | None = None) -> str:
    """The tree digest of `folder` (docs/artifacts.md)."""
    return hashlib.sha256(tree_listing(folder, shown)).hexdigest()


def tree_listing(folder: Path, shown: str | None = None) -> bytes:
    """The canonical listing the tree digest is the sha256 of."""
    shown = shown or str(folder)
    files = sorted(_files(folder, shown))
    if not files:
        raise Unhashable(shown, "holds no files", "an empty folder serves nothing: add the model")
    return b"".join(b"%s  %s\n" % (digest.encode(), name) for name, digest in files)


def _files(folder: Path, shown: str) -> list[tuple[bytes, str]]:
    """(relative path as UTF-8 bytes, sha256) of every file under `folder`; iterative, so a
    deep tree cannot exhaust the interpreter's stack."""
    found: list[tuple[bytes, str]] = []
    pending = [(folder, "")]
    while pending:
        directory, prefix = pending.pop()
        for entry in _entries(directory, f"{shown}/{prefix}".rstrip("/")):
            relative = prefix + entry.name
            where = f"{shown}/{relative}"
            name = _listable(entry.name, where)
            if entry.is_symlink():
                raise Unhashable(where, *_LINK)
            if entry.name == ".git":
                raise Unhashable(where, *_GIT)
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), relative + "/"))
            elif entry.is_file(follow_symlinks=False):
                found.append(((prefix.encode() + name), _file_sha256(Path(entry.path), where)))
            else:
                raise Unhashable(where, *_SPECIAL)
    return found


def _entries(directory: Path, where: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as exc:
        raise Unhashable(where, f"cannot be read ({exc.strerror})", _READABLE) from exc


def _listable(name: str, where: str) -> bytes:
    """The name's UTF-8 bytes, or Unhashable for a name the listing cannot hold."""
    try:
        encoded = name.encode("utf-8")  # a name that is not UTF-8 arrives as surrogates
    except UnicodeEncodeError:
        raise Unhashable(where, "has a name that is not UTF-8", _RENAME) from None
    if _UNLISTABLE.search(name):
        raise Unhashable(where, "has a backslash or a control character in its name", _RENAME)
    return encoded


def _file_sha256(path: Path, shown: str) -> str:
    """sha256 of a regular file, opened without following a link and without waiting on a
    FIFO that took the file's place."""
    try:
        descriptor = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise Unhashable(shown, f"cannot be read ({exc.strerror})", _READABLE) from exc
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise Unhashable(shown, *_SPECIAL)
        digest = hashlib.sha256()
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check(document: Document, root: Path) -> list[Diagnostic]:
    """MG118-MG121 for the repository artifact the spec names; nothing for a URI, a path out
    of the repository (the artifact path policy's finding) or a path not made yet (a new
    spec's placeholder: deploy reports it)."""
    problem = problem_of(document, root)
    if problem is None:
        return []
    where, code, message, hint = problem
    return [document.finding(where, code, message, hint)]


def problem_of(document: Document, root: Path) -> Problem | None:
    """What is wrong with the spec's repository artifact (see check), for validate and for
    deploy, which checks again just before it starts the engine."""
    model = document.data["spec"]["model"]
    artifact = model.get("artifact")
    if not artifact or "://" in artifact or not _inside(root / artifact, root):
        return None
    path = root / artifact
    if paths.leads_out(path, root):
        return (
            ["spec", "model", "artifact"],
            paths.LINK_OUT,
            f"artifact {artifact} leads out of the repository through a symbolic link",
            "commit the artifact itself, or name it by URI",
        )
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
        reason, hint = _SPECIAL
        return (
            ["spec", "model", "artifact"],
            ARTIFACT_UNHASHABLE,
            f"artifact {artifact} {reason}",
            hint,
        )
    return _kind_mismatch(model, artifact, stat.S_ISDIR(mode)) or _digest_differs(
        model, artifact, path, root
    )


def _digest_differs(model: dict, artifact: str, path: Path, root: Path) -> Problem | None:
    """MG119 when the artifact's digest is not the one the spec names, MG120 when it has none."""
    if FILE_FIELD not in model and TREE_FIELD not in model:
        return None  # a file without a digest: the checksum policies' business
    try:
        actual = digest_of(path, root, artifact)
    except Unhashable as exc:
        return ["spec", "model", "artifact"], ARTIFACT_UNHASHABLE, str(exc), exc.hint
    expected = model[actual.field]
    if actual.value == expected:
        return None
    kind = "tree sha256" if actual.field == TREE_FIELD else "sha256"
    return (
        ["spec", "model", actual.field],
        ARTIFACT_CHANGED,
        f"artifact {artifact} has {kind} {actual.value}; the spec names {expected}",
        f"the artifact changed: review it, then put its new {actual.field} in the spec "
        f"(`modelgate hash {artifact}` prints the line)",
    )


def _kind_mismatch(model: dict, artifact: str, folder: bool) -> Problem | None:
    """A folder must be named by treeSha256 (it is also what renders it as a folder), a file
    by sha256 if by anything."""
    line = f"`modelgate hash {artifact}` prints the line"
    if folder and FILE_FIELD in model:
        return (
            ["spec", "model", FILE_FIELD],
            DIGEST_KIND,
            f"artifact {artifact} is a folder; sha256 names the bytes of one file",
            f"replace sha256 with the folder's treeSha256 ({line})",
        )
    if folder and TREE_FIELD not in model:
        return (
            ["spec", "model", "artifact"],
            DIGEST_KIND,
            f"artifact {artifact} is a folder, and the spec does not name its treeSha256",
            f"add spec.model.treeSha256 ({line}); it also renders the artifact as a folder",
        )
    if not folder and TREE_FIELD in model:
        return (
            ["spec", "model", TREE_FIELD],
            DIGEST_KIND,
            f"artifact {artifact} is a file; treeSha256 names a folder's digest",
            f"replace treeSha256 with the file's sha256 ({line})",
        )
    return None


def _inside(path: Path, root: Path) -> bool:
    """`path` lies inside `root` as written (`..` resolved, links not)."""
    return os.path.normpath(os.path.abspath(path)).startswith(os.path.abspath(root) + os.sep)

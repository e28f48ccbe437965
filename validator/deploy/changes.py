"""Which specs a change touches: the specs edited since a git ref, the specs whose artifact
(kept in the repository) changed, or the stand-in they name or its script, every spec whose
engine's templates changed, every spec the local target runs from an engine environment
whose lock changed (locks/engine-NAME.txt), and every spec when policies or shared templates
changed."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from .. import stand_ins
from ..check.load import Document
from ..engines import ENGINES
from ..git import run_git
from .environments import LOCK_PREFIX

WATCHED = ("models", "templates", "policies", "locks")


class GitError(Exception):
    pass


def changed_files(root: Path, ref: str, also: Iterable[str] = ()) -> list[PurePosixPath]:
    """Files changed between REF and the working tree (committed or not), under the watched
    directories and the paths `also` names (artifacts), relative to root."""
    if ref.startswith("-"):
        raise GitError("a git ref cannot start with '-'")
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None:
        raise GitError("cannot run git")
    if inside.returncode != 0:
        raise GitError(f"{root} is not in a git work tree; it compares commits")
    watched = [*WATCHED, *also]
    # literal: an artifact's file name is not a pattern; relative: paths as root sees them
    git = ("--literal-pathspecs", "diff", "--name-only", "--relative", "--end-of-options", ref)
    done = run_git(root, *git, "--", *watched)
    if done is None or done.returncode != 0:
        stderr = done.stderr.strip() if done else ""
        first = (stderr.splitlines() or [f"git diff {ref} failed"])[0]
        raise GitError(first.removeprefix("fatal: "))
    untracked = run_git(
        root, "--literal-pathspecs", "ls-files", "--others", "--exclude-standard", "--", *watched
    )
    names = done.stdout.splitlines() + (untracked.stdout.splitlines() if untracked else [])
    return sorted({PurePosixPath(name) for name in names if name})


def affected(documents: list[Document], changed: list[PurePosixPath]) -> list[Document]:
    """The documents a set of changed files concerns, in their original order."""
    paths = {str(path) for path in changed}
    # a changed file touches the artifact it is, and every folder artifact it lies in
    touched = {str(folder) for path in changed for folder in (path, *path.parents)}
    everything = any(p.parts[0] == "policies" or _shared_template(p) for p in changed)
    engines = {p.parts[1] for p in changed if p.parts[0] == "templates" and len(p.parts) > 2}
    locks = {p.stem.removeprefix(LOCK_PREFIX) for p in changed if _engine_lock(p)}
    return [
        doc
        for doc in documents
        if everything
        or doc.path in paths
        or any(path in touched for path in _repository_paths(doc))
        or doc.data["spec"]["engine"]["name"] in engines
        or _environment(doc) in locks
    ]


def _engine_lock(path: PurePosixPath) -> bool:
    return len(path.parts) == 2 and path.parts[0] == "locks" and path.name.startswith(LOCK_PREFIX)


def _environment(document: Document) -> str | None:
    """The engine environment the local target runs the spec (or its stand-in) from, if any."""
    spec = stand_ins.served_spec(document.data["spec"])
    return ENGINES[spec["engine"]["name"]].local_environment(spec["model"]["format"]) or None


def artifacts(documents: Sequence[Document]) -> list[str]:
    """The in-repository artifacts of `documents` (their stand-ins and the scripts that make
    them included), for `changed_files` to watch."""
    return sorted({path for doc in documents for path in _repository_paths(doc)})


def _repository_paths(document: Document) -> list[str]:
    """The spec's artifact, stand-in and stand-in script that lie in the repository."""
    stand_in = stand_ins.of(document.data["spec"]) or {}
    found = [artifact_of(document), *(_relative(stand_in.get(f)) for f in ("artifact", "script"))]
    return [path for path in found if path]


def artifact_of(document: Document) -> str | None:
    """The spec's artifact as a path relative to the repository root, or None when it has
    none there (a URI, an image, a path out of the repository)."""
    return _relative(document.data["spec"]["model"].get("artifact"))


def _relative(artifact: str | None) -> str | None:
    """A path as given in a spec, relative to the repository root; None for a URI or a path
    out of the repository."""
    if not artifact or "://" in artifact:
        return None
    normal = posixpath.normpath(artifact)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        return None
    return normal


def _shared_template(path: PurePosixPath) -> bool:
    return path.parts[0] == "templates" and (len(path.parts) == 2 or path.parts[1].startswith("_"))

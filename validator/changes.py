"""Which specs a change touches: the specs edited since a git ref, the specs whose artifact
(kept in the repository) changed, every spec whose engine's templates changed, and every spec
when policies, shared templates, templates/values.yaml or modelgate itself changed.

`deploy --changed-since`, `validate --changed-since` and `render --check --changed-since`
all ask this module; nothing here imports more than the loader (pre-commit speed)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from .check.load import Document
from .git import run_git

WATCHED = ("models", "templates", "policies")
# modelgate's own code and pins, where a repository holds them (this one does): a change to
# the tool changes what every spec renders to and how it is checked
TOOL = ("validator", "pyproject.toml", "locks")
_WATCHED_ROOTS = {(name,) for name in (*WATCHED, *TOOL)}


class GitError(Exception):
    pass


def changed_files(
    root: Path, ref: str, also: Iterable[str] = (), staged: Iterable[str] = ()
) -> list[PurePosixPath]:
    """Files changed between REF and the working tree (committed or not), under the watched
    directories and the paths `also` names (artifacts), relative to root; and under the
    paths `staged` names, files changed between REF and the index (committed or staged: a
    large generated tree is compared without a look at each of its files on disk)."""
    if ref.startswith("-"):
        raise GitError("a git ref cannot start with '-'")
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None:
        raise GitError("cannot run git")
    if inside.returncode != 0:
        raise GitError(f"{root} is not in a git work tree; it compares commits")
    # an artifact under a watched directory is watched already: thousands of pathspecs
    # would cost git more than the diff itself
    also = [path for path in also if PurePosixPath(path).parts[:1] not in _WATCHED_ROOTS]
    watched = [*WATCHED, *TOOL, *also]
    names = _diff(root, ref, watched)
    staged = list(staged)
    if staged:
        names += _diff(root, ref, staged, "--cached")
    untracked = run_git(
        root, "--literal-pathspecs", "ls-files", "-z", "--others", "--exclude-standard",
        "--", *watched,
    )  # fmt: skip
    names += untracked.stdout.split("\0") if untracked else []
    return sorted({PurePosixPath(name) for name in names if name})


def _diff(root: Path, ref: str, paths: list[str], *options: str) -> list[str]:
    # literal: an artifact's file name is not a pattern; relative: paths as root sees them
    git = ("--literal-pathspecs", "diff", *options, "--name-only", "-z", "--relative")
    done = run_git(root, *git, "--end-of-options", ref, "--", *paths)
    if done is None or done.returncode != 0:
        stderr = done.stderr.strip() if done else ""
        first = (stderr.splitlines() or [f"git diff {ref} failed"])[0]
        raise GitError(first.removeprefix("fatal: "))
    return done.stdout.split("\0")


def affected(documents: list[Document], changed: list[PurePosixPath]) -> list[Document]:
    """The documents a set of changed files concerns, in their original order."""
    paths = {str(path) for path in changed}
    # a changed file touches the artifact it is, and every folder artifact it lies in
    touched = {str(folder) for path in changed for folder in (path, *path.parents)}
    everything = touches_everything(changed) is not None
    engines = {p.parts[1] for p in changed if p.parts[0] == "templates" and len(p.parts) > 2}
    return [
        doc
        for doc in documents
        if everything
        or doc.path in paths
        or artifact_of(doc) in touched
        or doc.data["spec"]["engine"]["name"] in engines
    ]


def artifacts(documents: Sequence[Document]) -> list[str]:
    """The in-repository artifacts of `documents`, for `changed_files` to watch."""
    return sorted({path for doc in documents if (path := artifact_of(doc))})


def artifact_of(document: Document) -> str | None:
    """The spec's artifact as a path relative to the repository root, or None when it has
    none there (a URI, an image, a path out of the repository)."""
    artifact = document.data["spec"]["model"].get("artifact") or ""
    if "://" in artifact or not artifact:
        return None
    normal = posixpath.normpath(artifact)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        return None
    return normal


def touches_everything(changed: Iterable[PurePosixPath]) -> PurePosixPath | None:
    """The first changed file that concerns every spec (a policy, a shared template,
    templates/values.yaml, modelgate itself), or None."""
    return next(
        (
            path
            for path in changed
            if path.parts[0] == "policies" or path.parts[0] in TOOL or _shared_template(path)
        ),
        None,
    )


def _shared_template(path: PurePosixPath) -> bool:
    return path.parts[0] == "templates" and (len(path.parts) == 2 or path.parts[1].startswith("_"))

"""Which specs a change touches: the specs edited since a git ref, every spec whose engine's
templates changed, and every spec when policies or shared templates changed."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..check.load import Document
from ..git import run_git

WATCHED = ("models", "templates", "policies")


class GitError(Exception):
    pass


def changed_files(root: Path, ref: str) -> list[PurePosixPath]:
    """Files changed between REF and the working tree (committed or not)."""
    if ref.startswith("-"):
        raise GitError("a git ref cannot start with '-'")
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None:
        raise GitError("cannot run git")
    if inside.returncode != 0:
        raise GitError(f"{root} is not in a git work tree; it compares commits")
    done = run_git(root, "diff", "--name-only", "--end-of-options", ref, "--", *WATCHED)
    if done is None or done.returncode != 0:
        stderr = done.stderr.strip() if done else ""
        first = (stderr.splitlines() or [f"git diff {ref} failed"])[0]
        raise GitError(first.removeprefix("fatal: "))
    untracked = run_git(root, "ls-files", "--others", "--exclude-standard", "--", *WATCHED)
    names = done.stdout.splitlines() + (untracked.stdout.splitlines() if untracked else [])
    return sorted({PurePosixPath(name) for name in names if name})


def affected(documents: list[Document], changed: list[PurePosixPath]) -> list[Document]:
    """The documents a set of changed files concerns, in their original order."""
    paths = {str(path) for path in changed}
    everything = any(p.parts[0] == "policies" or _shared_template(p) for p in changed)
    engines = {p.parts[1] for p in changed if p.parts[0] == "templates" and len(p.parts) > 2}
    return [
        doc
        for doc in documents
        if everything or doc.path in paths or doc.data["spec"]["engine"]["name"] in engines
    ]


def _shared_template(path: PurePosixPath) -> bool:
    return path.parts[0] == "templates" and (len(path.parts) == 2 or path.parts[1].startswith("_"))

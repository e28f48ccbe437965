"""Which specs a change touches: the specs edited since a git ref, every spec whose engine's
templates changed, and every spec when policies or shared templates changed."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from .load import Document

WATCHED = ("models", "templates", "policies")


class GitError(Exception):
    pass


def changed_files(root: Path, ref: str) -> list[PurePosixPath]:
    """Files changed between REF and the working tree (committed or not)."""
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if inside.returncode != 0:
            raise GitError(f"{root} is not in a git work tree; it compares commits")
        done = subprocess.run(
            ["git", "diff", "--name-only", ref, "--", *WATCHED],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"git diff {ref} failed"])[0]
        raise GitError(first.removeprefix("fatal: "))
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "--", *WATCHED],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    names = done.stdout.splitlines() + untracked.stdout.splitlines()
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

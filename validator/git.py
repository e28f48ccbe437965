"""One way to run git: missing git and timeouts become None instead of exceptions."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_git(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess | None:
    """`git ARGS` run in root, or None when git is missing or does not answer in time."""
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def blob_id(content: bytes) -> str:
    """The id git gives a file with these bytes (sha1 of "blob SIZE\\0" and the bytes)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def clean_blobs(root: Path, directory: str) -> dict[str, str] | None:
    """The blob id of each regular file under `directory` (relative to root, '/'-separated)
    whose work-tree content is what git's index holds: `git ls-files --stage` less the files
    `git diff-files` finds changed (git compares them by their stat data, and by content
    where that cannot tell). Untracked and changed files are not listed: read them. None
    outside a git work tree, or when git does not answer."""
    common = ("git", "--literal-pathspecs")
    commands = (
        [*common, "ls-files", "--stage", "-z", "--", directory],
        [*common, "diff-files", "--name-only", "--relative", "-z", "--", directory],
    )
    try:  # both at once: each is a few milliseconds of git start-up
        running = [
            subprocess.Popen(
                command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            for command in commands
        ]
        outputs = [process.communicate(timeout=60)[0] for process in running]
    except (OSError, subprocess.SubprocessError):
        return None
    if any(process.returncode != 0 for process in running):
        return None
    staged, changed = outputs
    dirty = set(changed.split("\0"))
    blobs = {}
    for entry in staged.split("\0"):
        info, _, path = entry.partition("\t")
        fields = info.split(" ")
        # regular files at stage 0 only: no symbolic links, submodules or merge conflicts
        regular = len(fields) == 3 and fields[0] in ("100644", "100755") and fields[2] == "0"
        if regular and path not in dirty:
            blobs[path] = fields[1]
    return blobs

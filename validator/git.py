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

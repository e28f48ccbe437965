"""The deployment ledger: one JSON line per deploy attempt, appended, never rewritten.

Each record is written with a single write(2) on a file opened O_APPEND and then fsync'd, so
concurrent deploys never interleave and a crash leaves at most a missing line, never a torn
one in the middle. A reader still skips a torn last line rather than failing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LEDGER = Path(".modelgate") / "ledger.jsonl"


@dataclass(frozen=True)
class Record:
    time: str
    name: str
    user: str
    commit: str
    spec_hash: str
    artifact: str  # sha256 of the artifact, or the image reference (with its digest)
    target: str
    environment: str
    result: str  # "deployed" or "failed"
    error: str
    endpoint: str
    seconds: float


def record(root: Path, **fields: Any) -> Record:
    """Append one record (time, user and commit are filled in) and return it."""
    entry = Record(
        time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        user=_user(),
        commit=_commit(root),
        **fields,
    )
    path = root / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(entry), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return entry


def history(root: Path, name: str | None = None) -> list[dict[str, Any]]:
    """Records in the order they were written (all, or those of one model)."""
    try:
        lines = (root / LEDGER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn line from a crash mid-write
        if isinstance(entry, dict) and (name is None or entry.get("name") == name):
            records.append(entry)
    return records


def _user() -> str:
    try:
        return os.environ.get("GITHUB_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _commit(root: Path) -> str:
    from .git import run_git

    done = run_git(root, "rev-parse", "HEAD", timeout=10)
    return done.stdout.strip() if done and done.returncode == 0 else ""

"""The deployment ledger: one JSON line per deploy attempt, appended, never rewritten.

Each record is written with a single write(2) on a file opened O_APPEND and then fsync'd, so
concurrent deploys never interleave and a crash leaves at most a missing line, never a torn
one in the middle. Still, the file is only text anyone can edit (or commit): a reader skips
every line that is not a record as modelgate writes it, and counts them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import paths

LEDGER = Path(".modelgate") / "ledger.jsonl"
DIED = "died"  # the result of a kept server found gone: not a deploy, the end of one


@dataclass(frozen=True)
class Record:
    time: str
    name: str
    user: str
    commit: str
    spec_hash: str
    artifact: str  # sha256 (a folder's treeSha256) of the artifact, or the image reference
    target: str
    environment: str
    # "deployed", "failed", "interrupted", "not run" (the target cannot run it), or "died" (a
    # server kept running was found gone)
    result: str
    error: str
    endpoint: str
    seconds: float
    # kubernetes: the digest of the manifests applied (validator/deploy/last_good.py)
    manifests: str = ""
    # what the smoke tests ran on in place of the real model (stand_ins.description); ""
    # when the real model ran
    stand_in: str = ""


def record(root: Path, **fields: Any) -> Record:
    """Append one record (time, user and commit are filled in) and return it."""
    entry = Record(
        time=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        user=_user(),
        commit=_commit(root),
        **fields,
    )
    path = root / LEDGER
    paths.make_dirs(path.parent, root)
    line = (json.dumps(asdict(entry), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    descriptor = paths.open_for_write(path, root, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return entry


@dataclass
class Ledger:
    """The records read, and how many lines were skipped as damaged."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    @property
    def note(self) -> str:
        """What to tell the user about skipped lines; "" when none were."""
        if not self.skipped:
            return ""
        lines = "line" if self.skipped == 1 else "lines"
        return f"skipped {self.skipped} damaged {lines} of {LEDGER.as_posix()}"


def read(root: Path, name: str | None = None) -> Ledger:
    """Records in the order they were written (all, or those of one model). A line that is
    not valid UTF-8, not JSON, or not a record with fields of the right types is skipped."""
    try:
        lines = paths.read_bytes(root / LEDGER, root).split(b"\n")
    except paths.LinkOut:
        raise  # a finding, reported by the command; never an empty history
    except OSError:
        return Ledger()
    ledger = Ledger()
    for line in lines:
        if not line.strip():
            continue
        entry = _parse(line)
        if entry is None:
            ledger.skipped += 1
        elif name is None or entry["name"] == name:
            ledger.records.append(entry)
    return ledger


def history(root: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The records of `read`, without the count of damaged lines."""
    return read(root, name).records


_NUMBERS = {"seconds"}


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return None
    for known in fields(Record):
        if known.name in entry and not _fits(entry[known.name], known.name in _NUMBERS):
            return None
    return entry


def _fits(value: Any, number: bool) -> bool:
    if not number:
        return isinstance(value, str)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _user() -> str:
    try:
        return os.environ.get("GITHUB_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _commit(root: Path) -> str:
    from ..git import run_git

    done = run_git(root, "rev-parse", "HEAD", timeout=10)
    return done.stdout.strip() if done and done.returncode == 0 else ""

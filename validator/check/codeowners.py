"""CODEOWNERS covers every file that decides what reaches a cluster: a pull request that
changes one of them waits for its owners' review. A path no line owns, or one a later line
takes back without owners (the last matching line wins), is a finding at that line.

Patterns are matched as GitHub does (gitignore's rules: `/` anchors, a trailing `/` is a
folder, `*` stays within a folder, `**` crosses them). The check needs no listing of the
repository: each guarded path is tried with a file of its own, and with a file each pattern
under it names (its wildcards filled in), which is where a later line can take part of it
back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..diagnostics import Diagnostic, error
from . import load

UNOWNED = "MG304"
# Where GitHub looks, in its order: the first that exists is the one it uses.
LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
# What decides what reaches a cluster: folders end in '/'.
GUARDED = (
    "models/",
    "policies/",
    "templates/",
    "rendered/",
    "locks/",
    "crds/",
    "validator/",
    "docs/models/",
    ".github/",
    "Makefile",
    "pyproject.toml",
    ".pre-commit-config.yaml",
)
PROBE = "new-file"  # a file name no pattern is written for


@dataclass(frozen=True)
class Entry:
    line: int
    pattern: str
    owners: tuple[str, ...]

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(_translate(self.pattern))

    def example(self) -> str:
        """A path the pattern matches: its wildcards filled in, a folder given a file."""
        text = re.sub(r"\*\*|\*|\?", "x", self.pattern.lstrip("/"))
        return text + PROBE if text.endswith("/") or not text else text


def check(root: Path) -> list[Diagnostic]:
    for location in LOCATIONS:
        path = root / location
        if path.is_file() and not path.is_symlink():
            return _check_file(path, location)
    return []


def _check_file(path: Path, shown: str) -> list[Diagnostic]:
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    if len(raw) > load.MAX_BYTES:
        return [_finding(shown, 1, "CODEOWNERS is larger than 1 MiB: GitHub ignores it")]
    text = raw.decode("utf-8", errors="replace")
    entries = list(_entries(text))
    last_line = max(1, text.count("\n"))
    findings: list[Diagnostic] = []
    for guarded in GUARDED:
        problem = _first_unowned(guarded, entries)
        if problem is None:
            continue
        where, entry = problem
        if entry is None:
            message = f"{where} has no code owner: no line of {shown} matches it"
            findings.append(_finding(shown, last_line, message))
        else:
            message = f"{where} has no code owner: this line takes it back without owners"
            findings.append(_finding(shown, entry.line, message))
    return findings


def _entries(text: str) -> list[Entry]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if words:
            found.append(Entry(number, words[0], tuple(words[1:])))
    return found


def _first_unowned(guarded: str, entries: list[Entry]) -> tuple[str, Entry | None] | None:
    """The first example path of `guarded` whose last matching entry has no owners (with
    that entry), or that no entry matches (with None)."""
    for example in _examples(guarded, entries):
        matching = [entry for entry in entries if entry.regex.match(example)]
        if not matching:
            return example, None
        if not matching[-1].owners:
            return example, matching[-1]
    return None


def _examples(guarded: str, entries: list[Entry]) -> list[str]:
    if not guarded.endswith("/"):
        return [guarded]
    examples = [guarded + PROBE]
    for entry in entries:
        example = entry.example()
        anchored = entry.pattern.startswith("/") or "/" in entry.pattern.rstrip("/")
        candidate = example if anchored else guarded + example
        if candidate.startswith(guarded) and candidate not in examples:
            examples.append(candidate)
    return examples


def _translate(pattern: str) -> str:
    """A CODEOWNERS pattern as a regular expression over '/'-separated paths."""
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    folder = pattern.endswith("/")
    body = pattern.strip("/")
    out = []
    index = 0
    while index < len(body):
        if body.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif body.startswith("**", index):
            out.append(".*")
            index += 2
        elif body[index] == "*":
            out.append("[^/]*")
            index += 1
        elif body[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(body[index]))
            index += 1
    start = "^" if anchored else "^(?:.*/)?"
    return start + "".join(out) + ("/.*$" if folder else "(?:/.*)?$")


def _finding(shown: str, line: int, message: str) -> Diagnostic:
    return error(
        shown,
        line,
        1,
        UNOWNED,
        message,
        "give it owners in CODEOWNERS (the last matching line wins)",
    )

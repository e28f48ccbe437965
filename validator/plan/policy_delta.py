"""What a change does to policy: waivers added, removed or expiring soon, per spec; and the
rules and parameters it weakens (the `policy weakened` report, REF's against the change's)."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..check import load
from ..check.policy.rules import POLICY_DIR, WAIVERS_FILE
from .model import WaiverChange
from .sides import read_blobs

EXPIRING_WITHIN_DAYS = 14
WAIVERS = f"{POLICY_DIR}/{WAIVERS_FILE}"


def _entries(raw: bytes | None) -> dict[tuple[str, str], dict[str, Any]]:
    """(rule, spec) -> the waiver, from the bytes of a waivers file (none: no waivers)."""
    if raw is None:
        return {}
    document, problems = load.load_bytes(raw, WAIVERS)
    waivers = document.data.get("waivers") if document is not None and not problems else None
    found = {}
    for entry in waivers if isinstance(waivers, list) else []:
        if isinstance(entry, dict) and {"rule", "spec"} <= set(entry):
            found[(str(entry["rule"]), str(entry["spec"]))] = entry
    return found


def waiver_changes(root: Path, commit: str, today: dt.date) -> list[WaiverChange]:
    """Every waiver the change adds or removes, and every one in force that expires within
    EXPIRING_WITHIN_DAYS of today."""
    before = _entries(read_blobs(root, [f"{commit}:{WAIVERS}"]).get(f"{commit}:{WAIVERS}"))
    path = root / WAIVERS
    after = _entries(path.read_bytes() if path.is_file() and not path.is_symlink() else None)
    changes = []
    for key in sorted(set(before) | set(after)):
        entry = after.get(key) or before[key]
        action = "added" if key not in before else "removed" if key not in after else None
        if action is None and _expiring(entry, today):
            action = "expiring"
        if action is not None:
            changes.append(
                WaiverChange(
                    action,
                    key[0],
                    key[1],
                    str(entry.get("expires", "")),
                    str(entry.get("approver", "")),
                )
            )
    return changes


def _expiring(entry: dict[str, Any], today: dt.date) -> bool:
    try:
        expires = dt.date.fromisoformat(str(entry.get("expires")))
    except ValueError:
        return False
    return 0 <= (expires - today).days <= EXPIRING_WITHIN_DAYS


def weakened_by_change(root: Path, commit: str, now: Any) -> list[Any]:
    """The weakenings in force with the change that REF's policies/ did not have: REF's
    policies are read from a copy of that folder made from git, outside the work tree."""
    from ..check.policy import load_policy

    after = now.weakened(commit)
    with tempfile.TemporaryDirectory(prefix="modelgate-plan-") as scratch:
        # bytes, not text: run_git's text mode would mangle the tar
        tar = subprocess.run(
            ["git", "archive", "--format=tar", commit, "--", f"{POLICY_DIR}/"],
            cwd=root,
            capture_output=True,
            check=False,
        )
        if tar.returncode != 0:
            return after  # REF had no policies/: every weakening is the change's
        subprocess.run(["tar", "-x", "-C", scratch], input=tar.stdout, check=False)
        before_policy, _ = load_policy(Path(scratch))
        before = {(w.kind, w.name, w.change) for w in before_policy.weakened()}
    return [w for w in after if (w.kind, w.name, w.change) not in before]

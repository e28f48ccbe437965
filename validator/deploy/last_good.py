"""The manifests of the last good kubernetes deploy of a model to an environment.

A deploy that passed keeps the manifests it applied in .modelgate/kubernetes/ENV/NAME/DIGEST/,
DIGEST being the sha256 of their listing (`<sha256>  <file>` lines, sorted), and the ledger
records DIGEST with the deploy. A deploy that fails asks the ledger for the last deploy of the
model to that environment that passed, and applies its manifests again: the copy is used only
when its files still hash to the digest the ledger recorded.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from . import ledger

STORE = Path(".modelgate") / "kubernetes"
DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LastGood:
    record: dict[str, Any]  # the ledger's record of that deploy
    files: dict[str, bytes]  # file name -> content, as applied then

    def describe(self) -> str:
        commit = str(self.record.get("commit", ""))[:12] or "no commit"
        return f"the deploy of {self.record.get('time', '?')} ({commit})"


def digest(files: dict[str, bytes]) -> str:
    listing = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n"
        for name, content in sorted(files.items(), key=lambda item: item[0].encode())
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def save(root: Path, environment: str, name: str, files: dict[str, bytes]) -> str:
    """Keep the manifests of a deploy that passed (only the latest per model and environment)
    and return their digest, for the ledger."""
    key = digest(files)
    base = root / STORE / environment / name
    target = base / key
    paths.make_dirs(target, root)
    for file_name, content in files.items():
        paths.write_bytes(target / file_name, root, content)
    for other in base.iterdir():
        if other.name != key and not other.is_symlink() and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return key


def find(root: Path, environment: str, name: str) -> tuple[LastGood | None, str]:
    """The last good deploy, or None and why there is none that can be applied again."""
    records = ledger.read(root, name).records
    passed = [
        record
        for record in records
        if record.get("target") == "kubernetes"
        and record.get("environment") == environment
        and record.get("result") == "deployed"
    ]
    if not passed:
        return None, f"no earlier deploy of {name} to {environment} passed"
    record = passed[-1]
    key = str(record.get("manifests", ""))
    if not DIGEST.match(key):
        return None, "the ledger's last good deploy recorded no manifests to apply again"
    folder = root / STORE / environment / name / key
    files = _read(folder, root)
    if not files or digest(files) != key:
        shown = folder.relative_to(root).as_posix()
        return None, f"the manifests of the last good deploy are not in {shown} as recorded"
    return LastGood(record, files), ""


def _read(folder: Path, root: Path) -> dict[str, bytes]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return {}
    files = {}
    for entry in entries:
        if entry.name.endswith(".yaml") and entry.is_file(follow_symlinks=False):
            try:
                files[entry.name] = paths.read_bytes(entry.path, root)
            except OSError:
                return {}
    return files

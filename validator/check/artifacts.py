"""An artifact kept in the repository is the one its spec's sha256 names.

A pull request that changes only the artifact's bytes would otherwise pass every check and
fail at the next real deploy (or, where nothing checks, serve unreviewed weights).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import paths
from ..diagnostics import Diagnostic
from .load import Document

ARTIFACT_CHANGED = "MG119"
CHUNK = 1024 * 1024


def check(document: Document, root: Path) -> list[Diagnostic]:
    model = document.data["spec"]["model"]
    artifact, expected = model.get("artifact"), model.get("sha256")
    if not artifact or "://" in artifact or not expected:
        return []
    path = root / artifact
    if not os.path.normpath(path).startswith(os.path.abspath(root) + os.sep):
        return []  # `..` out of the repository: the artifact path policy's finding
    if not path.is_file():  # not made yet (a new spec's placeholder): deploy reports it
        return []
    if paths.leads_out(path, root):
        return [
            document.finding(
                ["spec", "model", "artifact"],
                paths.LINK_OUT,
                f"artifact {artifact} leads out of the repository through a symbolic link",
                "commit the artifact itself, or name it by URI",
            )
        ]
    actual = _sha256(path)
    if actual == expected:
        return []
    return [
        document.finding(
            ["spec", "model", "sha256"],
            ARTIFACT_CHANGED,
            f"artifact {artifact} has sha256 {actual}; the spec names {expected}",
            "the artifact changed: review it, then put its new sha256 in the spec",
        )
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

"""A stand-in (spec.smoke.standIn) is one the local target can serve and anyone can make
again: an engine the local target starts for its format, speaking the spec's protocol (the
spec's smoke requests are sent to it), an artifact and a script inside the repository, and
an artifact that is the one its digest names (scanned like the model's when it is a pickle).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic
from ..engines import ENGINES
from . import artifacts, pickles, stand_ins
from .load import Document, JsonPath

UNSERVABLE = "MG232"
NO_SCRIPT = "MG233"

# spec fields the stand-in replaces -> the stand-in's field that gives them
_REPLACED = {
    ("spec", "model", "artifact"): "artifact",
    ("spec", "model", "sha256"): "sha256",
    ("spec", "model", "treeSha256"): "treeSha256",
    ("spec", "model", "format"): "format",
    ("spec", "engine", "name"): "engine",
}


@dataclass
class StandInDocument(Document):
    """A spec with its stand-in in place of its model: findings about the model's artifact,
    digest, format or engine point at the stand-in's field that gave it."""

    def finding(
        self, path: JsonPath, rule: str, message: str, hint: str = "", *, key: bool = False
    ) -> Diagnostic:
        return super().finding(self._moved(path), rule, message, hint, key=key)

    def _moved(self, path: JsonPath) -> JsonPath:
        stand_in = stand_ins.of(self.data["spec"]) or {}
        if list(path) == ["spec", "model"]:
            return stand_ins.STAND_IN
        field = _REPLACED.get(tuple(path))  # type: ignore[arg-type]
        if field is None:
            return path
        return [*stand_ins.STAND_IN, field] if field in stand_in else stand_ins.STAND_IN


def served(document: Document) -> Document:
    """The document the local target deploys: the spec itself, or with its stand-in."""
    if stand_ins.of(document.data["spec"]) is None:
        return document
    data = {**document.data, "spec": stand_ins.served_spec(document.data["spec"])}
    return StandInDocument(document.path, data, document.text)


def check(document: Document, root: Path) -> list[Diagnostic]:
    spec = document.data["spec"]
    stand_in = stand_ins.of(spec)
    if stand_in is None:
        return []
    problems = [*_servable(document), *_paths(document, root)]
    if problems:
        return problems
    running = served(document)
    changed = artifacts.check(running, root)
    # a changed or unhashable stand-in is not the one reviewed: nothing to scan in it
    return changed or pickles.check(running, root)


def _servable(document: Document) -> list[Diagnostic]:
    spec = document.data["spec"]
    name, model_format = stand_ins.engine_name(spec), stand_ins.model_format(spec)
    engine = ENGINES[name]
    where = [*stand_ins.STAND_IN, "engine" if "engine" in stand_ins.of(spec) else "artifact"]
    local = [each for each, record in ENGINES.items() if record.local_command]
    if not engine.local_command:
        return [
            document.finding(
                where,
                UNSERVABLE,
                f"the local target cannot start engine {name}, so it cannot serve this stand-in",
                f"name an engine it starts (standIn.engine: {', '.join(local)})",
            )
        ]
    problems = []
    if not engine.serves_locally(model_format):
        problems.append(
            document.finding(
                [*stand_ins.STAND_IN, "format"] if "format" in stand_ins.of(spec) else where,
                UNSERVABLE,
                f"the local target serves {name} models of format "
                f"{', '.join(engine.local_formats or engine.formats)} only, and the stand-in "
                f"is {model_format}",
                "make a stand-in of a format its engine serves here, or name another engine",
            )
        )
    protocol = spec["engine"]["protocol"]
    if protocol not in engine.protocols:
        problems.append(
            document.finding(
                where,
                UNSERVABLE,
                f"engine {name} does not speak protocol {protocol}, the spec's: the stand-in "
                "is sent the spec's own smoke requests",
                "name an engine that speaks the spec's protocol (standIn.engine)",
            )
        )
    return problems


def _paths(document: Document, root: Path) -> list[Diagnostic]:
    stand_in = stand_ins.of(document.data["spec"])
    problems = []
    for field in ("artifact", "script"):
        if not _inside(root / stand_in[field], root):
            problems.append(
                document.finding(
                    [*stand_ins.STAND_IN, field],
                    UNSERVABLE,
                    f"stand-in {field} {stand_in[field]} lies outside the repository",
                    "keep the stand-in and the script that makes it in the repository",
                )
            )
    if problems:
        return problems
    if not _regular_file(root / stand_in["script"]):
        problems.append(
            document.finding(
                [*stand_ins.STAND_IN, "script"],
                NO_SCRIPT,
                f"the stand-in's script {stand_in['script']} is not a file of the repository",
                "commit the script that makes the stand-in again (a fixed seed, pinned "
                "versions), and name it here",
            )
        )
    return problems


def _inside(path: Path, root: Path) -> bool:
    """`path` lies inside `root` as written (`..` resolved; a link out is the digest check's
    finding for the artifact, and not a regular file for the script)."""
    return os.path.normpath(os.path.abspath(path)).startswith(os.path.abspath(root) + os.sep)


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False

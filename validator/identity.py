"""A spec's identity: its name matches its file, and no two specs share a name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

from .diagnostics import Diagnostic
from .load import Document

NAME_MISMATCH = "MG109"
DUPLICATE_NAME = "MG301"


def spec_name(document: Document) -> str | None:
    metadata = document.data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def check_file_name(document: Document) -> list[Diagnostic]:
    name = spec_name(document)
    stem = PurePath(document.path).stem
    if name is None or name == stem:
        return []
    return [
        document.finding(
            ["metadata", "name"],
            NAME_MISMATCH,
            f"metadata.name '{name}' does not match the file name '{PurePath(document.path).name}'",
            f"rename the file to {name}.yaml or set metadata.name to '{stem}'",
        )
    ]


def check_unique_names(documents: Iterable[Document]) -> list[Diagnostic]:
    first: dict[str, Document] = {}
    findings: list[Diagnostic] = []
    for document in documents:
        name = spec_name(document)
        if name is None:
            continue
        if name not in first:
            first[name] = document
            continue
        findings.append(
            document.finding(
                ["metadata", "name"],
                DUPLICATE_NAME,
                f"name '{name}' is already used by {first[name].path}",
                "every model deployment needs its own name",
            )
        )
    return findings

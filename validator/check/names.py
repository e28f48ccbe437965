"""A spec's identity: its name matches its file, no two specs share a name, and its
environments do not take the names of rendered/'s other directories."""

from __future__ import annotations

from collections.abc import Container, Iterable
from pathlib import PurePath

from ..diagnostics import Diagnostic
from .load import Document

NAME_MISMATCH = "MG109"
RESERVED_ENVIRONMENT = "MG114"
DUPLICATE_NAME = "MG301"
# Directories of rendered/ that are not environments: the local and docker targets' files and
# the Argo CD ApplicationSets (render.LOCAL, render.DOCKER, render.ARGOCD).
TARGET_DIRECTORIES = ("local", "docker", "argocd")


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


def check_environments(document: Document) -> list[Diagnostic]:
    """An environment named like a target directory would mix its manifests into that
    directory of rendered/ (and Argo CD would sync, say, MLServer's settings.json)."""
    spec = document.data.get("spec")
    environments = spec.get("environments") if isinstance(spec, dict) else None
    if not isinstance(environments, list):
        return []
    return [
        document.finding(
            ["spec", "environments", index],
            RESERVED_ENVIRONMENT,
            f"environment name '{name}' is reserved: rendered/{name}/ holds "
            + ("the ApplicationSets" if name == "argocd" else f"the {name} target's files"),
            "name the environment after where it runs, e.g. dev, staging or production",
        )
        for index, name in enumerate(environments)
        if name in TARGET_DIRECTORIES
    ]


def check_unique_names(
    documents: Iterable[Document], only: Container[str] | None = None
) -> list[Diagnostic]:
    """MG301 at every spec whose name an earlier one has; with `only`, at those of its paths
    alone (the others are stand-ins that hold no text to point into)."""
    first: dict[str, Document] = {}
    findings: list[Diagnostic] = []
    for document in documents:
        name = spec_name(document)
        if name is None:
            continue
        if name not in first:
            first[name] = document
            continue
        if only is not None and document.path not in only:
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

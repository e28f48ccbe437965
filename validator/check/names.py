"""A spec's identity: its name matches its file, no two specs share a name, its
environments do not take the names of rendered/'s other directories, and its team can name
the Argo CD project its Applications belong to."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from pathlib import PurePath

from ..diagnostics import Diagnostic
from . import placeholders
from .load import Document

NAME_MISMATCH = "MG109"
RESERVED_ENVIRONMENT = "MG114"
DUPLICATE_NAME = "MG301"
RUNTIME_NAME = "MG302"
RUNTIME_BUILT_IN = "MG303"
TEAM_NAME = "MG270"
# a DNS-1123 label: a team names its Argo CD project in each environment, modelgate-TEAM-ENV
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# The runtimes a KServe installation brings (config/runtimes of KServe, and ModelMesh's):
# a namespaced ServingRuntime of one of these names shadows the cluster-wide one.
BUILT_IN_RUNTIMES = frozenset(
    {
        "kserve-huggingfaceserver",
        "kserve-huggingfaceserver-multinode",
        "kserve-lgbserver",
        "kserve-mlserver",
        "kserve-paddleserver",
        "kserve-pmmlserver",
        "kserve-sklearnserver",
        "kserve-tensorflow-serving",
        "kserve-torchserve",
        "kserve-tritonserver",
        "kserve-xgbserver",
        "mlserver-1.x",
        "ovms-1.x",
        "torchserve-0.x",
        "triton-2.x",
    }
)
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


def check_runtime_name(document: Document) -> list[Diagnostic]:
    """A runtime the spec defines (spec.runtime) is a ServingRuntime named exactly like the
    spec: unique as spec names are, never another team's runtime (which the one field
    manager would overwrite without a conflict), never a built-in one (which it would shadow
    in the namespace)."""
    spec = document.data.get("spec")
    name = spec_name(document)
    if not isinstance(spec, dict) or "runtime" not in spec or name is None:
        return []
    engine = spec.get("engine")
    given = engine.get("runtime") if isinstance(engine, dict) else None
    if isinstance(given, str) and given != name:
        return [
            document.finding(
                ["spec", "engine", "runtime"],
                RUNTIME_NAME,
                f"the runtime this spec defines would be the ServingRuntime '{given}'; "
                f"a runtime a spec defines is named like the spec, '{name}'",
                f"set spec.engine.runtime to '{name}', or leave it out",
            )
        ]
    if name in BUILT_IN_RUNTIMES:
        return [
            document.finding(
                ["metadata", "name"],
                RUNTIME_BUILT_IN,
                f"the runtime this spec defines would be named '{name}', like KServe's "
                "built-in runtime, which it would shadow in the namespace",
                "give the model deployment another name",
            )
        ]
    return []


def check_team(document: Document) -> list[Diagnostic]:
    """metadata.team names the Argo CD project of the spec's Applications (modelgate-TEAM-ENV)
    and its rendered file: a DNS-1123 label, as object names are. A placeholder is left to
    MG122, which says what to write."""
    metadata = document.data.get("metadata")
    team = metadata.get("team") if isinstance(metadata, dict) else None
    if not isinstance(team, str) or DNS_LABEL.fullmatch(team) or placeholders.find(team):
        return []
    suggested = re.sub(r"[^a-z0-9-]+", "-", team.lower())[:63].strip("-")
    return [
        document.finding(
            ["metadata", "team"],
            TEAM_NAME,
            f"team '{team}' cannot name the team's Argo CD project (modelgate-TEAM-ENV): a team "
            "is a DNS-1123 label, lowercase letters, digits and '-', starting and ending with a "
            "letter or digit",
            f"write the team as '{suggested}'"
            if suggested
            else "write the team in lowercase letters, digits and '-'",
        )
    ]

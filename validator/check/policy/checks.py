"""The few policy checks JSON Schema cannot express, each a small function with a name.

A rule in policies/*.yaml refers to one by `check: NAME`; the rule keeps its id, severity,
rationale and examples in the YAML like any other. Spec checks see one spec; repository
checks see every spec at once (uniqueness across files).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ... import targets
from ...engines import engine_for
from ...secrets import TOKEN_START, find_secret
from ..load import Document, Key
from ..schema import dotted

JsonPath = list[str | int]
SpecFinding = tuple[JsonPath, str]
RepositoryFinding = tuple[Document, JsonPath, str]


@dataclass(frozen=True)
class Context:
    root: Path
    parameters: dict[str, Any]


SpecCheck = Callable[[Document, Context], Iterator[SpecFinding]]
RepositoryCheck = Callable[[list[Document], Context], Iterator[RepositoryFinding]]


def artifact_inside_repository(document: Document, context: Context) -> Iterator[SpecFinding]:
    artifact = document.data["spec"]["model"].get("artifact")
    if not artifact or "://" in artifact:
        return
    where: JsonPath = ["spec", "model", "artifact"]
    path = PurePosixPath(artifact)
    if path.is_absolute() or artifact.startswith("\\") or re.match(r"^[A-Za-z]:", artifact):
        yield where, f"artifact path '{artifact}' is absolute"
    elif "\\" in artifact:
        yield where, f"artifact path '{artifact}' uses backslashes; write it with '/'"
    elif ".." in path.parts:
        yield where, f"artifact path '{artifact}' climbs out with '..'"
    else:
        local = context.root / artifact
        if local.exists() and not local.resolve().is_relative_to(context.root.resolve()):
            yield where, f"artifact path '{artifact}' is a symlink that leaves the repository"


def no_inline_secrets(document: Document, context: Context) -> Iterator[SpecFinding]:
    engine = document.data["spec"]["engine"]
    for index, variable in enumerate(engine.get("env", [])):
        value = variable.get("value")
        if not isinstance(value, str):
            continue
        kind = find_secret(value, suspicious_name=variable.get("name", ""))
        if kind:
            yield (
                ["spec", "engine", "env", index, "value"],
                f"environment variable {variable['name']} holds {kind} inline",
            )
    for index, argument in enumerate(engine.get("args", [])):
        kind = find_secret(argument)
        if kind:
            yield ["spec", "engine", "args", index], f"engine argument holds {kind} inline"
    # decoded text, not the file's: YAML escapes ("\x41KIA...") must not hide a token
    if not TOKEN_START.search("\n".join(_string_values(document.data))):
        return
    for path, value in _strings(document.data, []):
        if isinstance(path[-1], Key):  # a key lands in rendered files as surely as a value
            kind = find_secret(value, entropy=False)
            if kind:
                yield path, f"a key of {dotted(path[:-1])} holds {kind}"
            continue
        if path[:3] in (["spec", "engine", "env"], ["spec", "engine", "args"]):
            continue
        kind = find_secret(value, entropy=False)
        if kind:
            yield path, f"{dotted(path)} holds {kind}"


def scaling_bounds(document: Document, context: Context) -> Iterator[SpecFinding]:
    scaling = document.data["spec"].get("scaling", {})
    low, high = scaling.get("minReplicas"), scaling.get("maxReplicas")
    cap = context.parameters.get("maxReplicasCap", math.inf)
    if low is not None and high is not None and low > high:
        yield ["spec", "scaling", "minReplicas"], f"minReplicas {low} exceeds maxReplicas {high}"
    if high is not None and high > cap:
        yield ["spec", "scaling", "maxReplicas"], f"maxReplicas {high} exceeds the cap of {cap}"


def engine_supports_format(document: Document, context: Context) -> Iterator[SpecFinding]:
    spec = document.data["spec"]
    engine, model_format = spec["engine"]["name"], spec["model"]["format"]
    allowed = context.parameters.get("engines", {}).get(engine)
    if allowed is None:
        yield ["spec", "engine", "name"], f"engine {engine} is not on the allowed list"
        return
    if model_format not in allowed.get("formats", []):
        yield (
            ["spec", "model", "format"],
            f"engine {engine} does not serve format {model_format} "
            f"(allowed: {', '.join(allowed.get('formats', []))})",
        )
    version = spec["engine"].get("version")
    patterns = allowed.get("versions")
    if not engine_for(spec).takes_version:
        return  # its mode runs the cluster's servers, whose installation decides (MG226)
    if patterns and not (version and any(fnmatch.fnmatchcase(version, p) for p in patterns)):
        where: JsonPath = ["spec", "engine", "version" if version else "name"]
        yield where, f"{engine} version {version or '(unset)'} is not one of {', '.join(patterns)}"


def unique_endpoints(documents: list[Document], context: Context) -> Iterator[RepositoryFinding]:
    """A host name is one route wherever the specs run, so hosts are unique in the repository.
    Ports collide only where specs share a machine: the local and docker targets run here and
    share its ports, while in a cluster every pod has an address of its own."""
    yield from _taken_twice(documents, "host", "")
    here = [doc for doc in documents if targets.runs_on_this_machine(doc.data["spec"])]
    yield from _taken_twice(
        here, "port", "; both run on this machine, whose ports the local and docker targets share"
    )


def _taken_twice(documents: list[Document], field: str, why: str) -> Iterator[RepositoryFinding]:
    """Every spec whose spec.endpoint.FIELD an earlier one already took, at that field."""
    owners: dict[Any, Document] = {}
    for document in documents:
        value = document.data["spec"].get("endpoint", {}).get(field)
        if value is None:
            continue
        if value in owners:
            yield (
                document,
                ["spec", "endpoint", field],
                f"endpoint {field} {value} is already used by {owners[value].path}{why}",
            )
        else:
            owners[value] = document


def _string_values(node: Any) -> list[str]:
    """Every mapping key and string value in `node`, without the paths _strings builds (those
    are only wanted for the rare spec whose text looks like it holds a token)."""
    found, pending = [], [node]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            found.append(current)
        elif isinstance(current, dict):
            found.extend(current)
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return found


def _strings(node: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    """Every string value with its path, and every mapping key with its path ending in a Key."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield [*path, Key(key)], key
            yield from _strings(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, [*path, index])


SPEC_CHECKS: dict[str, SpecCheck] = {
    "artifact_inside_repository": artifact_inside_repository,
    "no_inline_secrets": no_inline_secrets,
    "scaling_bounds": scaling_bounds,
    "engine_supports_format": engine_supports_format,
}
REPOSITORY_CHECKS: dict[str, RepositoryCheck] = {
    "unique_endpoints": unique_endpoints,
}
CHECKS = {**SPEC_CHECKS, **REPOSITORY_CHECKS}

"""kubectl, as the kubernetes target uses it: server-side apply with modelgate's field
manager, reads, deletes and label-selected lists, each refusal kept with its reason.

kubectl rather than the API directly: it speaks every authentication a kubeconfig can name
(client certificates, tokens, exec plugins of managed clusters)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..render.view import plural
from .logs import said

FIELD_MANAGER = "modelgate"
UNKNOWN_TYPE = "the server doesn't have a resource type"


class KubectlError(Exception):
    pass


@dataclass(frozen=True)
class Cluster:
    """Which cluster a run talks to: the kubeconfig's context (None: its current one) and
    the namespace the user expects the model in (None: the one rendered/ names)."""

    context: str | None = None
    namespace: str | None = None


_selected = Cluster()


def select(cluster: Cluster) -> None:
    """Every kubectl call of this process from now on goes to `cluster`'s context."""
    global _selected
    _selected = cluster


def selected() -> Cluster:
    return _selected


def command(*args: str) -> list[str]:
    """kubectl with these arguments, at the selected context."""
    context = [f"--context={_selected.context}"] if _selected.context else []
    return ["kubectl", *context, *args]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def configuration_problem() -> str:
    """Why kubectl has no cluster to talk to, said before it is asked ('' when it has one):
    the kubeconfig files KUBECONFIG names (else ~/.kube/config) are all missing, or the
    selected context is not among those they define."""
    named = os.environ.get("KUBECONFIG", "")
    files = [path for path in named.split(os.pathsep) if path]
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if not files and not in_cluster:
        default = Path.home() / ".kube" / "config"
        if not default.is_file():
            return f"KUBECONFIG is not set and {default} does not exist"
    elif files and not any(Path(path).is_file() for path in files):
        which = ", ".join(files)
        return f"KUBECONFIG names {which}, which does not exist"
    if _selected.context:
        try:
            done = subprocess.run(
                ["kubectl", "config", "get-contexts", "--output=name"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""  # no kubectl to ask: the deploy says that next
        contexts = done.stdout.split()
        if done.returncode == 0 and _selected.context not in contexts:
            known = ", ".join(contexts) or "none"
            return f"the kubeconfig has no context {_selected.context} (its contexts: {known})"
    return ""


def kubectl(*args: str, timeout: float = 120) -> str:
    done = run(*args, timeout=timeout)
    if done.returncode != 0:
        raise KubectlError(said(done.stderr) or f"kubectl {args[0]} failed")
    return done.stdout


@dataclass(frozen=True)
class Ref:
    """One object in the cluster. Two refs are the same object whatever version names it."""

    api_version: str = field(compare=False)
    kind: str
    namespace: str
    name: str
    group: str = ""

    @classmethod
    def of(cls, document: dict[str, Any], namespace: str = "") -> Ref:
        metadata = document.get("metadata") or {}
        api_version = str(document.get("apiVersion", ""))
        return cls(
            api_version,
            str(document.get("kind", "")),
            str(metadata.get("namespace") or namespace),
            str(metadata.get("name", "")),
            api_version.rpartition("/")[0],
        )

    @property
    def resource_type(self) -> str:
        """The type as kubectl takes it, group included: `deployments.apps`, `services`."""
        return resource_type(self.group, plural(self.kind))

    @property
    def resource(self) -> str:
        return f"{self.resource_type}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def resource_type(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


@dataclass(frozen=True)
class Refusal:
    """Why the cluster did not take an object, and who holds the fields it would not give up."""

    message: str
    managers: tuple[str, ...] = ()  # other field managers, when it is a conflict
    fields: tuple[str, ...] = ()

    @property
    def conflict(self) -> bool:
        return bool(self.managers)


def apply(files: Sequence[Path], *, dry_run: bool = False, force: bool = False) -> Refusal | None:
    """Server-side apply of manifest files; None when the cluster took every object."""
    arguments = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}"]
    if dry_run:
        arguments.append("--dry-run=server")
    if force:
        arguments.append("--force-conflicts")
    done = run(*arguments, *(f"--filename={path}" for path in files))
    return None if done.returncode == 0 else refusal(done.stderr)


def refusal(stderr: str) -> Refusal:
    """kubectl's error, with a server-side apply conflict taken apart: the managers holding the
    fields and the fields (`conflict with "kubectl-edit" using apps/v1: .spec.replicas`, or
    `conflicts with "M" ...:` followed by `- .field` lines)."""
    text = stderr.strip()
    head = text.split("\nPlease review the fields above", 1)[0]
    if "Apply failed with" not in head:
        return Refusal(_short(text))
    managers = tuple(dict.fromkeys(re.findall(r'conflicts? with "([^"]+)"', head)))
    fields = tuple(re.findall(r"(?::\s|^-\s)(\.\S+)", head, re.MULTILINE))
    return Refusal(_short(head), managers, fields)


def _short(text: str, limit: int = 600) -> str:
    text = re.sub(r"^error: ", "", said(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def get(refs: Sequence[Ref]) -> dict[Ref, dict[str, Any]]:
    """The objects of `refs` the cluster has now (absent ones are left out). One kubectl call
    per namespace; kinds the cluster does not serve have no objects."""
    found: dict[Ref, dict[str, Any]] = {}
    for namespace, group in _by_namespace(refs).items():
        arguments = ["get", *(r.resource for r in group), "-n", namespace]
        done = run(*arguments, "--ignore-not-found", "-o", "json")
        if done.returncode == 0:
            found.update(_indexed(items(done.stdout), namespace))
            continue
        if UNKNOWN_TYPE not in done.stderr:
            raise KubectlError(said(done.stderr))
        for ref in group:  # one of them is not served: ask for each alone
            one = run("get", ref.resource, "-n", namespace, "--ignore-not-found", "-o", "json")
            if one.returncode == 0:
                found.update(_indexed(items(one.stdout), namespace))
            elif UNKNOWN_TYPE not in one.stderr:
                raise KubectlError(said(one.stderr))
    return found


def delete(ref: Ref) -> str:
    """Delete one object (its dependents go with it, in the background); "" when done or
    already gone, else the cluster's reason."""
    done = run("delete", ref.resource, "-n", ref.namespace, "--ignore-not-found", "--wait=false")
    return "" if done.returncode == 0 else _short(done.stderr)


def labelled(
    namespace: str, types: Iterable[str], selector: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Objects of these types carrying the labels: (objects, why a type could not be listed).
    A type the cluster does not serve has no objects."""
    types = sorted(set(types))
    if not types:
        return [], []
    listing = ["-n", namespace, "-l", selector, "-o", "json", "--show-managed-fields"]
    done = run("get", ",".join(types), *listing)
    if done.returncode == 0:
        return items(done.stdout), []
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for each in types:
        one = run("get", each, *listing)
        if one.returncode == 0:
            objects += items(one.stdout)
        elif UNKNOWN_TYPE not in one.stderr:
            problems.append(f"{each}: {_short(one.stderr)}")
    return objects, problems


def applied_by_modelgate(resource: dict[str, Any]) -> bool:
    """Whether modelgate's field manager applied (server-side) fields of this object: what
    modelgate never applied, it never deletes."""
    managed = (resource.get("metadata") or {}).get("managedFields") or []
    return any(
        entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        for entry in managed
        if isinstance(entry, dict)
    )


def _by_namespace(refs: Sequence[Ref]) -> dict[str, list[Ref]]:
    groups: dict[str, list[Ref]] = {}
    for ref in refs:
        groups.setdefault(ref.namespace, []).append(ref)
    return groups


def items(stdout: str) -> list[dict[str, Any]]:
    if not stdout.strip():
        return []
    answer = json.loads(stdout)
    if answer.get("kind", "").endswith("List") and "items" in answer:
        return [item for item in answer["items"] if isinstance(item, dict)]
    return [answer]


def _indexed(objects: list[dict[str, Any]], namespace: str) -> dict[Ref, dict[str, Any]]:
    return {Ref.of(item, namespace): item for item in objects}

"""Rendered objects as the output rules see them: one rendered file's data, where it goes
and what made it, and the parts of it each kind of subject names.

Subjects:

    object          the whole object, of the rule's `kinds`
    podSpec         each pod spec: spec.template.spec of a Deployment (StatefulSet, DaemonSet,
                    ReplicaSet, Job), spec.jobTemplate.spec.template.spec of a CronJob, spec of
                    a Pod, spec.predictor / transformer / explainer of an InferenceService
    container       each container and init container of every pod spec, and an
                    InferenceService component's `model` (a serving runtime's container)
    composeService  each service of a compose file

A Seldon Core Model has no pods of its own (the shared Server's pods serve it), so it is an
object only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...engines.kserve import RUNTIME_CONTAINERS
from .rules import Rule

if TYPE_CHECKING:
    from ..load import Document

JsonPath = list[str | int]
COMPOSE = "Compose"  # the kind a compose file stands for (it has no `kind` of its own)
COMPOSE_FILE = "compose.yaml"

# where each kind keeps its pod specs
POD_SPECS: dict[str, tuple[tuple[str, ...], ...]] = {
    **{
        kind: (("spec", "template", "spec"),)
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
    },
    "CronJob": (("spec", "jobTemplate", "spec", "template", "spec"),),
    "Pod": (("spec",),),
    "InferenceService": (("spec", "predictor"), ("spec", "transformer"), ("spec", "explainer")),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Kinds that hold containers but no pod spec of their own: KServe (or ModelMesh) makes pods of
# a ServingRuntime's containers, so they are judged as containers
CONTAINER_HOLDERS: dict[str, tuple[tuple[str, ...], ...]] = {"ServingRuntime": (("spec",),)}
# An InferenceService in ModelMesh mode has no pods of its own: its model is loaded into the
# shared pods of its ServingRuntime
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
SHARED_PODS = "ModelMesh"


@dataclass(frozen=True)
class OutputObject:
    """One rendered file's data, where it goes and what made it."""

    path: str  # e.g. rendered/staging/iris/deployment.yaml
    data: dict[str, Any]
    template: str = ""  # the template that produced it, e.g. vllm/deployment.yaml.j2

    @cached_property
    def kind(self) -> str:
        if self.path.rsplit("/", 1)[-1] == COMPOSE_FILE:
            return COMPOSE
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    @cached_property
    def pod_specs(self) -> list[tuple[JsonPath, dict[str, Any]]]:
        """(path, pod spec) of each pod spec the object holds."""
        found = []
        if self.shares_pods:
            return found
        for path in POD_SPECS.get(self.kind, ()):
            node: Any = self.data
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                found.append((list(path), node))
        return found

    @cached_property
    def shares_pods(self) -> bool:
        """An InferenceService in ModelMesh mode: its model runs in shared runtime pods."""
        metadata = self.data.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        mode = annotations.get(DEPLOYMENT_MODE) if isinstance(annotations, dict) else None
        return self.kind == "InferenceService" and mode == SHARED_PODS

    @cached_property
    def containers(self) -> list[tuple[JsonPath, dict[str, Any]]]:
        """(path, container) of each container of each of its pod specs, and of the
        containers it holds for pods made elsewhere (a ServingRuntime's)."""
        held = []
        for path in CONTAINER_HOLDERS.get(self.kind, ()):
            node: Any = self.data
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                held.extend(containers(self, list(path), node))
        return [
            *(found for path, pod in self.pod_specs for found in containers(self, path, pod)),
            *held,
        ]

    @property
    def name(self) -> str:
        metadata = self.data.get("metadata")
        return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


@dataclass(frozen=True)
class OutputContext:
    """What output checks may need besides the objects: the policy's parameters, the spec
    the objects were rendered from (None for repository-wide ones) and the values."""

    parameters: Mapping[str, Any]
    spec: Mapping[str, Any] | None = None  # the whole spec document's data
    values: Mapping[str, Any] = field(default_factory=dict)
    values_document: Document | None = None  # templates/values.yaml, for its positions


def subjects(rule: Rule, obj: OutputObject) -> Iterator[tuple[JsonPath, Any]]:
    """(path in the object, value) of everything in `obj` the rule looks at."""
    if rule.kinds is not None and obj.kind not in rule.kinds:
        return
    for subject in rule.subjects:
        if subject == "object":
            yield [], obj.data
        elif subject == "podSpec":
            yield from obj.pod_specs
        elif subject == "container":
            yield from obj.containers
        elif subject == "composeService" and obj.kind == COMPOSE:
            services = obj.data.get("services")
            if isinstance(services, dict):
                for name, service in services.items():
                    if isinstance(service, dict):
                        yield ["services", name], service


def containers(
    obj: OutputObject, path: JsonPath, pod: dict[str, Any]
) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    for key in CONTAINER_LISTS:
        listed = pod.get(key)
        if isinstance(listed, list):
            for index, container in enumerate(listed):
                if isinstance(container, dict):
                    yield [*path, key, index], container
    if obj.kind == "InferenceService":
        for key in RUNTIME_CONTAINERS:
            if isinstance(pod.get(key), dict):
                yield [*path, key], pod[key]


def serving_container(
    obj: OutputObject, path: JsonPath, pod: dict[str, Any]
) -> tuple[JsonPath, dict[str, Any]] | None:
    """The container that answers requests: an InferenceService's runtime container, else the
    first of `containers` (templates put the server first, sidecars after)."""
    if obj.kind == "InferenceService":
        for key in RUNTIME_CONTAINERS:
            if isinstance(pod.get(key), dict):
                return [*path, key], pod[key]
    listed = pod.get("containers")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        return [*path, "containers", 0], listed[0]
    return None

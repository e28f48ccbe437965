"""The few output rules data cannot say, each a small function with a name: those that look
across the objects of one spec (a workload's NetworkPolicy and PodDisruptionBudget) or need
the spec itself (the health paths of its engine).

A rule in policies/*.yaml names one by `check: NAME` under `outputRules`; the rule keeps its
id, severity, rationale and examples in the YAML like any other. Each check sees the objects
of one spec rendered for one environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ...engines import COMPONENT_HEALTH, COMPONENTS, ENGINES, health_paths
from .rendered import JsonPath, OutputContext, OutputObject, serving_container
from .rules import Rule

OutputCheck = Callable[
    [Rule, Sequence[OutputObject], OutputContext], Iterator[tuple[OutputObject, JsonPath, str]]
]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "InferenceService")
KSERVE_POD_LABEL = "serving.kserve.io/inferenceservice"  # KServe labels the pods it makes
NEEDED_POLICY_TYPES = ("Ingress", "Egress")


def serving_probes(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[tuple[OutputObject, JsonPath, str]]:
    """The serving container of every pod spec has liveness and readiness probes on the
    paths its engine answers at (engines.health_paths); an InferenceService's transformer and
    explainer, KServe model servers of their own, on theirs (engines.COMPONENT_HEALTH)."""
    spec = context.spec
    if spec is None or spec.get("spec", {}).get("engine", {}).get("name") not in ENGINES:
        return
    engine_paths = health_paths(spec["spec"], spec["metadata"]["name"], context.values)
    for obj in objects:
        if rule.kinds is not None and obj.kind not in rule.kinds:
            continue
        for path, pod in obj.pod_specs:
            found = serving_container(obj, path, pod)
            if found is None:
                yield obj, path, f"{obj.kind} {obj.name} has no serving container"
                continue
            where, container = found
            component = obj.kind == "InferenceService" and path[-1] in COMPONENTS
            live, ready = COMPONENT_HEALTH if component else engine_paths
            yield from _probe(obj, where, container, "livenessProbe", live)
            yield from _probe(obj, where, container, "readinessProbe", ready)


def _probe(
    obj: OutputObject, where: JsonPath, container: dict[str, Any], probe: str, expected: str
) -> Iterator[tuple[OutputObject, JsonPath, str]]:
    name = container.get("name", where[-1])
    found = container.get(probe)
    if not isinstance(found, dict):
        yield obj, where, f"serving container {name} has no {probe} (expected GET {expected})"
        return
    check = found.get("httpGet")
    if not isinstance(check, dict):
        message = f"serving container {name}'s {probe} is not an HTTP GET of {expected}"
        yield obj, [*where, probe], message
        return
    if check.get("path") != expected:
        yield (
            obj,
            [*where, probe, "httpGet", "path"],
            f"serving container {name}'s {probe} checks {check.get('path')!r}, "
            f"but the engine answers it at {expected}",
        )


def workload_network_policy(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[tuple[OutputObject, JsonPath, str]]:
    """Every workload's pods are selected by NetworkPolicies of its namespace that together
    restrict both Ingress and Egress."""
    policies = [obj for obj in objects if obj.kind == "NetworkPolicy"]
    for workload in _workloads(rule, objects):
        labels, namespace = pod_labels(workload), _namespace(workload)
        selecting = [
            policy
            for policy in policies
            if _namespace(policy) == namespace and selects(_spec(policy).get("podSelector"), labels)
        ]
        if not selecting:
            yield (
                workload,
                ["metadata", "name"],
                f"no NetworkPolicy selects the pods of {workload.kind} {workload.name}",
            )
            continue
        covered = {kind for policy in selecting for kind in policy_types(policy)}
        missing = [kind for kind in NEEDED_POLICY_TYPES if kind not in covered]
        if missing:
            yield (
                selecting[0],
                ["spec", "policyTypes"],
                f"NetworkPolicy {selecting[0].name} selects the pods of {workload.kind} "
                f"{workload.name} but does not restrict {' or '.join(missing)}",
            )


def workload_disruption_budget(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[tuple[OutputObject, JsonPath, str]]:
    """Every workload's pods are selected by a PodDisruptionBudget of its namespace."""
    budgets = [obj for obj in objects if obj.kind == "PodDisruptionBudget"]
    for workload in _workloads(rule, objects):
        labels, namespace = pod_labels(workload), _namespace(workload)
        if not any(
            _namespace(budget) == namespace and selects(_spec(budget).get("selector"), labels)
            for budget in budgets
        ):
            yield (
                workload,
                ["metadata", "name"],
                f"no PodDisruptionBudget selects the pods of {workload.kind} {workload.name}",
            )


def _workloads(rule: Rule, objects: Sequence[OutputObject]) -> list[OutputObject]:
    """The objects of the rule's kinds that make pods of their own (not an InferenceService
    in ModelMesh mode, whose model the runtime's shared pods serve)."""
    kinds = rule.kinds or WORKLOADS
    return [obj for obj in objects if obj.kind in kinds and not obj.shares_pods]


def pod_labels(workload: OutputObject) -> dict[str, Any]:
    """The labels the workload's pods carry."""
    if workload.kind == "InferenceService":
        predictor = _spec(workload).get("predictor")
        extra = predictor.get("labels") if isinstance(predictor, dict) else None
        return {**(extra if isinstance(extra, dict) else {}), KSERVE_POD_LABEL: workload.name}
    if workload.kind == "Pod":
        metadata = workload.data.get("metadata")
        return _labels(metadata)
    template = _spec(workload).get("template")
    return _labels(template.get("metadata") if isinstance(template, dict) else None)


def _labels(metadata: Any) -> dict[str, Any]:
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return labels if isinstance(labels, dict) else {}


def selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against pod labels;
    an empty selector selects every pod, a missing or malformed one none."""
    if not isinstance(selector, dict):
        return False
    wanted = selector.get("matchLabels") or {}
    if not isinstance(wanted, dict) or any(labels.get(k) != v for k, v in wanted.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    return isinstance(expressions, list) and all(_matches(e, labels) for e in expressions)


def _matches(expression: Any, labels: Mapping[str, Any]) -> bool:
    if not isinstance(expression, dict):
        return False
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def policy_types(policy: OutputObject) -> list[str]:
    """What a NetworkPolicy restricts: its policyTypes, or by default Ingress, plus Egress
    when it has egress rules (the API server's defaulting)."""
    spec = _spec(policy)
    given = spec.get("policyTypes")
    if isinstance(given, list):
        return [kind for kind in given if isinstance(kind, str)]
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def _spec(obj: OutputObject) -> dict[str, Any]:
    spec = obj.data.get("spec")
    return spec if isinstance(spec, dict) else {}


def _namespace(obj: OutputObject) -> Any:
    metadata = obj.data.get("metadata")
    return metadata.get("namespace") if isinstance(metadata, dict) else None


OUTPUT_CHECKS: dict[str, OutputCheck] = {
    "serving_probes": serving_probes,
    "workload_network_policy": workload_network_policy,
    "workload_disruption_budget": workload_disruption_budget,
}

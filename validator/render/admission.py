"""rendered/ENV/_admission/: the output rules CEL can express, as ValidatingAdmissionPolicies
and their bindings, so that the cluster refuses what `modelgate render` refuses, whoever
applies it (a hand edit with kubectl, a controller) and without a webhook to run.

One policy per rule (check/policy/cel.py translates its `when` and `require`), the same in
every environment, and one binding per environment it applies to: for that environment's
namespaces (policy parameter renderedNamespaces), Deny where the rule is an error there,
Warn and Audit where it is a warning, Audit where it is information. A valid waiver excludes
the objects its spec renders in the environment from the binding by kind and name; an
expired one is left out, so the daily render (.github/workflows/admission-expiry.yml) ends
it. docs/admission.md lists the rules that stay checks of CI alone and why.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import paths
from ..check.policy import cel, placement, waivers
from ..check.policy.rules import Policy, Rule
from ..diagnostics import Severity
from . import view
from .sync import ADMISSION, RENDERED_DIR

if TYPE_CHECKING:
    from . import Renderer, Rendering

POLICY_TEMPLATE = "_k8s/admission-policy.yaml.j2"
BINDING_TEMPLATE = "_k8s/admission-binding.yaml.j2"
TEMPLATES = (POLICY_TEMPLATE, BINDING_TEMPLATE)
NAME_PREFIX = "modelgate-"
# Argo CD's objects live in its own namespace, which no environment's binding covers
ARGOCD_KINDS = ("ApplicationSet", "AppProject")
ACTIONS = {
    Severity.ERROR: ["Deny"],
    Severity.WARNING: ["Warn", "Audit"],
    Severity.INFO: ["Audit"],
}
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # every Namespace carries its own name
ANY = ["*"]

RenderInto = Callable[..., None]


@dataclass(frozen=True)
class Compiled:
    """What the policy's output rules make at the door: the rules compiled, and why each of
    the others is not."""

    rules: list[cel.CompiledRule]
    not_compiled: dict[str, str]  # rule id -> reason


def compile_policy(policy: Policy) -> Compiled:
    rendered_kinds = tuple(policy.parameters.get("renderedKinds") or ())
    outside = (*ARGOCD_KINDS, *sorted(placement.CLUSTER_SCOPED))
    compiled, reasons = [], {}
    for rule in policy.output_rules:
        try:
            compiled.append(cel.compile_rule(rule, rendered_kinds, outside))
        except cel.Untranslatable as reason:
            reasons[rule.id] = str(reason)
    return Compiled(compiled, reasons)


def render(
    result: Rendering, renderer: Renderer, environment: str, render_into: RenderInto
) -> None:
    """rendered/ENV/_admission/: a policy and a binding for each compiled rule in force in
    `environment` (`render_into` is the render stage's: read back, checked, judged)."""
    if renderer.output_policy is None:
        return
    policy = renderer.output_policy.policy
    namespaces = sorted(placement.environment_namespaces(policy.parameters, environment))
    exclusions = _waived(result, renderer.root, policy, environment)
    folder = PurePosixPath(RENDERED_DIR, environment, ADMISSION)
    for compiled in compile_policy(policy).rules:
        severity = compiled.rule.severity_for([environment])
        if severity is None:
            continue
        name = policy_name(compiled.rule)
        context = {"a": policy_view(compiled, name)}
        render_into(result, None, renderer, POLICY_TEMPLATE, context, folder / f"{name}.yaml")
        binding = binding_view(
            compiled, name, environment, namespaces, severity, exclusions.get(compiled.rule.id)
        )
        output = folder / f"{name}-binding.yaml"
        render_into(result, None, renderer, BINDING_TEMPLATE, {"a": binding}, output)


def policy_name(rule: Rule) -> str:
    return NAME_PREFIX + rule.id.lower()


def policy_view(compiled: cel.CompiledRule, name: str) -> dict[str, Any]:
    expression = compiled.expression
    variables = [
        {"name": variable, "expression": text}
        for variable, text in cel.variables().items()
        if f"variables.{variable}" in expression
    ]
    rule = compiled.rule
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [_resources(compiled.kinds, ["CREATE", "UPDATE"])]},
        **({"variables": variables} if variables else {}),
        "validations": [
            {
                "expression": expression,
                "message": f"{rule.id} {rule.title} (modelgate policy; {rule.remediation})",
                "reason": "Invalid",
            }
        ],
    }
    return {"name": name, "rule": rule.id, "spec": spec}


def binding_view(
    compiled: cel.CompiledRule,
    name: str,
    environment: str,
    namespaces: list[str],
    severity: Severity,
    excluded: dict[str, list[str]] | None,
) -> dict[str, Any]:
    """The policy bound to the environment's namespaces; `excluded` maps each kind to the
    names of the objects waivers exempt."""
    match: dict[str, Any] = {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": NAMESPACE_LABEL, "operator": "In", "values": namespaces},
            ]
        }
    }
    exclusions = [
        {**_resources([kind], ANY), "resourceNames": names}
        for kind, names in sorted((excluded or {}).items())
        if kind in compiled.kinds
    ]
    if exclusions:
        match["excludeResourceRules"] = exclusions
    spec = {
        "policyName": name,
        "validationActions": ACTIONS[severity],
        "matchResources": match,
    }
    return {
        "name": f"{name}-{environment}",
        "rule": compiled.rule.id,
        "environment": environment,
        "spec": spec,
    }


def _resources(kinds: Iterable[str], operations: list[str]) -> dict[str, Any]:
    """Every API group and version: the expressions name the kinds themselves."""
    return {
        "apiGroups": ANY,
        "apiVersions": ANY,
        "operations": operations,
        "resources": sorted({view.plural(kind) for kind in kinds}),
    }


def _waived(
    result: Rendering, root: Path, policy: Policy, environment: str
) -> dict[str, dict[str, list[str]]]:
    """rule id -> kind -> names of the objects the valid waivers of compiled rules exempt
    in `environment`: those its spec renders there. An expired waiver exempts nothing."""
    found, _ = waivers.load_waivers(root)
    approvers = policy.parameters.get("waiverApprovers", [])
    today = dt.date.today()
    valid = [
        waiver
        for waiver in found
        if waiver.rule in policy.output_rule_ids()
        and waivers.valid(waiver, approvers, today, policy.parameters.get("maxWaiverDays"))
    ]
    if not valid:
        return {}
    objects = _objects_by_spec(result, root, environment, {waiver.spec for waiver in valid})
    exempt: dict[str, dict[str, list[str]]] = {}
    for waiver in valid:
        for kind, name in objects.get(waiver.spec, ()):
            names = exempt.setdefault(waiver.rule, {}).setdefault(kind, [])
            if name not in names:
                names.append(name)
    return {rule: {k: sorted(v) for k, v in kinds.items()} for rule, kinds in exempt.items()}


def _objects_by_spec(
    result: Rendering, root: Path, environment: str, specs: set[str]
) -> dict[str, list[tuple[str, str]]]:
    """(kind, name) of each object the specs render into rendered/ENV/NAME/ (a file render
    --check found unchanged is read from rendered/)."""
    from ..check import load

    found: dict[str, list[tuple[str, str]]] = {}
    for item in result.files:
        parts = item.path.parts
        if len(parts) != 4 or parts[1] != environment or parts[2] not in specs:
            continue
        content = item.content
        if item.same:
            content = paths.read_bytes(Path(os.path.join(root, item.path)), root).decode()
        document, _ = load.load_text(content, str(item.path))
        data = document.data if document is not None else None
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            continue
        kind, name = data.get("kind"), data["metadata"].get("name")
        if isinstance(kind, str) and isinstance(name, str):
            found.setdefault(parts[2], []).append((kind, name))
    return found

"""Output rules: the policy's second pass, over what rendering makes of the specs.

A spec can be spotless and its output still not be: templates and templates/values.yaml come
from pull requests too. Every rendered object (Kubernetes manifests, custom resources, compose
files, Argo CD ApplicationSets; rendered.py) is checked against the policy's `outputRules`,
each looking at its `subject`, with the rule's schema or its named check (output_checks.py).
Plain data in, plain findings out: the render stage places them in the files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ...diagnostics import Severity
from . import failure_detail
from .cluster_checks import NAMED_CHECKS
from .rendered import JsonPath, OutputContext, OutputObject, subjects
from .rules import Policy, Rule


@dataclass(frozen=True)
class OutputFinding:
    object: OutputObject
    path: JsonPath  # inside the object's data
    rule: Rule
    severity: Severity
    message: str


def evaluate(
    objects: Sequence[OutputObject],
    policy: Policy,
    context: OutputContext,
    environments: Sequence[str],
) -> list[OutputFinding]:
    """Every output rule on a group of objects rendered together (one spec in one
    environment, one spec's compose file, one ApplicationSet), whose severity is the
    strictest over `environments`."""
    findings = []
    for rule in policy.output_rules:
        severity = rule.severity_for(list(environments))
        if severity is None:
            continue
        for obj, path, message in rule_findings(rule, objects, context):
            findings.append(OutputFinding(obj, path, rule, severity, message))
    return findings


def rule_findings(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[tuple[OutputObject, JsonPath, str]]:
    if rule.check:
        yield from NAMED_CHECKS[rule.check](rule, objects, context)
        return
    for obj in objects:
        for base, subject in subjects(rule, obj):
            if not rule.applies(subject) or rule.satisfied(subject):
                continue
            for failure in rule.require_validator.iter_errors(subject):
                path = [*base, *failure.absolute_path]
                yield obj, path, f"{rule.title} ({failure_detail(path, failure)})"

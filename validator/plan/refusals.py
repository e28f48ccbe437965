"""The change rules of the policy (`changeRules`, check/policy/change_checks.py) applied to a
plan: each finding at the line of the spec that makes the delta."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..check.load import Document
from ..check.policy.rules import OTHER_ENVIRONMENTS, Policy, Rule
from ..diagnostics import Diagnostic
from .model import DELETED, EndpointPlan, Plan

REVIEWED_FIELDS = ("visibility", "auth", "tls")


@dataclass
class Context:
    plan: Plan
    policy: Policy
    documents: dict[str, Document]  # the change's specs by name (REF's for a deleted one)
    approvers: set[str] = field(default_factory=set)
    # a team's hourly cost in an environment at max replicas, over all its endpoints
    team_cost: Callable[[str, str], float] = lambda team, env: 0.0


def judge(context: Context) -> list[Diagnostic]:
    """Every change rule's findings, one per place and rule."""
    found: dict[tuple, Diagnostic] = {}
    for rule in context.policy.change_rules:
        for finding in CHECKS[rule.check](rule, context):  # type: ignore[index]
            found.setdefault((finding.path, finding.line, finding.col, finding.rule), finding)
    return sorted(found.values(), key=Diagnostic.sort_key)


def _per_environment(parameter: Any, environment: str) -> Any:
    if not isinstance(parameter, dict):
        return None
    return parameter.get(environment, parameter.get(OTHER_ENVIRONMENTS))


def _finding(
    rule: Rule, context: Context, endpoint: EndpointPlan, where: list, message: str
) -> Iterator[Diagnostic]:
    severity = rule.severity_for([endpoint.environment])
    if severity is None:
        return
    document = context.documents.get(endpoint.name)
    line, col = document.locate(where) if document is not None else (0, 0)
    yield Diagnostic(endpoint.spec, line, col, rule.id, severity, message, rule.remediation)


def _gpus(endpoint: EndpointPlan) -> tuple[int, int]:
    """GPUs at max replicas (REF's, the change's)."""
    change = next((c for c in endpoint.section("capacity") if c.field == "totalAtMax.gpus"), None)
    now = endpoint.facts.get("capacity.totalAtMax.gpus") or 0
    if endpoint.status == DELETED:
        return now, 0
    return ((change.before or 0) if change else now), now


def gpus_added(rule: Rule, context: Context) -> Iterator[Diagnostic]:
    limits = context.policy.parameters.get("maxGpusAddedPerChange")
    by_environment: dict[str, list[tuple[EndpointPlan, int]]] = {}
    for endpoint in context.plan.changed:
        before, after = _gpus(endpoint)
        by_environment.setdefault(endpoint.environment, []).append((endpoint, after - before))
    for environment, deltas in sorted(by_environment.items()):
        limit = _per_environment(limits, environment)
        added = sum(delta for _, delta in deltas)
        if limit is None or added <= limit:
            continue
        for endpoint, delta in deltas:
            if delta > 0:
                message = (
                    f"this change adds {added} GPU(s) to {environment} at max replicas "
                    f"({delta} by {endpoint.name}); at most {limit} may be added in one change"
                )
                yield from _finding(rule, context, endpoint, ["spec", "resources", "gpu"], message)


def exposure_reviewed(rule: Rule, context: Context) -> Iterator[Diagnostic]:
    reviewers = set(context.policy.parameters.get("securityReviewers") or [])
    if context.approvers & reviewers:
        return
    for endpoint in context.plan.changed:
        if endpoint.status == DELETED:
            continue
        for change in endpoint.section("exposure"):
            if change.field not in REVIEWED_FIELDS or change.before is None:
                continue
            who = ", ".join(sorted(reviewers)) or "nobody (the parameter is empty)"
            message = (
                f"{endpoint.name}'s {change.field} changes from {change.before} to "
                f"{change.after} in {endpoint.environment} without the approval of a security "
                f"reviewer ({who})"
            )
            where = ["spec", "endpoint", change.field]
            yield from _finding(rule, context, endpoint, where, message)


def within_budget(rule: Rule, context: Context) -> Iterator[Diagnostic]:
    budgets = context.policy.parameters.get("budgets") or {}
    for endpoint in context.plan.changed:
        budget = _per_environment(budgets.get(endpoint.team or ""), endpoint.environment)
        if budget is None or endpoint.status == DELETED or endpoint.cost_after is None:
            continue
        before = endpoint.cost_before.at_max if endpoint.cost_before else 0.0
        if (endpoint.cost_after.at_max or 0.0) <= (before or 0.0):
            continue  # a change that lowers or keeps a cost is never the one refused
        total = context.team_cost(endpoint.team or "", endpoint.environment)
        if total > budget:
            currency = context.plan.currency
            message = (
                f"team {endpoint.team}'s endpoints in {endpoint.environment} cost "
                f"{total:.2f} {currency} an hour at max replicas with this change, over its "
                f"budget of {budget} {currency}"
            )
            where = ["spec", "scaling", "maxReplicas"]
            yield from _finding(rule, context, endpoint, where, message)


CHECKS: dict[str, Callable[[Rule, Context], Iterator[Diagnostic]]] = {
    "gpus_added": gpus_added,
    "exposure_reviewed": exposure_reviewed,
    "within_budget": within_budget,
}

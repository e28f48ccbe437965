"""Security and compliance policies: evaluate every rule of the policy on a set of specs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...diagnostics import Diagnostic, Severity
from ..load import Document, Key
from ..schema import dotted, failure_path
from . import waivers
from .change_checks import CHANGE_CHECKS
from .checks import CHECKS, REPOSITORY_CHECKS, SPEC_CHECKS, Context
from .cluster_checks import NAMED_CHECKS
from .rules import Policy, Rule, read_policy

__all__ = [
    "Policy", "Rule", "apply_output_waivers", "evaluate", "evaluate_rule", "load_policy",
    "waivable",
]  # fmt: skip


def load_policy(root: Path) -> tuple[Policy, list[Diagnostic]]:
    """Every policy set in policies/ (waivers.yaml aside), applied parents first, its rules'
    checks among the built-in ones."""
    return read_policy(
        root, spec_checks=CHECKS, output_checks=NAMED_CHECKS, change_checks=CHANGE_CHECKS
    )


def evaluate(
    documents: Sequence[Document],
    policy: Policy,
    root: Path,
    environment: str | None = None,
    today: dt.date | None = None,
    peers: Sequence[Document] = (),
    complete: bool = True,
) -> list[Diagnostic]:
    """Findings of every rule on every document, with waivers applied.

    `peers` only take part in cross-file rules; `complete` says the documents are every spec
    of the repository, so that a waiver naming none of them is stale."""
    findings = [d for doc in documents for d in evaluate_spec(doc, policy, root, environment)]
    findings += evaluate_cross_file(documents, policy, root, environment, peers)
    return apply_waivers(findings, documents, policy, root, complete, today)


def evaluate_spec(
    document: Document, policy: Policy, root: Path, environment: str | None = None
) -> list[Diagnostic]:
    """The rules that look at one spec alone (all but the cross-file ones)."""
    context = _context(root, policy, document, environment)
    findings = []
    for rule in policy.rules:
        if rule.check in REPOSITORY_CHECKS:
            continue
        severity = _severity(rule, document, environment)
        if severity is not None:
            for path, message in _spec_findings(rule, document, context):
                findings.append(_finding(rule, document, severity, path, message))
    return findings


def evaluate_cross_file(
    documents: Sequence[Document],
    policy: Policy,
    root: Path,
    environment: str | None = None,
    peers: Sequence[Document] = (),
) -> list[Diagnostic]:
    return [
        finding
        for rule in policy.rules
        if rule.check in REPOSITORY_CHECKS
        for finding in evaluate_rule(rule, documents, policy, root, environment, peers)
    ]


def apply_waivers(
    findings: list[Diagnostic],
    documents: Sequence[Document],
    policy: Policy,
    root: Path,
    complete: bool = True,
    today: dt.date | None = None,
    every_name: set[str] | None = None,
    known_specs: set[str] | None = None,
) -> list[Diagnostic]:
    """Findings marked where a waiver accepts them, with the waivers' own findings. Unless
    `complete` (the documents are every spec), only the waivers of these documents are
    applied; given `every_name` (every spec's name), the others are still judged valid or
    not, and a waiver naming no spec at all is an error. `known_specs` (every spec's name
    in a complete run) has a waiver of none of them found wrong; None: not judged."""
    found_waivers, problems = waivers.load_waivers(root)
    names = {doc.path: doc.data["metadata"]["name"] for doc in documents}
    known = every_name if every_name is not None else known_specs
    # waivers of output rules are applied (and found stale) where the output is judged; the
    # spec they name is judged here, with the others
    outputs = policy.output_rule_ids()
    problems = problems + [
        problem
        for waiver in found_waivers
        if waiver.rule in outputs and (problem := waivers.misnamed(waiver, None, known))
    ]
    found_waivers = [w for w in found_waivers if w.rule not in outputs]
    if not complete:
        checked = set(names.values())
        unapplied = [w for w in found_waivers if w.spec not in checked]
        found_waivers = [w for w in found_waivers if w.spec in checked]
        if every_name is not None:
            found_waivers += [w for w in unapplied if w.spec not in every_name]
            unapplied = [w for w in unapplied if w.spec in every_name]
            problems = problems + _judge(unapplied, policy, today)
    return problems + _apply(findings, names, found_waivers, policy, today, specs=known)


def _judge(found: list[waivers.Waiver], policy: Policy, today: dt.date | None) -> list[Diagnostic]:
    """The waivers' own findings (what they name, expired, too long, not approved), applying
    none of them."""
    return _apply([], {}, found, policy, today, stale=False)


def apply_output_waivers(
    findings: list[Diagnostic],
    names: dict[str, str],
    policy: Policy,
    root: Path,
    complete: bool = True,
    today: dt.date | None = None,
) -> list[Diagnostic]:
    """Output findings marked where a waiver of their rule for their spec accepts them.
    `names` maps each rendered file to the name of the spec it was rendered from; unless
    `complete` (every spec rendered for every environment) no waiver is called stale. The
    waivers file's own problems are validation's to report."""
    found_waivers, _ = waivers.load_waivers(root)
    outputs = policy.output_rule_ids()
    found_waivers = [w for w in found_waivers if w.rule in outputs]
    result = _apply(findings, names, found_waivers, policy, today)
    if complete:
        return result
    return [d for d in result if d.rule != waivers.WAIVER_STALE]


def waivable(policy: Policy) -> set[str]:
    """The rule ids a waiver may name: the policy's rules, for specs and for output."""
    return {rule.id for rule in policy.every_rule()}


def _apply(
    findings: list[Diagnostic],
    names: dict[str, str],
    found_waivers: list[waivers.Waiver],
    policy: Policy,
    today: dt.date | None,
    stale: bool = True,
    specs: set[str] | None = None,
) -> list[Diagnostic]:
    approvers = policy.parameters.get("waiverApprovers", [])
    max_days = policy.parameters.get("maxWaiverDays")
    applied = waivers.apply(
        findings,
        names,
        found_waivers,
        approvers,
        today or dt.date.today(),
        max_days,
        waivable(policy),
        specs,
    )
    return applied if stale else [d for d in applied if d.rule != waivers.WAIVER_STALE]


def evaluate_rule(
    rule: Rule,
    documents: Sequence[Document],
    policy: Policy,
    root: Path,
    environment: str | None = None,
    peers: Sequence[Document] = (),
) -> list[Diagnostic]:
    applicable = []
    checked = list(documents)
    if peers and rule.check in REPOSITORY_CHECKS:
        # the order a full run sees them in: the later of two specs gets the finding
        checked = sorted([*checked, *peers], key=lambda doc: doc.path)
    mine = {id(doc) for doc in documents}
    for document in checked:
        severity = _severity(rule, document, environment)
        if severity is not None:
            applicable.append((document, severity))
    findings: list[Diagnostic] = []
    if rule.check in REPOSITORY_CHECKS:
        severities = {id(doc): severity for doc, severity in applicable}
        for document, path, message in REPOSITORY_CHECKS[rule.check](
            [doc for doc, _ in applicable], Context(root, policy.parameters)
        ):
            if id(document) in mine:
                findings.append(_finding(rule, document, severities[id(document)], path, message))
        return findings
    for document, severity in applicable:
        context = _context(root, policy, document, environment)
        for path, message in _spec_findings(rule, document, context):
            findings.append(_finding(rule, document, severity, path, message))
    return findings


def _context(root: Path, policy: Policy, document: Document, environment: str | None) -> Context:
    """What a check sees of the repository and the policy, and the environments the spec is
    judged for: the one validated, else every environment it deploys to."""
    environments = [environment] if environment else document.data["spec"]["environments"]
    return Context(root, policy.parameters, tuple(environments))


def _severity(rule: Rule, document: Document, environment: str | None) -> Severity | None:
    """The rule's severity for this spec, or None when the rule does not apply to it."""
    environments = [environment] if environment else document.data["spec"]["environments"]
    severity = rule.severity_for(environments)
    if severity is None or not rule.applies(document.data):
        return None
    return severity


def _spec_findings(rule: Rule, document: Document, context: Context) -> Iterator[tuple[list, str]]:
    if rule.check:
        yield from SPEC_CHECKS[rule.check](document, context)
        return
    if rule.satisfied(document.data):
        return
    for failure in rule.require_validator.iter_errors(document.data):
        path = failure_path(failure)
        yield path, f"{rule.title} ({failure_detail(path, failure)})"


def failure_detail(path: list[Any], failure: Any) -> str:
    if failure.validator == "required":
        # jsonschema reports each missing property on its own: name the one this is about
        missing = [
            name
            for name in failure.validator_value
            if name not in failure.instance
            and failure.message == f"{name!r} is a required property"
        ] or [name for name in failure.validator_value if name not in failure.instance]
        return f"{dotted([*path, missing[0]]) if missing else dotted(path)} is missing"
    if path and isinstance(path[-1], Key):
        return f"{dotted(path[:-1])} has the key {path[-1]!s}"
    if isinstance(failure.instance, (dict, list)):
        return f"{dotted(path)}: {failure.message}"
    return f"{dotted(path)} is {failure.instance!r}"


def _finding(
    rule: Rule, document: Document, severity: Severity, path: list, message: str
) -> Diagnostic:
    line, col = document.locate(path)
    return Diagnostic(document.path, line, col, rule.id, severity, message, rule.remediation)

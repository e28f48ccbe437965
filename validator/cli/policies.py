"""`modelgate policies list | explain ID`: the rules in force, and why each exists."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    policies = commands.add_parser("policies", help="list and explain policy rules")
    actions = policies.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every rule with its severity")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(handler=run_list)
    explain = actions.add_parser("explain", help="rationale, remediation and examples")
    explain.add_argument("rule_id", metavar="ID")
    explain.add_argument("--format", choices=["text", "json"], default="text")
    explain.set_defaults(handler=run_explain)


def _policy(args: argparse.Namespace, output: Output):  # -> policy.Policy | None
    from ..check import policy

    rules, problems = policy.load_policy(root_of(args))
    if problems:
        output.diagnostics(problems)
        return None
    return rules


def run_list(args: argparse.Namespace, output: Output) -> int:
    rules = _policy(args, output)
    if rules is None:
        return EXIT_FINDINGS
    if args.format == "json":
        described = [_described(rule) for rule in rules.every_rule()]
        output.block(json.dumps(described, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    output.line(f"{'ID':<12} {'SEVERITY':<8} {'ENVIRONMENTS':<16} {'JUDGES':<32} TITLE")
    for rule in rules.every_rule():
        scope = ",".join(rule.environments) if rule.environments else "all"
        overrides = "".join(
            f" {env}={level}" for env, level in sorted(rule.severity_by_environment.items())
        )
        judged = _judged(rule)
        output.line(
            f"{rule.id:<12} {rule.severity:<8} env:{scope:<12} {judged:<32} {rule.title}{overrides}"
        )
    output.line(
        f"{len(rules.rules)} spec rules, {len(rules.output_rules)} output rules, "
        f"{len(rules.change_rules)} change rules"
    )
    return EXIT_OK


def run_explain(args: argparse.Namespace, output: Output) -> int:
    from ..check.policy import explain

    rules = _policy(args, output)
    if rules is None:
        return EXIT_FINDINGS
    rule = rules.rule(args.rule_id)
    if rule is None:
        output.error(f"no rule {args.rule_id}; `modelgate policies list` shows them")
        return EXIT_USAGE
    if args.format == "json":
        described = {
            **_described(rule),
            "rationale": rule.rationale,
            "remediation": rule.remediation,
            "passes": [example.patch for example in rule.passing],
            "fails": [{"at": example.at, "patch": example.patch} for example in rule.failing],
        }
        output.block(json.dumps(described, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    output.block(explain.explain(rule))
    return EXIT_OK


def _judged(rule: Any) -> str:
    """What a rule looks at: a spec, rendered output (and its subjects) or a change (plan)."""
    if rule.change:
        return "change (modelgate plan)"
    return f"output:{','.join(rule.subjects)}" if rule.output else "spec"


def _described(rule: Any) -> dict[str, Any]:
    """What `policies list --format json` says of a rule."""
    return {
        "id": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "severityByEnvironment": dict(sorted(rule.severity_by_environment.items())),
        "environments": list(rule.environments) if rule.environments else None,
        "judges": "change" if rule.change else "output" if rule.output else "spec",
        "subjects": list(rule.subjects),
        "source": rule.source,
    }

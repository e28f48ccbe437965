"""`modelgate policies list | explain ID`: the rules in force, and why each exists."""

from __future__ import annotations

import argparse
from typing import Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    policies = commands.add_parser("policies", help="list and explain policy rules")
    actions = policies.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every rule with its severity")
    listing.set_defaults(handler=run_list)
    explain = actions.add_parser("explain", help="rationale, remediation and examples")
    explain.add_argument("rule_id", metavar="ID")
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
    for rule in rules.every_rule():
        scope = ",".join(rule.environments) if rule.environments else "all"
        overrides = "".join(
            f" {env}={level}" for env, level in sorted(rule.severity_by_environment.items())
        )
        judged = f"output:{','.join(rule.subjects)}" if rule.output else "spec"
        output.line(
            f"{rule.id:<12} {rule.severity:<8} env:{scope:<12} {judged:<32} {rule.title}{overrides}"
        )
    output.line(f"{len(rules.rules)} spec rules, {len(rules.output_rules)} output rules")
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
    output.block(explain.explain(rule))
    return EXIT_OK

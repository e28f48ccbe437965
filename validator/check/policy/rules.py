"""Policy sets as data: loading policies/*.yaml, resolving `extends`, and compiling rules.

A rule is either JSON Schema (`when` selects the specs it applies to, `require` is what they
must satisfy) or names a built-in Python `check` for what JSON Schema cannot say. Rules
reference the set's parameters with `{$param: NAME}` (or `{$param: NAME, as: prefixPattern}`
to turn a list of prefixes into a regular expression), so allow-lists live in data.

`rules` judge specs; `outputRules` judge what rendering makes of them (check/policy/output.py):
the same fields, plus the `subject` they look at (each object, pod spec, container or compose
service) and the object `kinds` they are about. `changeRules` judge a change, what `modelgate
plan` finds between REF and the work tree: each names a built-in `check` (change_checks.py).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ... import paths
from ...diagnostics import Diagnostic, RuleInfo, Severity, error
from ...engines import policy_parameter
from .. import compiled, load, schema

POLICY_DIR = "policies"
WAIVERS_FILE = "waivers.yaml"
POLICY_SCHEMA = "policyset.v1alpha1"
POLICY_INVALID = "MG701"
BUILTIN_SET = "modelgate"  # policies/modelgate.yaml: the set weakenings are measured against
MAX_WAIVER_DAYS = "maxWaiverDays"

OFF = "off"
OTHER_ENVIRONMENTS = "*"  # stands for every environment no set names (names cannot hold '*')


@dataclass(frozen=True)
class Example:
    patch: dict[str, Any]  # JSON merge patch on the reference spec
    at: str = ""  # dotted path a failing example's finding must point at


@dataclass
class Rule:
    id: str
    title: str
    severity: str
    rationale: str
    remediation: str
    source: str  # policies/file.yaml:LINE, where the rule is defined
    environments: tuple[str, ...] | None = None
    severity_by_environment: dict[str, str] = field(default_factory=dict)
    when: Any = None
    require: Any = None
    check: str | None = None
    passing: list[Example] = field(default_factory=list)
    failing: list[Example] = field(default_factory=list)
    # output rules only: what `when` and `require` look at, and the kinds of objects
    subjects: tuple[str, ...] = ()
    kinds: tuple[str, ...] | None = None
    change: bool = False  # a change rule: it judges a plan's deltas (changeRules)
    # what the rule judges, as written (before parameters are substituted)
    definition: dict[str, Any] = field(default_factory=dict)
    changed_at: str = ""  # policies/FILE.yaml:LINE of the last override, if any
    _severities: dict[tuple[str, ...], Severity | None] = field(default_factory=dict, repr=False)

    def severity_for(self, environments: list[str]) -> Severity | None:
        """The strictest severity over the spec's environments the rule applies to."""
        key = tuple(environments)
        if key not in self._severities:
            self._severities[key] = self._strictest(environments)
        return self._severities[key]

    def _strictest(self, environments: list[str]) -> Severity | None:
        applicable = [
            e for e in environments if self.environments is None or e in self.environments
        ]
        if not applicable:
            return None
        levels = [self.severity_by_environment.get(e, self.severity) for e in applicable]
        active = [Severity(level) for level in levels if level != OFF]
        return max(active, key=lambda s: s.rank) if active else None

    @property
    def output(self) -> bool:
        """A rule on the rendered output rather than on the spec."""
        return bool(self.subjects)

    def info(self) -> RuleInfo:
        tags = (
            ("security",) if "-SEC-" in self.id else ("compliance",) if "-CMP-" in self.id else ()
        )
        level = Severity.ERROR if self.severity == OFF else Severity(self.severity)
        return RuleInfo(self.id, self.title, self.rationale, self.remediation, level, tags)

    def applies(self, data: Any) -> bool:
        return self.when is None or compiled.compiled(self.when)(data)

    def satisfied(self, data: Any) -> bool:
        return self.require is None or compiled.compiled(self.require)(data)

    def compile(self) -> None:
        """Compile `when` and `require` now (or read them from the cache), so that worker
        processes forked after this inherit them rather than each compile its own."""
        for part in (self.when, self.require):
            if part is not None:
                compiled.compiled(part)

    @cached_property
    def require_validator(self) -> Any:
        """The slow, detailed validator: only for specs that failed `satisfied`."""
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.require)


@dataclass(frozen=True)
class Weakening:
    """Where the policy in force is laxer than the built-in set modelgate ships (its floor):
    a rule removed, changed, turned off or downgraded, a parameter loosened, a policy file or
    the built-in set missing. Reported, never a finding."""

    kind: str  # rule | parameter | set
    name: str
    change: str  # e.g. "off", "error -> warning in production", "adds 'x'", "90 -> 3650"
    where: str = ""  # policies/FILE.yaml:LINE that made the change, where one did

    def __str__(self) -> str:
        return f"{self.name} {self.change}" + (f" at {self.where}" if self.where else "")


@dataclass
class Policy:
    rules: list[Rule] = field(default_factory=list)
    output_rules: list[Rule] = field(default_factory=list)
    change_rules: list[Rule] = field(default_factory=list)
    # `engines` defaults to every engine record with the formats it serves; a set may narrow it
    parameters: dict[str, Any] = field(default_factory=lambda: {"engines": policy_parameter()})
    # whether policies/ holds the built-in set; None: it does not
    builtin_rules: dict[str, Rule] | None = None
    # policies/FILE.yaml:LINE of the set that gave each parameter its value
    parameter_sources: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    builtin_document: load.Document | None = None  # policies/modelgate.yaml, as loaded

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.every_rule() if rule.id == rule_id), None)

    def every_rule(self) -> list[Rule]:
        """Spec rules, output rules, then change rules: ids are unique across them."""
        return [*self.rules, *self.output_rules, *self.change_rules]

    def output_rule_ids(self) -> set[str]:
        return {rule.id for rule in self.output_rules}

    def weakened(self, base: str | None = None) -> list[Weakening]:
        """What the policy in force loosened against the floor (weakening.py); `base`, a git
        revision, also names the policy files it had that are gone."""
        from . import weakening

        return weakening.against_floor(self, base)

    def remember_builtin(self, document: load.Document) -> None:
        """The built-in set's own rules, as the repository declares them (copies, which the
        sets that extend it leave alone), and its text: when it is the floor's, they are
        the floor's too, without reading that file again."""
        defined_here = f"{document.path}:"
        self.builtin_rules = {
            rule.id: dataclasses.replace(rule, _severities={})
            for rule in self.every_rule()
            if rule.source.startswith(defined_here)
        }
        self.builtin_document = document


def read_policy(
    root: Path,
    spec_checks: Collection[str],
    output_checks: Collection[str],
    change_checks: Collection[str] = (),
) -> tuple[Policy, list[Diagnostic]]:
    """Every policy set in policies/ (waivers.yaml aside), applied parents first; a rule's
    `check` must be one of the checks named (policy/__init__.py passes the built-in ones)."""
    directory = root / POLICY_DIR
    if not directory.is_dir():  # a repository without policies: weakened() asks git
        return Policy(builtin_rules={}, root=root), []
    documents, problems = [], []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == WAIVERS_FILE:
            continue
        link = paths.link_finding(path, root)
        if link:
            problems.append(link)
            continue
        document, found = load.load_file(path, f"{POLICY_DIR}/{path.name}")
        found = found or schema.check(document, POLICY_SCHEMA)
        problems.extend(found)
        if document is not None and not found:
            documents.append(document)
    ordered, order_problems = _ordered(documents)
    problems.extend(order_problems)
    policy = Policy(root=root)
    for document in ordered:
        problems.extend(_apply(policy, document))
    problems.extend(_compile_rules(policy, spec_checks, output_checks, change_checks))
    return policy, problems


def _ordered(documents: list[load.Document]) -> tuple[list[load.Document], list[Diagnostic]]:
    """Topological order by `extends`: every set after the sets it extends."""
    by_name: dict[str, load.Document] = {}
    problems = []
    for document in documents:
        name = document.data["metadata"]["name"]
        if name in by_name:
            problems.append(
                _at(
                    document,
                    ["metadata", "name"],
                    f"policy set '{name}' is also defined in {by_name[name].path}",
                    "give every policy set its own name",
                )
            )
            continue
        by_name[name] = document
    ordered: list[load.Document] = []
    state: dict[str, str] = {}

    def visit(name: str, document: load.Document) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            problems.append(
                _at(
                    document,
                    ["extends"],
                    f"policy set '{name}' extends itself",
                    "remove the cycle in `extends`",
                )
            )
            return
        state[name] = "visiting"
        complete = True
        for index, parent in enumerate(document.data.get("extends", [])):
            if parent not in by_name:
                problems.append(
                    _at(
                        document,
                        ["extends", index],
                        f"unknown policy set '{parent}'",
                        f"known sets: {', '.join(sorted(by_name))}",
                    )
                )
                complete = False
                continue
            visit(parent, by_name[parent])
        state[name] = "done"
        if complete:  # a set whose parents are missing would only add confusing findings
            ordered.append(document)

    for name, document in sorted(by_name.items()):
        visit(name, document)
    return ordered, problems


def _apply(policy: Policy, document: load.Document) -> list[Diagnostic]:
    data = document.data
    problems = _parameter_problems(document)
    given = data.get("parameters", {})
    policy.parameters.update({name: value for name, value in given.items() if value is not None})
    policy.parameter_sources.update(
        (name, _where(document, ["parameters", name])) for name in given
    )
    sections = (
        ("rules", policy.rules),
        ("outputRules", policy.output_rules),
        ("changeRules", policy.change_rules),
    )
    for section, into in sections:
        for index, raw in enumerate(data.get(section, [])):
            if policy.rule(raw["id"]):
                problems.append(
                    _at(
                        document,
                        [section, index, "id"],
                        f"rule {raw['id']} is already defined",
                        "change its severity with `overrides` instead of redefining it",
                    )
                )
                continue
            into.append(_rule(document, section, index, raw))
    for rule_id, change in data.get("overrides", {}).items():
        rule = policy.rule(rule_id)
        if rule is None:
            problems.append(
                _at(
                    document,
                    ["overrides", rule_id],
                    f"override of unknown rule {rule_id}",
                    "`modelgate policies list` shows the rule ids",
                )
            )
            continue
        rule.severity = change.get("severity", rule.severity)
        rule.severity_by_environment = {
            **rule.severity_by_environment,
            **change.get("severityByEnvironment", {}),
        }
        if "environments" in change:
            rule.environments = tuple(change["environments"])
        rule.changed_at = _where(document, ["overrides", rule_id])
        rule._severities.clear()
    if data["metadata"]["name"] == BUILTIN_SET:
        policy.remember_builtin(document)
    return problems


def _parameter_problems(document: load.Document) -> list[Diagnostic]:
    """A parameter cannot be removed (rules would lose their allow-lists), and the waiver
    limit is a number of days."""
    parameters = document.data.get("parameters", {})
    problems = [
        document.finding(
            ["parameters", name],
            POLICY_INVALID,
            f"parameter {name} has no value",
            "give it a value; a set cannot remove a parameter of the sets it extends",
            key=True,
        )
        for name, value in parameters.items()
        if value is None
    ]
    limit = parameters.get(MAX_WAIVER_DAYS)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        problems.append(
            _at(
                document,
                ["parameters", MAX_WAIVER_DAYS],
                f"parameter {MAX_WAIVER_DAYS} must be a number of days, not {limit!r}",
                f"write e.g. `{MAX_WAIVER_DAYS}: 90`",
            )
        )
    return problems


def _rule(document: load.Document, section: str, index: int, raw: dict[str, Any]) -> Rule:
    line, _ = document.locate([section, index])
    examples = raw["examples"]
    subject = raw.get("subject", ())
    return Rule(
        id=raw["id"],
        title=raw["title"],
        severity=raw["severity"],
        rationale=raw["rationale"],
        remediation=raw["remediation"],
        source=f"{document.path}:{line}",
        environments=tuple(raw["environments"]) if "environments" in raw else None,
        severity_by_environment=dict(raw.get("severityByEnvironment", {})),
        when=raw.get("when"),
        require=raw.get("require"),
        check=raw.get("check"),
        passing=[Example(patch) for patch in examples["pass"]],
        failing=[Example(case["patch"], case["at"]) for case in examples["fail"]],
        subjects=(subject,) if isinstance(subject, str) else tuple(subject),
        kinds=tuple(raw["kinds"]) if "kinds" in raw else None,
        change=section == CHANGE_RULES,
        definition=copy.deepcopy({key: raw[key] for key in DEFINITION if key in raw}),
    )


CHANGE_RULES = "changeRules"
DEFINITION = ("when", "require", "check", "subject", "kinds")  # what a rule judges


def _where(document: load.Document, path: list[str | int]) -> str:
    line, _ = document.locate(path)
    return f"{document.path}:{line}"


def _compile_rules(
    policy: Policy,
    spec_checks: Collection[str],
    output_checks: Collection[str],
    change_checks: Collection[str],
) -> list[Diagnostic]:
    problems = []
    for rule in policy.every_rule():
        known = change_checks if rule.change else output_checks if rule.output else spec_checks
        path, line = rule.source.rsplit(":", 1)
        try:
            rule.when = substitute(rule.when, policy.parameters)
            rule.require = substitute(rule.require, policy.parameters)
        except KeyError as exc:
            problems.append(
                error(
                    path,
                    int(line),
                    1,
                    POLICY_INVALID,
                    f"rule {rule.id} uses unknown parameter {exc.args[0]}",
                    "define it under `parameters` in a policy set",
                )
            )
        if rule.check and rule.check not in known:
            problems.append(
                error(
                    path,
                    int(line),
                    1,
                    POLICY_INVALID,
                    f"rule {rule.id} names unknown check '{rule.check}'",
                    f"built-in checks: {', '.join(sorted(known))}",
                )
            )
    return problems


def substitute(node: Any, parameters: dict[str, Any]) -> Any:
    """Replace every `{$param: NAME}` (optionally `as: prefixPattern`) with its value."""
    if isinstance(node, list):
        return [substitute(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    if "$param" in node:
        value = parameters[node["$param"]]
        if node.get("as") == "prefixPattern":
            if not value:  # an empty allow-list allows nothing
                return "^(?!)"
            return "^(" + "|".join(re.escape(prefix) for prefix in value) + ")"
        return value
    return {key: substitute(value, parameters) for key, value in node.items()}


def _at(document: load.Document, path: list[str | int], message: str, hint: str) -> Diagnostic:
    return document.finding(path, POLICY_INVALID, message, hint)

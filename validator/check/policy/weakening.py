"""How far the policy in force is below the floor: the built-in set modelgate ships inside
its package (this folder's modelgate.yaml), which a repository's policies/ may tighten but
whose every loosening is reported.

Generic over the policy data: a rule removed, its definition changed, or its severity relaxed
in some environment; a parameter compared as its kind (the floor's `parameterKinds`) says:
`allow`, a list compared as a set, an added item loosens it (`allow-or-any`: the same, and
leaving it out allows anything); `deny`, a list whose removed items loosen it; `max`, a number
a higher value loosens; a list of values, strictest first; a mapping of kinds per key (`*`: a
key not named, whose value stands for every key a mapping does not name). A parameter the floor
gives no kind is loosened by any change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ...engines import policy_parameter
from ...git import run_git
from .. import load
from .rules import (
    BUILTIN_SET,
    OFF,
    OTHER_ENVIRONMENTS,
    POLICY_DIR,
    WAIVERS_FILE,
    Policy,
    Rule,
    Weakening,
    _rule,
)

FLOOR = Path(__file__).with_name(f"{BUILTIN_SET}.yaml")
ALLOW, ALLOW_OR_ANY, DENY, MAX = "allow", "allow-or-any", "deny", "max"
ANY_KEY = "*"


@dataclass(frozen=True)
class Floor:
    """The built-in set as modelgate ships it: its rules by id, parameters and their kinds."""

    rules: dict[str, Rule]
    parameters: dict[str, Any]
    kinds: dict[str, Any]


def _floor_of(data: dict[str, Any], rules: dict[str, Rule]) -> Floor:
    parameters = {"engines": policy_parameter(), **data.get("parameters", {})}
    return Floor(rules, parameters, data.get("parameterKinds", {}))


@cache
def _shipped() -> tuple[str, Floor]:
    """The packaged file's text and, read from it, the floor (a few hundred ms: only when
    the repository's copy differs from it)."""
    document, problems = load.load_file(FLOOR, f"{BUILTIN_SET} (built in)")
    if document is None or problems:  # the package itself is damaged: an internal fault
        raise RuntimeError(f"the built-in policy set {FLOOR} does not load: {problems}")
    rules = {
        raw["id"]: _rule(document, section, index, raw)
        for section in ("rules", "outputRules", "changeRules")
        for index, raw in enumerate(document.data.get(section, []))
    }
    return document.text, _floor_of(document.data, rules)


def floor(policy: Policy) -> Floor:
    """The floor; from the repository's built-in set as loaded when its text is the floor's."""
    declared = policy.builtin_document
    if declared is not None and policy.builtin_rules and declared.text == _shipped_text():
        return _floor_of(declared.data, policy.builtin_rules)
    return _shipped()[1]


@cache
def _shipped_text() -> str:
    return FLOOR.read_text(encoding="utf-8").removeprefix("\ufeff")


def against_floor(policy: Policy, base: str | None = None) -> list[Weakening]:
    """Every loosening of `policy` against the floor, rules in the floor's order, then
    parameters, then the policy files `base` (a git revision) had that are gone."""
    found = list(_removed_files(policy.root, base)) if _gone(policy, base) else []
    if policy.builtin_rules is None:
        return [Weakening("set", BUILTIN_SET, "missing"), *found]
    if not policy.builtin_rules and not policy.every_rule():  # no policies/ at all
        return found
    shipped = floor(policy)
    for base_rule in shipped.rules.values():
        found.extend(_rule_weakenings(base_rule, policy.rule(base_rule.id)))
    for name, before in shipped.parameters.items():
        where = policy.parameter_sources.get(name, "")
        kind = shipped.kinds.get(name)
        after = policy.parameters.get(name)
        found.extend(
            Weakening("parameter", dotted, change, where)
            for dotted, change in _loosened(name, kind, before, after)
        )
    return found


def _gone(policy: Policy, base: str | None) -> bool:
    """Whether to ask git for removed policy files: against a base, always; otherwise (the
    pre-commit hook) only when the built-in set is missing, as it is with policies/."""
    return policy.root is not None and (base is not None or not policy.builtin_rules)


def _removed_files(root: Path, base: str | None) -> Iterator[Weakening]:
    """Policy sets git has at `base` (HEAD when not given) that the work tree lacks (fewer
    waivers or Checkov exceptions are stricter, not laxer)."""
    listed = run_git(root, "ls-tree", "--name-only", "-z", base or "HEAD", "--", f"{POLICY_DIR}/")
    if listed is None or listed.returncode != 0:  # no git, no such revision: nothing known
        return
    for name in sorted(filter(None, listed.stdout.split("\0"))):
        if name == f"{POLICY_DIR}/{WAIVERS_FILE}":
            continue
        if name.endswith((".yaml", ".yml")) and not (root / name).exists():
            yield Weakening("set", name, f"removed since {base or 'HEAD'}")


def _rule_weakenings(base: Rule, now: Rule | None) -> Iterator[Weakening]:
    if now is None:
        yield Weakening("rule", base.id, "removed")
        return
    if now.definition != base.definition:
        yield Weakening("rule", base.id, "changed", now.source)
    relaxed = _severity_relaxed(base, now)
    if relaxed:
        yield Weakening("rule", base.id, relaxed, now.changed_at or now.source)


def _loosened(name: str, kind: Any, before: Any, after: Any) -> Iterator[tuple[str, str]]:
    """(dotted parameter, change) for each way `after` is laxer than `before`."""
    if isinstance(kind, dict):
        yield from _mapping_loosened(name, kind, before, after)
    elif kind in (ALLOW, ALLOW_OR_ANY, DENY):
        yield from _list_loosened(name, kind, before, after)
    elif kind == MAX:
        if after is None and before is not None:
            yield name, "removed"
        elif not _number(after) or (_number(before) and after > before):
            yield name, f"{before} -> {after}"
    elif isinstance(kind, list):
        if after is not None and after not in kind:
            yield name, f"{before} -> {after!r}"
        elif _order(kind, after) > _order(kind, before):
            yield name, f"{before} -> {after if after is not None else 'removed'}"
    elif after != before:
        yield name, "changed" if after is not None else "removed"


def _mapping_loosened(
    name: str, kind: dict[str, Any], before: Any, after: Any
) -> Iterator[tuple[str, str]]:
    if after is not None and not isinstance(after, dict):
        yield name, "changed"
        return
    before, after = before or {}, after or {}
    for key in sorted({*before, *after}, key=str):
        sub = kind.get(key, kind.get(ANY_KEY))
        then = before.get(key, before.get(ANY_KEY))
        now = after.get(key, after.get(ANY_KEY))
        if now is None and isinstance(sub, dict):
            now = _absent(sub)
        yield from _loosened(f"{name}.{key}", sub, then, now)


def _absent(kind: dict[str, Any]) -> dict[str, Any]:
    """What a mapping's entry left out stands for: its lists allow nothing (an engine
    left out of `engines` is not allowed) and restrict nothing."""
    return {key: [] for key, sub in kind.items() if sub == ALLOW_OR_ANY}


def _list_loosened(name: str, kind: str, before: Any, after: Any) -> Iterator[tuple[str, str]]:
    if after is None:
        if kind == ALLOW_OR_ANY and before is not None:
            yield name, "removed (anything allowed)"
        elif kind == DENY and before:
            yield name, "removed"
        return
    if not isinstance(after, list):
        yield name, "changed"
        return
    if kind == ALLOW_OR_ANY and before is None:
        return  # it allowed anything
    then, now = set(map(repr, before or [])), set(map(repr, after))
    if kind == DENY and then - now:
        yield name, f"drops {', '.join(sorted(then - now))}"
    if kind != DENY and now - then:
        yield name, f"adds {', '.join(sorted(now - then))}"


def _order(values: list[Any], value: Any) -> int:
    """Where `value` stands among `values`, strictest first; unset is laxest of all."""
    return values.index(value) if value in values else len(values)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- severities ------------------------------------------------------------------------------


def _rank(rule: Rule | None, environment: str) -> int:
    severity = rule.severity_for([environment]) if rule else None
    return severity.rank if severity else 0


def _severity_relaxed(base: Rule, now: Rule) -> str:
    """Where `now` is laxer than `base`: one change per group of environments."""
    named = sorted(
        {
            env
            for rule in (base, now)
            for env in (*(rule.environments or ()), *rule.severity_by_environment)
        }
    )
    everywhere = [*named, OTHER_ENVIRONMENTS]
    applicable = [env for env in everywhere if _rank(base, env)]
    changes: dict[str, list[str]] = {}
    for env in applicable:
        if _rank(now, env) < _rank(base, env):
            changes.setdefault(_change(base, now, env), []).append(env)
    return "; ".join(
        change + _environments(envs, applicable, named) for change, envs in changes.items()
    )


def _change(base: Rule, now: Rule, environment: str) -> str:
    after = now.severity_for([environment])
    if after is None:
        return OFF
    before = base.severity_for([environment])
    return f"{before.value if before else OFF} -> {after.value}"


def _environments(environments: list[str], applicable: list[str], named: list[str]) -> str:
    if environments == applicable:
        return ""
    if OTHER_ENVIRONMENTS in environments:
        spared = [env for env in named if env not in environments]
        return f" in every environment but {', '.join(spared)}"
    return f" in {', '.join(environments)}"

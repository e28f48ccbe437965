"""Output rules as CEL: the JSON Schema subset their `when` and `require` use, translated into
the expressions a ValidatingAdmissionPolicy evaluates (render/admission.py writes them).

The API server evaluates a policy's expressions on the object as it would store it, each
value typed loosely (as JSON): a mapping is a CEL map, a list a list. Translation follows
JSON Schema's meaning: a keyword about an object's properties says nothing of an absent one,
`items` and `contains` look at lists. The keywords translated are those the built-in rules
use; any other makes the rule untranslatable, with the keyword named, and it stays a check of
CI alone (docs/admission.md).

Where each rule looks comes from the same data the Python evaluation reads (rendered.py):
the kinds' pod specs, container lists and runtime containers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ...engines.kserve import RUNTIME_CONTAINERS
from .rendered import (
    COMPOSE,
    CONTAINER_HOLDERS,
    CONTAINER_LISTS,
    DEPLOYMENT_MODE,
    POD_SPECS,
    SHARED_PODS,
)
from .rules import Rule

OBJECT = "object"  # the variable a ValidatingAdmissionPolicy names the incoming object
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# CEL's reserved words: a field so named cannot be selected with a dot
RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "false", "for", "function", "if", "import"}
    | {"in", "let", "loop", "namespace", "null", "package", "return", "true", "var", "void"}
    | {"while"}
)
# the keywords that only hold definitions or describe, judging nothing
INERT = frozenset({"definitions", "$defs", "$schema", "$id", "title", "description", "$comment"})
ON_CLUSTERS = "object", "podSpec", "container"  # compose services run on no cluster


class Untranslatable(Exception):
    """The rule says something this translation does not express in CEL; the reason."""


@dataclass(frozen=True)
class CompiledRule:
    """One output rule as CEL: the kinds it looks at and the expression every object of
    them must satisfy (over `object` and the VARIABLES)."""

    rule: Rule
    kinds: tuple[str, ...]
    expression: str


# The things a rule's subject names, as ValidatingAdmissionPolicy variables computed once per
# object: `podSpecs` (each pod spec the object's kind holds, none for an InferenceService in
# ModelMesh mode) and `containers` (each container, init and ephemeral container of them,
# an InferenceService component's runtime container, a ServingRuntime's containers).
PODS, CONTAINERS = "podSpecs", "containers"
SUBJECT_VARIABLES = {"podSpec": PODS, "container": CONTAINERS}


def compile_rule(
    rule: Rule, rendered_kinds: tuple[str, ...], outside: tuple[str, ...] = ()
) -> CompiledRule:
    """The rule as one CEL expression, or Untranslatable. `rendered_kinds` (the policy
    parameter renderedKinds) are what a rule that names no kinds looks at; kinds `outside`
    the namespaces a binding covers are left out."""
    if rule.check:
        raise Untranslatable(f"a Python check ({rule.check})")
    subjects = [subject for subject in rule.subjects if subject in ON_CLUSTERS]
    if not subjects:
        raise Untranslatable("it judges compose files, which run on no cluster")
    if rule.require is None:
        raise Untranslatable("it requires nothing")
    kinds = tuple(k for k in _kinds(rule, subjects, rendered_kinds) if k not in outside)
    if not kinds:
        raise Untranslatable(
            "its kinds live outside the environments' namespaces (Argo CD's objects)"
        )
    definitions = {
        **(rule.require.get("definitions", {}) if isinstance(rule.require, dict) else {}),
        **(rule.when.get("definitions", {}) if isinstance(rule.when, dict) else {}),
    }
    check = _Translator(definitions).judge(rule.when, rule.require)
    judged = []
    for subject in subjects:
        if subject == "object":
            judged.append(check.replace(THIS, OBJECT))
        else:
            listed = f"variables.{SUBJECT_VARIABLES[subject]}"
            judged.append(f"{listed}.all(item, {check.replace(THIS, 'item')})")
    return CompiledRule(
        rule, kinds, f"(!({OBJECT}.kind in {literal(list(kinds))}) || {_all(judged)})"
    )


def _kinds(rule: Rule, subjects: list[str], rendered_kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The kinds the rule judges on a cluster: its own, or else those rendered that hold
    what its subjects look at."""
    candidates = rule.kinds if rule.kinds is not None else rendered_kinds
    holding: set[str] = set()
    for subject in subjects:
        if subject == "object":
            holding |= set(candidates)
        elif subject == "podSpec":
            holding |= set(POD_SPECS)
        else:
            holding |= {*POD_SPECS, *CONTAINER_HOLDERS}
    return tuple(sorted(kind for kind in candidates if kind in holding and kind != COMPOSE))


@cache
def variables() -> dict[str, str]:
    """The CEL of the subject variables, from where rendered.py finds pod specs and
    containers, for every kind."""
    pods, containers = [], []
    for kind, paths in POD_SPECS.items():
        for path in map(list, paths):
            pods.append(_if_present(kind, path, f"[{select(OBJECT, path)}]"))
            containers.extend(
                _if_present(kind, [*path, key], select(OBJECT, [*path, key]))
                for key in CONTAINER_LISTS
            )
            if kind == "InferenceService":
                containers.extend(
                    _if_present(kind, [*path, key], f"[{select(OBJECT, [*path, key])}]")
                    for key in RUNTIME_CONTAINERS
                )
    held = [
        _if_present(kind, [*path, key], select(OBJECT, [*path, key]))
        for kind, paths in CONTAINER_HOLDERS.items()
        for path in map(list, paths)
        for key in CONTAINER_LISTS
    ]
    shares = _shares_pods()
    return {
        PODS: f"{shares} ? [] : {' + '.join(pods)}",
        CONTAINERS: f"({shares} ? [] : {' + '.join(containers)}) + {' + '.join(held)}",
    }


def _if_present(kind: str, path: list[str], value: str) -> str:
    """`value` (a list) for an object of `kind` that has `path`, else no item."""
    present = " && ".join(_has(OBJECT, path[: index + 1]) for index in range(len(path)))
    return f"({OBJECT}.kind == {literal(kind)} && {present} ? {value} : [])"


THIS = "\x00this\x00"  # where the subject's value goes in a translated check


def _shares_pods() -> str:
    annotations = select(OBJECT, ["metadata", "annotations"])
    return (
        f"({OBJECT}.kind == 'InferenceService' && {_has(OBJECT, ['metadata', 'annotations'])} && "
        f"{literal(DEPLOYMENT_MODE)} in {annotations} && "
        f"{annotations}[{literal(DEPLOYMENT_MODE)}] == {literal(SHARED_PODS)})"
    )


class _Translator:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.depth = 0

    def judge(self, when: Any, require: Any, value: str = THIS) -> str:
        required = self.schema(require, value)
        if when is None:
            return required
        return f"(!({self.schema(when, value)}) || {required})"

    def schema(self, node: Any, value: str, following: tuple[str, ...] = ()) -> str:
        """Whether `value` satisfies the schema `node`."""
        if node is True or node == {}:
            return "true"
        if node is False:
            return "false"
        if not isinstance(node, dict):
            raise Untranslatable(f"a schema that is not a mapping ({node!r})")
        checks = []
        for keyword, argument in node.items():
            if keyword in INERT:
                continue
            if keyword in ("then", "else"):
                continue  # judged with `if`
            method = getattr(self, "_" + keyword.lstrip("$"), None)
            if method is None:
                raise Untranslatable(f"the JSON Schema keyword {keyword}")
            checks.append(method(argument, value, node, following))
        return _all(checks)

    def _ref(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        name = str(argument).removeprefix("#/definitions/")
        if name not in self.definitions or not str(argument).startswith("#/definitions/"):
            raise Untranslatable(f"the reference {argument}")
        if name in following:
            raise Untranslatable(f"the recursive reference {argument} (CEL has no recursion)")
        return self.schema(self.definitions[name], value, (*following, name))

    def _type(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        cel_types = {"string": "string", "integer": "int", "boolean": "bool"}
        if argument == "number":
            return f"(type({value}) == int || type({value}) == double)"
        if argument not in cel_types:
            raise Untranslatable(f"type {argument!r}")
        return f"type({value}) == {cel_types[argument]}"

    def _const(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"{value} == {literal(argument)}"

    def _enum(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"{value} in {literal(list(argument))}"

    def _pattern(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"(type({value}) != string || {value}.matches({literal(argument)}))"

    def _minimum(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"{value} >= {literal(argument)}"

    def _maximum(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"{value} <= {literal(argument)}"

    def _maxItems(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"size({value}) <= {literal(argument)}"

    def _minItems(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"size({value}) >= {literal(argument)}"

    def _required(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return _all([_has(value, [name]) for name in argument])

    def _properties(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return _all(
            [
                f"(!{_has(value, [name])} || {self.schema(sub, select(value, [name]), following)})"
                for name, sub in argument.items()
            ]
        )

    def _patternProperties(
        self, argument: Any, value: str, node: Any, following: tuple[str, ...]
    ) -> str:
        key, _ = self._names()
        checks = [
            f"(!{key}.matches({literal(pattern)}) || "
            f"{self.schema(sub, f'{value}[{key}]', following)})"
            for pattern, sub in argument.items()
        ]
        return f"{value}.all({key}, {_all(checks)})"

    def _propertyNames(
        self, argument: Any, value: str, node: Any, following: tuple[str, ...]
    ) -> str:
        key, _ = self._names()
        return f"{value}.all({key}, {self.schema(argument, key, following)})"

    def _items(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        _, item = self._names()
        return f"{value}.all({item}, {self.schema(argument, item, following)})"

    def _contains(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        _, item = self._names()
        return f"{value}.exists({item}, {self.schema(argument, item, following)})"

    def _not(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return f"!({self.schema(argument, value, following)})"

    def _anyOf(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return "(" + " || ".join(self.schema(sub, value, following) for sub in argument) + ")"

    def _allOf(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        return _all([self.schema(sub, value, following) for sub in argument])

    def _if(self, argument: Any, value: str, node: Any, following: tuple[str, ...]) -> str:
        condition = self.schema(argument, value, following)
        then = self.schema(node.get("then", True), value, following)
        otherwise = self.schema(node.get("else", True), value, following)
        return f"((!({condition}) || {then}) && ({condition} || {otherwise}))"

    def _names(self) -> tuple[str, str]:
        """Fresh names for a comprehension's variable: nested ones must not shadow."""
        self.depth += 1
        return f"k{self.depth}", f"i{self.depth}"


def select(value: str, path: list[str]) -> str:
    """`value.a.b`, a field whose name is no CEL identifier (a label key) by index."""
    for name in path:
        value = f"{value}.{name}" if _plain(name) else f"{value}[{literal(name)}]"
    return value


def _has(value: str, path: list[str]) -> str:
    """Whether the last field of `path` is present (the ones before it are)."""
    parent, name = select(value, path[:-1]), path[-1]
    return f"has({parent}.{name})" if _plain(name) else f"({literal(name)} in {parent})"


def _plain(name: str) -> bool:
    return bool(IDENTIFIER.fullmatch(name)) and name not in RESERVED


def _all(checks: list[str]) -> str:
    checks = [check for check in checks if check != "true"]
    if not checks:
        return "true"
    return checks[0] if len(checks) == 1 else "(" + " && ".join(checks) + ")"


def literal(value: Any) -> str:
    """A CEL literal for JSON data (strings in JSON's escapes, which CEL reads the same)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise Untranslatable(f"the value {value!r}")

"""spec.compliance.license is an SPDX license expression, parsed and normalised.

`Apache-2.0`, `mit OR apache-2.0`, `GPL-2.0-only WITH Classpath-exception-2.0`: ids from the
SPDX license list (https://spdx.org/licenses/, in any letter case; deprecated ids become
their successors, `GPL-2.0+` is `GPL-2.0-or-later`) joined by AND, OR, WITH and parentheses,
or `LicenseRef-NAME` for a licence of the organisation's own. Anything else is MG243: free text
cannot be checked against a policy's allow or deny list, nor shown the same way twice.

A licence expression is met by any one of its choices: `MIT OR (Apache-2.0 AND CC-BY-NC-4.0)`
can be met with MIT alone. The policy's licence lists judge the choices (policy check
`license_allowed`). Parsing loads license-expression's SPDX list (60 ms); the result for a
given text is cached, so that `validate` in a pre-commit hook loads it once per new text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .. import cache
from ..diagnostics import Diagnostic
from .load import Document

NOT_SPDX = "MG243"
WHERE = ["spec", "compliance", "license"]
MAX_CHOICES = 64  # an expression with more ways to meet it than this is not a licence
_OWN = re.compile(r"(?i)(documentref-[A-Za-z0-9.-]+:)?licenseref-(?P<name>[A-Za-z0-9.-]+)")
HINT = (
    "write an SPDX license expression: ids from https://spdx.org/licenses/ joined by AND, OR "
    "and WITH, e.g. `Apache-2.0` or `MIT OR Apache-2.0`; a licence of your own is "
    "LicenseRef-NAME, e.g. LicenseRef-Proprietary"
)


@dataclass(frozen=True)
class License:
    """A parsed licence expression: normalised, and every choice of licence ids that meets it
    (a choice lists the licence of each `X WITH EXCEPTION` without its exception)."""

    expression: str
    choices: tuple[tuple[str, ...], ...]

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted({license_id for choice in self.choices for license_id in choice}))


class NotSpdx(ValueError):
    """The text is not an SPDX license expression; the message says why."""


def check(document: Document) -> list[Diagnostic]:
    """MG243 when spec.compliance.license is not an SPDX license expression."""
    text = document.data["spec"].get("compliance", {}).get("license")
    if text is None:
        return []
    try:
        parse(text)
    except NotSpdx as exc:
        return [document.finding(WHERE, NOT_SPDX, f"license {text!r} {exc}", HINT)]
    return []


def parse(text: str) -> License:
    """The licence expression `text`, normalised; NotSpdx when it is none."""
    parsed = _parsed(text)
    if isinstance(parsed, str):
        raise NotSpdx(parsed)
    return parsed


@lru_cache(maxsize=1024)
def _parsed(text: str) -> License | str:
    """parse()'s answer, the reason as text where it is no expression: many specs name one
    licence, so it is looked up once a process."""
    key = f"{_library_version()}|{text}"
    cached = cache.load("license", key)
    if cached is not None:
        found = _from_json(cached)
        if isinstance(found, (License, str)):
            return found
    try:
        parsed: License | str = _parse(text)
    except NotSpdx as exc:
        parsed = str(exc)
    cache.store("license", key, _to_json(parsed))
    return parsed


def normalised(text: str) -> str:
    """The normalised expression, or the text as written when it is not one (for display)."""
    try:
        return parse(text).expression
    except NotSpdx:
        return text


def _parse(text: str) -> License:
    from license_expression import ExpressionError, ExpressionParseError

    licensing = _licensing()
    try:
        parsed = licensing.parse(text, validate=False, strict=True)
    except (ExpressionError, ExpressionParseError) as exc:
        raise NotSpdx(f"is not an SPDX license expression ({exc})") from None
    if parsed is None:
        raise NotSpdx("is empty")
    unknown = [key for key in licensing.unknown_license_keys(parsed) if not _OWN.fullmatch(key)]
    if unknown:
        raise NotSpdx(f"names {', '.join(map(repr, unknown))}, which is not an SPDX license id")
    choices = _choices(parsed)
    return License(_rendered(parsed), tuple(sorted(set(choices))))


def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _library_version() -> str:
    return cache.installed_version("license-expression")


def _kind(node: Any) -> str:
    """'and', 'or', 'with' or 'symbol'."""
    operator = getattr(node, "operator", None)
    if operator is not None:
        return operator.strip().lower()
    return "with" if hasattr(node, "exception_symbol") else "symbol"


def _key(symbol: Any) -> str:
    key = str(symbol.key)
    own = _OWN.fullmatch(key)
    if own is None:
        return key
    document = own.group(1) or ""
    if document:
        document = "DocumentRef-" + document[len("DocumentRef-") :]
    return f"{document}LicenseRef-{own['name']}"


def _choices(node: Any) -> list[tuple[str, ...]]:
    """Every set of licence ids that meets the expression (its disjunctive normal form)."""
    kind = _kind(node)
    if kind == "symbol":
        return [(_key(node),)]
    if kind == "with":
        return [(_key(node.license_symbol),)]
    parts = [_choices(argument) for argument in node.args]
    if kind == "or":
        return [choice for part in parts for choice in part]
    combined: list[tuple[str, ...]] = [()]
    for part in parts:
        combined = [tuple(sorted({*left, *right})) for left in combined for right in part]
        if len(combined) > MAX_CHOICES:
            raise NotSpdx(f"has more than {MAX_CHOICES} ways to be met")
    return combined


def _rendered(node: Any, parent: str = "") -> str:
    kind = _kind(node)
    if kind == "symbol":
        return _key(node)
    if kind == "with":
        return f"{_key(node.license_symbol)} WITH {_key(node.exception_symbol)}"
    text = f" {kind.upper()} ".join(_rendered(argument, kind) for argument in node.args)
    return f"({text})" if parent and parent != kind else text


def _to_json(parsed: License | str) -> bytes:
    if isinstance(parsed, str):
        return json.dumps({"error": parsed}).encode()
    return json.dumps({"expression": parsed.expression, "choices": parsed.choices}).encode()


def _from_json(payload: bytes) -> License | str | None:
    try:
        data = json.loads(payload)
        if "error" in data:
            return str(data["error"])
        choices = tuple(tuple(str(i) for i in choice) for choice in data["choices"])
        return License(str(data["expression"]), choices)
    except (ValueError, KeyError, TypeError):
        return None

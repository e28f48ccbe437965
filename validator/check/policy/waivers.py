"""Waivers: approved, time-limited exceptions kept in policies/waivers.yaml.

A waiver accepts the findings of one rule on one spec. It never lives in the spec that
benefits from it, so CODEOWNERS review every exception. An expired waiver, one that expires
further ahead than the policy parameter maxWaiverDays allows, or one signed by somebody who may
not approve waivers is an error (and waives nothing), and so is one that names a rule no
policy set defines, a code no waiver can accept (a digest that does not match, an engine that
cannot do what the spec asks) or a spec that does not exist: each reported at the field that
is wrong. A waiver that matches no finding is stale: a warning, so that `--strict` keeps the
file tidy. docs/policies.md describes the format.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ... import paths
from ...codes import BUILTIN_RULES
from ...diagnostics import Diagnostic, Severity, error
from .. import load, schema
from .rules import POLICY_DIR, WAIVERS_FILE

WAIVERS_SCHEMA = "waivers.v1alpha1"
WAIVER_EXPIRED = "MG801"
WAIVER_STALE = "MG802"
WAIVER_UNAPPROVED = "MG803"
WAIVER_TOO_LONG = "MG804"
WAIVER_UNKNOWN_RULE = "MG805"
WAIVER_UNKNOWN_SPEC = "MG806"
WAIVER_NOT_WAIVABLE = "MG807"
NAMED_GLOBALS = "MG-SEC-160"  # its waivers name the globals they allow, nothing more


@dataclass(frozen=True)
class Waiver:
    rule: str
    spec: str
    justification: str
    approver: str
    expires: str
    path: str
    line: int
    col: int
    expires_at: tuple[int, int] = (0, 0)  # line and column of `expires`
    rule_at: tuple[int, int] = (0, 0)
    spec_at: tuple[int, int] = (0, 0)
    # MG-SEC-160 only: the names a pickle of the spec may import besides the allow-list
    globals: tuple[str, ...] = ()

    def accepts(self, finding: Diagnostic, spec: str | None) -> bool:
        """The finding is of this waiver's rule and spec, and, for a waiver that names
        globals, about one of them."""
        if finding.rule != self.rule or spec != self.spec:
            return False
        return not self.globals or any(_names(finding.message, name) for name in self.globals)


def load_waivers(root: Path) -> tuple[list[Waiver], list[Diagnostic]]:
    path = root / POLICY_DIR / WAIVERS_FILE
    link = paths.link_finding(path, root)
    if link:
        return [], [link]
    if not path.is_file():
        return [], []
    document, problems = load.load_file(path, f"{POLICY_DIR}/{WAIVERS_FILE}")
    if document is None:
        return [], problems
    problems = schema.check(document, WAIVERS_SCHEMA)
    if problems:
        return [], problems
    waivers = []
    for index, entry in enumerate(document.data["waivers"]):
        line, col = document.locate(["waivers", index])
        field_at = {
            f"{name}_at": document.locate(["waivers", index, name])
            for name in ("expires", "rule", "spec")
        }
        entry = {**entry, "globals": tuple(entry.get("globals", ()))}
        waivers.append(Waiver(**entry, path=document.path, line=line, col=col, **field_at))
    return waivers, []


def apply(
    findings: list[Diagnostic],
    spec_names: dict[str, str],
    waivers: list[Waiver],
    approvers: list[str],
    today: dt.date,
    max_days: int | None = None,
    waivable: Collection[str] | None = None,
    specs: Collection[str] | None = None,
) -> list[Diagnostic]:
    """Mark findings accepted by a valid waiver; add findings about the waivers themselves.

    `spec_names` maps a spec's path to its metadata.name; `max_days` is how far ahead a
    waiver may expire (None: no limit); `waivable` holds the rule ids a waiver may name and
    `specs` every spec's name (None: not judged).
    """
    result = list(findings)
    for waiver in waivers:
        problem = misnamed(waiver, waivable, specs) or _invalid(waiver, approvers, today, max_days)
        if problem:
            result.append(problem)
            continue
        matched = False
        for index, finding in enumerate(result):
            if waiver.accepts(finding, spec_names.get(finding.path)):
                note = f"waived until {waiver.expires} by {waiver.approver}: {waiver.justification}"
                result[index] = dataclasses.replace(finding, waiver=note)
                matched = True
        if not matched:
            result.append(
                Diagnostic(
                    waiver.path,
                    waiver.line,
                    waiver.col,
                    WAIVER_STALE,
                    Severity.WARNING,
                    f"waiver for {waiver.rule} on {waiver.spec} matches no finding",
                    "the problem is fixed or the spec is gone: delete the waiver",
                )
            )
    return result


def misnamed(
    waiver: Waiver, waivable: Collection[str] | None, specs: Collection[str] | None = None
) -> Diagnostic | None:
    """The waiver's finding when it names a rule no policy set defines, a code no waiver can
    accept, or a spec that does not exist (`waivable` and `specs` None: not judged)."""
    if waivable is not None and waiver.rule not in waivable:
        if waiver.rule in BUILTIN_RULES:
            return error(
                waiver.path,
                *waiver.rule_at,
                WAIVER_NOT_WAIVABLE,
                f"waiver names {waiver.rule} ({BUILTIN_RULES[waiver.rule].title}), a check "
                "no waiver can accept",
                "fix what the finding says and delete the waiver; waivers accept the findings "
                "of policy rules only (`modelgate policies list`)",
            )
        return error(
            waiver.path,
            *waiver.rule_at,
            WAIVER_UNKNOWN_RULE,
            f"waiver names rule {waiver.rule}, which no policy set defines",
            _did_you_mean(waiver.rule, waivable, "`modelgate policies list` shows the rules"),
        )
    if specs is not None and waiver.spec not in specs:
        return error(
            waiver.path,
            *waiver.spec_at,
            WAIVER_UNKNOWN_SPEC,
            f"waiver for {waiver.rule} names spec {waiver.spec}, which does not exist",
            _did_you_mean(
                waiver.spec, specs, "write the metadata.name of a spec in models/, or delete it"
            ),
        )
    return None


def _did_you_mean(written: str, known: Collection[str], otherwise: str) -> str:
    close = difflib.get_close_matches(written, sorted(known), n=1)
    return f"did you mean '{close[0]}'?" if close else otherwise


def _names(message: str, name: str) -> bool:
    """An MG-SEC-160 finding is about `name` (its message says 'imports NAME when')."""
    return f" imports {name} when " in message


def valid(waiver: Waiver, approvers: list[str], today: dt.date, max_days: int | None) -> bool:
    """Whether the waiver accepts findings today: not expired, approved, within the limit."""
    return _invalid(waiver, approvers, today, max_days) is None


def _invalid(
    waiver: Waiver, approvers: list[str], today: dt.date, max_days: int | None
) -> Diagnostic | None:
    if (waiver.rule == NAMED_GLOBALS) != bool(waiver.globals):
        return error(
            waiver.path,
            waiver.line,
            waiver.col,
            WAIVER_UNAPPROVED,
            f"waiver for {waiver.rule} on {waiver.spec} "
            + ("names no globals" if waiver.globals == () else "names globals"),
            f"a waiver of {NAMED_GLOBALS} names the globals it allows (globals: [module.name]); "
            "no other waiver names any: the scan itself is never waived",
        )
    try:
        expires = dt.date.fromisoformat(waiver.expires)
    except ValueError:
        return error(
            waiver.path,
            waiver.line,
            waiver.col,
            WAIVER_EXPIRED,
            f"waiver for {waiver.rule} on {waiver.spec} has an invalid date {waiver.expires}",
            "write the expiry as YYYY-MM-DD",
        )
    if expires < today:
        return error(
            waiver.path,
            waiver.line,
            waiver.col,
            WAIVER_EXPIRED,
            f"waiver for {waiver.rule} on {waiver.spec} expired on {waiver.expires}",
            "fix the finding, or renew the waiver with a fresh approval",
        )
    if max_days is not None and (expires - today).days > max_days:
        return error(
            waiver.path,
            *waiver.expires_at,
            WAIVER_TOO_LONG,
            f"waiver for {waiver.rule} on {waiver.spec} expires on {waiver.expires}, "
            f"more than {max_days} days ahead",
            f"set an expiry at most {max_days} days ahead (policy parameter maxWaiverDays) "
            "and renew the waiver with a fresh approval when it runs out",
        )
    if waiver.approver not in approvers:
        return error(
            waiver.path,
            waiver.line,
            waiver.col,
            WAIVER_UNAPPROVED,
            f"waiver for {waiver.rule} on {waiver.spec} is approved by "
            f"{waiver.approver}, who may not approve waivers",
            f"approvers (policy parameter waiverApprovers): {', '.join(approvers) or 'none'}",
        )
    return None

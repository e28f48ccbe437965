"""Waivers: approved, time-limited exceptions kept in policies/waivers.yaml.

A waiver accepts the findings of one rule on one spec. It never lives in the spec that
benefits from it, so CODEOWNERS review every exception. An expired waiver, one that expires
further ahead than the policy parameter maxWaiverDays allows, or one signed by somebody who may
not approve waivers is an error (and waives nothing); a waiver that matches no finding is
stale: a warning, so that `--strict` keeps the file tidy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ... import paths
from ...diagnostics import Diagnostic, Severity, error
from .. import load, schema
from .rules import POLICY_DIR, WAIVERS_FILE

WAIVERS_SCHEMA = "waivers.v1alpha1"
WAIVER_EXPIRED = "MG801"
WAIVER_STALE = "MG802"
WAIVER_UNAPPROVED = "MG803"
WAIVER_TOO_LONG = "MG804"


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
        expires_at = document.locate(["waivers", index, "expires"])
        waivers.append(
            Waiver(**entry, path=document.path, line=line, col=col, expires_at=expires_at)
        )
    return waivers, []


def apply(
    findings: list[Diagnostic],
    spec_names: dict[str, str],
    waivers: list[Waiver],
    approvers: list[str],
    today: dt.date,
    max_days: int | None = None,
) -> list[Diagnostic]:
    """Mark findings accepted by a valid waiver; add findings about the waivers themselves.

    `spec_names` maps a spec's path to its metadata.name; `max_days` is how far ahead a
    waiver may expire (None: no limit).
    """
    result = list(findings)
    for waiver in waivers:
        problem = _invalid(waiver, approvers, today, max_days)
        if problem:
            result.append(problem)
            continue
        matched = False
        for index, finding in enumerate(result):
            if finding.rule == waiver.rule and spec_names.get(finding.path) == waiver.spec:
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


def _invalid(
    waiver: Waiver, approvers: list[str], today: dt.date, max_days: int | None
) -> Diagnostic | None:
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

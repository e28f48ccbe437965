"""Compiler-style text: `path:line:col: RULE message`, then an indented hint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...diagnostics import Diagnostic, Severity

if TYPE_CHECKING:
    from .. import Report


def format_diagnostic(diagnostic: Diagnostic) -> str:
    where = (
        diagnostic.path
        if diagnostic.line == 0
        else f"{diagnostic.path}:{diagnostic.line}:{diagnostic.col}"
    )
    if diagnostic.waived:
        level = "waived: "
    else:
        level = "" if diagnostic.severity is Severity.ERROR else f"{diagnostic.severity.value}: "
    text = f"{where}: {diagnostic.rule} {level}{diagnostic.message}"
    hint = diagnostic.waiver or diagnostic.hint
    return f"{text}\n    hint: {hint}" if hint else text


def format_report(report: Report) -> str:
    lines = [format_diagnostic(d) for d in report.diagnostics]
    lines.append(summary(report.diagnostics, report.files))
    lines.extend(line for line in [weakened_line(report)] if line)
    return "\n".join(lines) + "\n"


def summary(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    noun = "spec" if len(files) == 1 else "specs"
    open_findings = [d for d in diagnostics if not d.waived]
    waived = len(diagnostics) - len(open_findings)
    tail = f" ({waived} waived)" if waived else ""
    if not open_findings:
        return f"{len(files)} {noun} checked: all valid{tail}."
    counts = {severity: 0 for severity in Severity}
    for diagnostic in open_findings:
        counts[diagnostic.severity] += 1
    parts = [f"{n} {s.value}{'' if n == 1 else 's'}" for s, n in counts.items() if n]
    broken = len({d.path for d in open_findings})
    return f"{len(files)} {noun} checked: {', '.join(parts)} in {broken} file(s){tail}."


def weakened_line(report: Report) -> str:
    """`policy: 2 rules and 1 parameter weakened: MG-SEC-001 off, ...`, or "" for none."""
    if not report.weakened:
        return ""
    counts: dict[str, int] = {}
    for weakening in report.weakened:
        counts[weakening.kind] = counts.get(weakening.kind, 0) + 1
    nouns = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items()]
    listed = ", ".join(str(weakening) for weakening in report.weakened)
    return f"policy: {' and '.join(nouns)} weakened: {listed}"

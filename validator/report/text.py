"""Compiler-style text: `path:line:col: RULE message`, then an indented hint."""

from __future__ import annotations

from collections.abc import Sequence

from ..diagnostics import Diagnostic, Severity


def format_diagnostic(diagnostic: Diagnostic) -> str:
    where = (
        diagnostic.path
        if diagnostic.line == 0
        else (f"{diagnostic.path}:{diagnostic.line}:{diagnostic.col}")
    )
    level = "" if diagnostic.severity is Severity.ERROR else f"{diagnostic.severity.value}: "
    line = f"{where}: {diagnostic.rule} {level}{diagnostic.message}"
    return f"{line}\n    hint: {diagnostic.hint}" if diagnostic.hint else line


def format_report(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    lines = [format_diagnostic(d) for d in diagnostics]
    lines.append(summary(diagnostics, files))
    return "\n".join(lines) + "\n"


def summary(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    counts = {severity: 0 for severity in Severity}
    for diagnostic in diagnostics:
        counts[diagnostic.severity] += 1
    noun = "spec" if len(files) == 1 else "specs"
    if not diagnostics:
        return f"{len(files)} {noun} checked: all valid."
    parts = [f"{n} {s.value}{'' if n == 1 else 's'}" for s, n in counts.items() if n]
    broken = len({d.path for d in diagnostics})
    return f"{len(files)} {noun} checked: {', '.join(parts)} in {broken} file(s)."

"""The one result type every stage returns: a Diagnostic, located at path:line:col."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A finding at a place in a file. Line and column are 1-based; 0 means "the whole file"."""

    path: str
    line: int
    col: int
    rule: str
    severity: Severity
    message: str
    hint: str = ""
    waiver: str = ""  # set when an approved waiver accepts this finding

    @property
    def waived(self) -> bool:
        return bool(self.waiver)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.rule, self.message)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class Refused(Exception):
    """Input a stage cannot go on with, found where returning Diagnostics is not possible
    (a repository-wide file read while setting up); the command reports them, exit 1."""

    def __init__(self, summary: str, diagnostics: list[Diagnostic]) -> None:
        super().__init__(summary)
        self.diagnostics = diagnostics


def error(path: str, line: int, col: int, rule: str, message: str, hint: str = "") -> Diagnostic:
    return Diagnostic(path, line, col, rule, Severity.ERROR, message, hint)


def has_errors(diagnostics: Iterable[Diagnostic], strict: bool = False) -> bool:
    """True when a finding should fail the run: errors always, warnings too when strict."""
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    return any(d.severity in failing and not d.waived for d in diagnostics)


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What reporters say about a rule id (SARIF rule descriptors, JUnit, explain)."""

    id: str
    title: str
    description: str
    help: str
    severity: Severity = Severity.ERROR
    tags: tuple[str, ...] = ()

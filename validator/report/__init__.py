"""One output interface, several formats: each format is a function from a Report to text.

Adding a format is one module here plus one entry in FORMATS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..codes import BUILTIN_RULES
from ..diagnostics import Diagnostic, RuleInfo
from ..secrets import mask


@dataclass(frozen=True)
class Report:
    """Findings about `files` (every file checked, clean ones too) and the rules they cite."""

    diagnostics: Sequence[Diagnostic]
    files: Sequence[str]
    rules: Mapping[str, RuleInfo] = field(default_factory=lambda: dict(BUILTIN_RULES))

    def rule(self, rule_id: str) -> RuleInfo:
        return self.rules.get(rule_id) or RuleInfo(rule_id, rule_id, rule_id, "")


Formatter = Callable[[Report], str]


def _formats() -> dict[str, Formatter]:
    from . import json_format, junit, sarif, text

    return {
        "text": text.format_report,
        "json": json_format.format_report,
        "sarif": sarif.format_report,
        "junit": junit.format_report,
    }


FORMAT_NAMES = ("json", "junit", "sarif", "text")


def format_report(name: str, report: Report) -> str:
    """Secret-looking tokens are masked in every format: findings quote spec values."""
    safe = dataclasses.replace(report, diagnostics=[masked(d) for d in report.diagnostics])
    return _formats()[name](safe)


def masked(diagnostic: Diagnostic) -> Diagnostic:
    return dataclasses.replace(
        diagnostic, message=mask(diagnostic.message), hint=mask(diagnostic.hint)
    )

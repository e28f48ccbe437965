"""Reports of findings in several formats: each format is a function from a Report to text,
one module in formats/ (kubeconform's one file per format), found by its file name.

What commands print goes through output.Output, which masks and escapes every line.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..codes import BUILTIN_RULES
from ..diagnostics import Diagnostic, RuleInfo, Severity
from . import formats

if TYPE_CHECKING:
    from ..check.policy.rules import Weakening


@dataclass(frozen=True)
class Report:
    """Findings about `files` (every file checked, clean ones too) and the rules they cite."""

    diagnostics: Sequence[Diagnostic]
    files: Sequence[str]
    rules: Mapping[str, RuleInfo] = field(default_factory=lambda: dict(BUILTIN_RULES))
    # what the policy sets loosened compared with the built-in set: information, not findings
    weakened: Sequence[Weakening] = ()
    strict: bool = False  # warnings fail the run (validate --strict)

    def failing(self, diagnostic: Diagnostic) -> bool:
        """Whether the finding fails the run, as the command's exit code says."""
        failing = {Severity.ERROR, Severity.WARNING} if self.strict else {Severity.ERROR}
        return diagnostic.severity in failing and not diagnostic.waived

    def rule(self, rule_id: str) -> RuleInfo:
        return self.rules.get(rule_id) or RuleInfo(rule_id, rule_id, rule_id, "")


Formatter = Callable[[Report], str]
# One module per format in formats/, named after it; listed without importing them.
FORMAT_NAMES = tuple(sorted(info.name for info in pkgutil.iter_modules(formats.__path__)))


def formatter(name: str) -> Formatter:
    return importlib.import_module(f"{formats.__name__}.{name}").format_report


def format_report(name: str, report: Report) -> str:
    """Findings quote spec values: in every format, secret-looking tokens are masked and
    control characters escaped, and a message is one line."""
    from .output import one_line, safe_diagnostic

    cleaned = dataclasses.replace(
        report,
        diagnostics=[safe_diagnostic(d) for d in report.diagnostics],
        # environment names in an override are free text from a policy file
        weakened=[dataclasses.replace(w, change=one_line(w.change)) for w in report.weakened],
    )
    return formatter(name)(cleaned)

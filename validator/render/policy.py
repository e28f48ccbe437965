"""The output policy in the render stage: every rendered object is judged by the policy's
outputRules (check/policy/output.py) before anything is written.

Findings name the rendered file at line:col (the strict loader's positions, computed only for
files that have a finding) and the template that produced it, with the template file and line
where the offending key is written when it can be found in the template or what it includes
or extends. Waivers (keyed on spec name and rule id) are applied by the caller, over every
spec's findings at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..check import compiled, load
from ..check.load import Document
from ..check.policy import output, rendered
from ..check.policy.rules import Policy
from ..diagnostics import Diagnostic
from .templates import Templates

OutputObject = rendered.OutputObject


class OutputPolicy:
    """The output rules of one render run, compiled once (before workers fork)."""

    def __init__(
        self,
        policy: Policy,
        values: Mapping[str, Any],
        templates: Templates,
        values_document: Document | None = None,
    ) -> None:
        self.policy = policy
        self.values = values
        self.templates = templates
        self.values_document = values_document

    def preload(self) -> OutputPolicy:
        for rule in self.policy.output_rules:
            for schema in (rule.when, rule.require):
                if schema is not None:
                    compiled.compiled(schema)
        return self

    def check(
        self,
        objects: Sequence[OutputObject],
        texts: Mapping[str, str],
        environments: Sequence[str],
        document: Document | None = None,
    ) -> list[Diagnostic]:
        """Findings of every output rule on objects rendered together (one spec in one
        environment, one compose file, one ApplicationSet); `texts` holds their files."""
        context = rendered.OutputContext(
            self.policy.parameters,
            document.data if document else None,
            self.values,
            self.values_document,
        )
        findings = output.evaluate(objects, self.policy, context, environments)
        located: dict[str, Document | None] = {}
        return [self._diagnostic(finding, texts, located) for finding in findings]

    def _diagnostic(
        self,
        finding: output.OutputFinding,
        texts: Mapping[str, str],
        located: dict[str, Document | None],
    ) -> Diagnostic:
        path = finding.object.path
        if path not in located:
            located[path], _ = load.load_text(texts.get(path, ""), path)
        document = located[path]
        line, col = document.locate(finding.path) if document else (0, 0)
        origin = self._origin(finding.object.template, finding.path)
        return Diagnostic(
            path,
            line,
            col,
            finding.rule.id,
            finding.severity,
            f"{finding.message}; {origin}",
            finding.rule.remediation,
        )

    def _origin(self, template: str, path: list[str | int]) -> str:
        """Which template made the file, and where in it (or what it includes or extends)
        the key the finding is about is written."""
        keys = [part for part in path if isinstance(part, str)]
        where = self.templates.written_at(template, keys) if keys else None
        made = f"rendered by templates/{template}"
        return f"{made} ({keys[-1]} written at {where})" if where else made


def environment_of(path: str, environments: Sequence[str]) -> list[str]:
    """rendered/ENV/NAME/FILE belongs to ENV; a spec's other files (compose) to all of its."""
    parts = path.split("/", 2)
    return [parts[1]] if len(parts) > 2 and parts[1] in environments else list(environments)

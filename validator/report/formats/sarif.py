"""SARIF 2.1.0, as GitHub code scanning reads it: one rule descriptor per rule cited, results
at the spec's line and column, waived findings as external suppressions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...diagnostics import Diagnostic, RuleInfo, Severity

if TYPE_CHECKING:
    from .. import Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SECURITY_SEVERITY = {Severity.ERROR: "8.0", Severity.WARNING: "5.0", Severity.INFO: "2.0"}


def format_report(report: Report) -> str:
    cited = sorted({*report.rules, *(d.rule for d in report.diagnostics)})
    index = {rule_id: position for position, rule_id in enumerate(cited)}
    run = {
        "tool": {
            "driver": {
                "name": "modelgate",
                "informationUri": "https://modelgate.dev",
                "version": _version(),
                "rules": [_descriptor(report.rule(rule_id)) for rule_id in cited],
            }
        },
        "artifacts": [
            {"location": {"uri": path, "uriBaseId": "%SRCROOT%"}} for path in report.files
        ],
        "results": [_result(d, index[d.rule]) for d in report.diagnostics],
        "columnKind": "unicodeCodePoints",
    }
    if report.weakened:  # GitHub keeps run properties with the analysis
        run["properties"] = {"policyWeakened": [str(w) for w in report.weakened]}
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _descriptor(rule: RuleInfo) -> dict[str, Any]:
    properties: dict[str, Any] = {"tags": list(rule.tags)}
    if "security" in rule.tags:
        properties["security-severity"] = SECURITY_SEVERITY[rule.severity]
    return {
        "id": rule.id,
        "name": "".join(
            word.capitalize() for word in rule.title.replace("-", " ").split() if word.isalnum()
        )
        or rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": rule.help or rule.title},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": properties,
    }


def _result(diagnostic: Diagnostic, rule_index: int) -> dict[str, Any]:
    location: dict[str, Any] = {
        "artifactLocation": {"uri": diagnostic.path, "uriBaseId": "%SRCROOT%"}
    }
    if diagnostic.line > 0:
        location["region"] = {"startLine": diagnostic.line, "startColumn": max(diagnostic.col, 1)}
    text = (
        f"{diagnostic.message}\nhint: {diagnostic.hint}" if diagnostic.hint else diagnostic.message
    )
    result: dict[str, Any] = {
        "ruleId": diagnostic.rule,
        "ruleIndex": rule_index,
        "level": LEVELS[diagnostic.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": location}],
    }
    if diagnostic.waived:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": diagnostic.waiver}
        ]
    return result


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelgate")
    except PackageNotFoundError:
        return "0.0.0"

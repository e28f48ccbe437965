"""Machine-readable findings: one JSON object with a summary and every diagnostic."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from ...diagnostics import Severity

if TYPE_CHECKING:
    from .. import Report


def format_report(report: Report) -> str:
    open_findings = [d for d in report.diagnostics if not d.waived]
    counts = {s.value: sum(d.severity is s for d in open_findings) for s in Severity}
    document = {
        "files": list(report.files),
        "summary": {
            "files": len(report.files),
            **counts,
            "waived": len(report.diagnostics) - len(open_findings),
        },
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }
    if report.weakened:
        document["policy"] = {"weakened": [dataclasses.asdict(w) for w in report.weakened]}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

"""Machine-readable findings: one JSON object with a summary and every diagnostic."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..diagnostics import Diagnostic, Severity


def format_report(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    counts = {s.value: sum(d.severity is s for d in diagnostics) for s in Severity}
    document = {
        "files": list(files),
        "summary": {"files": len(files), **counts},
        "diagnostics": [d.to_dict() for d in diagnostics],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

"""One output interface, several formats: each format is a function from findings to text.

Adding a format is one module here plus one entry in FORMATS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..diagnostics import Diagnostic
from ..secrets import mask
from . import json_format, text

Formatter = Callable[[Sequence[Diagnostic], Sequence[str]], str]

FORMATS: dict[str, Formatter] = {
    "text": text.format_report,
    "json": json_format.format_report,
}


def format_report(name: str, diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    """Render findings about `files` (every file that was checked, clean ones included).

    Secret-looking tokens are masked in every format: findings quote spec values."""
    return FORMATS[name]([masked(d) for d in diagnostics], files)


def masked(diagnostic: Diagnostic) -> Diagnostic:
    return dataclasses.replace(
        diagnostic, message=mask(diagnostic.message), hint=mask(diagnostic.hint)
    )

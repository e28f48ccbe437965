"""Where every line modelgate prints goes: one Output per command run.

Commands never call print(). Everything they say (reports, diagnostics, diffs, smoke results,
server log tails) passes through an Output, which masks values that look like secrets and
escapes control characters in one place. A spec value quoted in a message can therefore
neither leak a token nor move the cursor, rewrite a terminal line or start a new line of a CI
log (`::error ...`): a message is one line, and only a hint may span several, each indented.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from ..diagnostics import Diagnostic
from ..secrets import mask
from .formats.text import format_diagnostic

# C0 and C1 controls (tab and newline excepted), line and paragraph separators, and the
# bidirectional overrides that make text display differently from what it says.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


_CONTINUATION = re.compile(r"\n(?![ \t])")
# GitHub Actions workflow commands: `::name::` at the start of a line after any whitespace,
# and the legacy `##[name]` anywhere in one (actions/runner ActionCommand.TryParseV2 and
# TryParse). Shown as \u003a / \u005b, which stay valid inside JSON strings.
_WORKFLOW_COMMAND = re.compile(r"^([^\S\n]*):(?=:)|##\[", re.M)


def escape(text: str) -> str:
    """Control characters as visible escapes (\\x1b, \\u202e), and workflow commands
    broken; newlines and tabs kept."""
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else
                       f"\\u{ord(m[0]):04x}", text)  # fmt: skip
    return _WORKFLOW_COMMAND.sub(_break_command, text)


def _break_command(match: re.Match[str]) -> str:
    return "##\\u005b" if match[1] is None else match[1] + "\\u003a"


def one_line(text: str) -> str:
    """`text` made safe to print as a single line: newlines become visible escapes too."""
    return escape(mask(text).replace("\n", "\\n"))


def safe(text: str) -> str:
    return escape(mask(text))


def safe_diagnostic(diagnostic: Diagnostic) -> Diagnostic:
    """A diagnostic whose message is one safe line and whose hint lines are safe and indented."""
    return dataclasses.replace(
        diagnostic,
        path=one_line(diagnostic.path),
        message=one_line(diagnostic.message),
        hint=_CONTINUATION.sub("\n      ", safe(diagnostic.hint)),
        waiver=one_line(diagnostic.waiver),
    )


class Output:
    """One command's output streams. `line` and `block` write to stdout, `error` and
    `diagnostics` to stderr; `close` flushes both."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr

    def line(self, text: str = "") -> None:
        self._out.write(one_line(text) + "\n")

    def block(self, text: str) -> None:
        """Text already laid out in lines (a report, a diff): each line made safe."""
        self._out.write(safe(text))

    def error(self, text: str, hint: str = "") -> None:
        """A message for the user on stderr, prefixed `modelgate:`, and what to do."""
        self._err.write(f"modelgate: {one_line(text)}\n")
        if hint:
            self._err.write(f"    hint: {one_line(hint)}\n")

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            self._err.write(format_diagnostic(safe_diagnostic(diagnostic)) + "\n")

    def close(self) -> None:
        for stream in (self._out, self._err):
            stream.flush()

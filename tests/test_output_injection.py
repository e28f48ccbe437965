"""A spec value quoted in a finding cannot write its own lines into a CI log: a newline in
metadata.name followed by `::error ::forged` (a GitHub Actions workflow command), or an ESC
that moves a terminal's cursor, reaches no output of any format as a raw character.

The Actions runner reads `::command::` after leading whitespace (an indented hint line is
no shelter) and the legacy `##[command]` anywhere in a line (actions/runner,
src/Runner.Common/ActionCommand.cs: TryParseV2 trims, TryParse uses IndexOf)."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest

from .conftest import IRIS_SPEC, Scaffold, run_cli

# C0 and C1 controls except tab and newline: nothing a command prints may hold one raw.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
NAMES = {
    "newline-workflow-command": r'"iris\n::error ::forged"',
    "escape-sequence": r'"iris\e[2J\e]0;title\a::error ::forged"',
    "carriage-return": r'"iris\r::error ::forged"',
    "line-separator": r'"iris\L::error ::forged"',
    "ideographic-space": r'"iris\n\u3000::error ::forged"',
    "legacy-command": r'"iris ##[error]forged ##[stop-commands]x"',
}


def write_hostile_spec(scaffold: Scaffold, name: str) -> None:
    assert "\n  name: iris\n" in IRIS_SPEC
    scaffold.write_spec("iris", IRIS_SPEC.replace("\n  name: iris\n", f"\n  name: {name}\n"))


def assert_no_forged_line(text: str) -> None:
    for line in text.splitlines(keepends=True):  # keepends: a lone \r must stay visible
        assert not line.lstrip().startswith("::"), repr(line)
        assert "##[" not in line, repr(line)
        assert not RAW_CONTROL.search(line.rstrip("\n")), repr(line)
    assert "\u2028" not in text and "\u2029" not in text


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
@pytest.mark.parametrize("label", sorted(NAMES))
def test_validate_prints_no_forged_line_in_any_format(
    scaffold: Scaffold, label: str, fmt: str
) -> None:
    write_hostile_spec(scaffold, NAMES[label])
    result = run_cli("--root", str(scaffold.root), "validate", "--format", fmt)
    assert result.code == 1, result
    assert "MG109" in result.out + result.err, "the name no longer reaches a message"
    assert "forged" in result.out + result.err  # shown, but never as a command
    assert_no_forged_line(result.out)
    assert_no_forged_line(result.err)
    if fmt in ("json", "sarif"):
        json.loads(result.out)  # the escapes keep the document valid
    if fmt == "junit":
        ElementTree.fromstring(result.out)


@pytest.mark.parametrize("command", [["render"], ["render", "--check"]])
def test_render_prints_no_forged_line(scaffold: Scaffold, command: list[str]) -> None:
    write_hostile_spec(scaffold, NAMES["newline-workflow-command"])
    result = run_cli("--root", str(scaffold.root), *command)
    assert result.code == 1, result
    assert_no_forged_line(result.out)
    assert_no_forged_line(result.err)

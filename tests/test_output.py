"""Every line any command prints goes through one Output, which masks secrets and escapes
control characters: a token quoted from a spec, a server answer or the ledger never reaches
a terminal or a CI log in clear."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from validator.diagnostics import error
from validator.report.output import Output, escape, one_line, safe_diagnostic

from .conftest import PROJECT, Scaffold, run_cli

TOKEN = "AKIA" + "ABCDEFGHIJKLMNOP"  # the shape of an AWS access key id
MASKED = "AKIA****"


def assert_masked(text: str) -> None:
    assert TOKEN not in text, text
    assert MASKED in text, text


def test_nothing_in_the_package_prints_around_the_output() -> None:
    """print() and writes to sys.stdout/sys.stderr only in report/output.py (argparse's own
    usage and help messages aside)."""
    offenders = []
    for path in sorted((PROJECT / "validator").rglob("*.py")):
        if path.relative_to(PROJECT).as_posix() == "validator/report/output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                function = ast.unparse(node.func)
                if function == "print" or function.startswith(("sys.stdout", "sys.stderr")):
                    offenders.append(f"{path.relative_to(PROJECT)}:{node.lineno} {function}")
    assert offenders == []


def test_a_message_is_one_line_and_a_hint_cannot_start_a_line() -> None:
    finding = error(
        "models/x.yaml", 3, 5, "MG109", "name 'x\n::error ::forged\x1b[2J'", f"see\n{TOKEN}"
    )
    shown = safe_diagnostic(finding)
    assert "\n" not in shown.message and "\x1b" not in shown.message
    assert "\\n::error ::forged\\x1b[2J" in shown.message
    assert all(line.startswith(" ") for line in shown.hint.splitlines()[1:])
    assert_masked(shown.hint)


def test_escape_keeps_newlines_and_tabs_and_shows_the_rest() -> None:
    assert escape("a\tb\nc") == "a\tb\nc"
    assert escape("\x00\x1b\x7f\x85\u2028\u202e\ufeff") == (
        "\\x00\\x1b\\x7f\\x85\\u2028\\u202e\\ufeff"
    )
    assert one_line("a\nb") == "a\\nb"


def test_every_output_method_masks(tmp_path: Path) -> None:
    out, err = (tmp_path / "out").open("w+"), (tmp_path / "err").open("w+")
    output = Output(out, err)
    output.line(f"line {TOKEN}")
    output.block(f"block {TOKEN}\n")
    output.error(f"error {TOKEN}", f"hint {TOKEN}")
    output.diagnostics([error("x", 1, 1, "MG1", TOKEN, TOKEN)])
    output.close()
    for stream in (out, err):
        stream.seek(0)
        text = stream.read()
        assert_masked(text)


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_validate_masks_in_every_format(scaffold: Scaffold, fmt: str) -> None:
    spec = scaffold.iris(**{"protocol: v2": f"protocol: {TOKEN}"})
    result = run_cli("--root", str(scaffold.root), "validate", "--format", fmt, str(spec))
    assert result.code == 1
    assert_masked(result.out + result.err)


@pytest.mark.parametrize("command", [["render"], ["render", "--check"], ["deploy"]])
def test_render_and_deploy_mask_the_findings_they_print(
    scaffold: Scaffold, command: list[str]
) -> None:
    spec = scaffold.iris(**{"protocol: v2": f"protocol: {TOKEN}"})
    args = [*command, str(spec)] if command == ["deploy"] else command
    result = run_cli("--root", str(scaffold.root), *args)
    assert result.code == 1
    assert_masked(result.out + result.err)


@pytest.mark.engine
def test_deploy_smoke_status_history_and_catalog_mask(scaffold: Scaffold) -> None:
    """A smoke request named with a token: every command that shows it masks it."""
    spec = scaffold.iris(**{"name: setosa": f"name: {TOKEN}"})
    root = str(scaffold.root)
    deployed = run_cli("--root", root, "deploy", "--keep", str(spec))
    try:
        assert deployed.code == 0, deployed.out + deployed.err
        assert_masked(deployed.out)
        smoked = run_cli("--root", root, "smoke", "iris")
        assert smoked.code == 0, smoked.out + smoked.err
        assert_masked(smoked.out)
        loaded = run_cli("--root", root, "smoke", "iris", "--load", "4", "--concurrency", "2")
        assert_masked(loaded.out)
    finally:
        run_cli("--root", root, "stop", "iris")
    ledger = scaffold.root / ".modelgate" / "ledger.jsonl"
    record = json.loads(ledger.read_text().splitlines()[-1])
    record.update(result="failed", error=f"model not deployed: {TOKEN}", endpoint="")
    with ledger.open("a") as stream:
        stream.write(json.dumps(record) + "\n")
    history = run_cli("--root", root, "history", "iris")
    assert_masked(history.out)
    history_json = run_cli("--root", root, "history", "iris", "--format", "json")
    assert_masked(history_json.out)
    catalog = run_cli("--root", root, "catalog", "--out", "site")
    assert catalog.code == 0, catalog.out + catalog.err
    pages = [path for path in (scaffold.root / "site").rglob("*") if path.is_file()]
    assert len(pages) == 3  # catalog.md, index.html, cards/iris.html
    for page in pages:
        assert TOKEN not in page.read_text(), page.name


def test_status_masks_what_a_state_file_says(scaffold: Scaffold) -> None:
    state = scaffold.root / ".modelgate" / "run" / "iris.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        json.dumps(
            {
                "name": "iris",
                "pid": 4_000_000,
                "base_url": f"http://127.0.0.1:9/{TOKEN}",
                "protocol": "v2",
                "workdir": str(scaffold.root / "nowhere"),
                "log": "",
                "started": 1,
                "cmdline": ["mlserver"],
            }
        )
    )
    result = run_cli("--root", str(scaffold.root), "status")
    assert "ignored .modelgate/run/iris.json" in result.err  # quoting the URL it claims
    assert_masked(result.err)
    assert TOKEN not in result.out

"""The command line: exit codes, output formats, cross-file checks, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import PROJECT, Scaffold, run_cli


def test_clean_repository_exits_zero(scaffold: Scaffold) -> None:
    scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 0, result.out + result.err
    assert "1 spec checked: all valid." in result.out


def test_project_specs_are_valid() -> None:
    result = run_cli("validate", cwd=PROJECT)
    assert result.code == 0, result.out + result.err


def test_findings_exit_one_with_ruff_style_lines(scaffold: Scaffold) -> None:
    path = scaffold.iris(**{"protocol: v2": "protocol: grpc"})
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1
    first = result.out.splitlines()[0]
    line = path.read_text().splitlines().index("  engine:") + 4
    assert first.startswith(f"models/iris.yaml:{line}:15: MG201 spec.engine.protocol:")
    assert result.out.splitlines()[1] == "    hint: one of: v2, v1, openai"
    assert "Traceback" not in result.out + result.err


def test_file_name_must_match_metadata_name(scaffold: Scaffold) -> None:
    spec = scaffold.iris()
    spec.rename(spec.with_name("flowers.yaml"))
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1
    assert "models/flowers.yaml:5:9: MG109 metadata.name 'iris' does not match" in result.out


def test_two_specs_with_one_name(scaffold: Scaffold) -> None:
    scaffold.iris()
    (scaffold.root / "models" / "iris.yml").write_text(
        (scaffold.root / "models" / "iris.yaml").read_text()
    )
    result = run_cli("--root", str(scaffold.root), "validate", "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert [(d["path"], d["line"], d["col"], d["rule"]) for d in report["diagnostics"]] == [
        ("models/iris.yml", 5, 9, "MG301")
    ]
    assert "already used by models/iris.yaml" in report["diagnostics"][0]["message"]
    assert report["summary"] == {"files": 2, "error": 1, "warning": 0, "info": 0, "waived": 0}


def test_json_format_of_a_clean_run(scaffold: Scaffold) -> None:
    scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "validate", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out) == {
        "diagnostics": [],
        "files": ["models/iris.yaml"],
        "summary": {"error": 0, "files": 1, "info": 0, "waived": 0, "warning": 0},
    }


def test_unreadable_and_broken_files_do_not_stop_the_others(scaffold: Scaffold) -> None:
    scaffold.iris()
    scaffold.write_spec("broken", "a: [\n")
    result = run_cli("--root", str(scaffold.root), "validate", "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert {d["path"] for d in report["diagnostics"]} == {"models/broken.yaml"}
    assert report["summary"]["files"] == 2


def test_usage_errors_exit_two(scaffold: Scaffold) -> None:
    assert run_cli("validate", "--format", "xml").code == 2
    assert run_cli("frobnicate").code == 2
    assert run_cli().code == 2
    empty = scaffold.root / "nothing"
    empty.mkdir()
    result = run_cli("--root", str(scaffold.root), "validate", str(empty))
    assert result.code == 2 and f"no spec files found under {empty}" in result.err
    for command in (["validate"], ["render"], ["deploy", "models/iris.yaml"]):
        bad_env = run_cli("--root", str(scaffold.root), *command, "--env", "../prod")
        assert bad_env.code == 2 and "is not an environment name" in bad_env.err


def test_internal_fault_exits_three_without_traceback(
    scaffold: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here one planted in the writer at interpreter start-up) is exit 3 with a
    request to report it, never a traceback; anything a user can fix is not exit 3."""
    scaffold.iris()
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(
        "import validator.render.sync as sync\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('a planted bug')\n"
        "sync.write = broken\n"
        "import validator.render as render\n"
        "render.write = broken\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(plant))
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 3, result.out + result.err
    assert "internal error: RuntimeError: a planted bug" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (["new", "fraud", "--engine", "mlserver", "--format", "sklearn"], "new/modeldeployment"),
        (["catalog"], "templates/catalog is not a folder"),
    ],
)
def test_a_folder_without_templates_is_said_plainly(
    tmp_path: Path, command: list[str], missing: str
) -> None:
    """Run outside a repository (no templates/), a command that renders says which template
    it did not find and where to run it: exit 1, no traceback, no internal error."""
    result = run_cli("--root", str(tmp_path), *command)
    assert result.code == 1, result.out + result.err
    assert "template not found" in result.err and missing in result.err
    assert "run modelgate from the repository's root" in result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


def test_version_is_the_installed_package_s() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.code == 0 and result.out == f"modelgate {version('modelgate')}\n"


def test_policies_list_and_explain_as_json() -> None:
    listed = run_cli("policies", "list", "--format", "json", cwd=PROJECT)
    assert listed.code == 0, listed.err
    rules = {rule["id"]: rule for rule in json.loads(listed.out)}
    assert rules["MG-SEC-001"]["title"] == "image must be pinned by digest"
    assert rules["MG-SEC-001"]["judges"] == "spec"
    assert rules["MG-SEC-110"]["judges"] == "output"
    assert rules["MG-SEC-008"]["severityByEnvironment"] == {"production": "error"}
    assert rules["MG-SEC-008"]["source"].startswith("policies/modelgate.yaml:")
    text = run_cli("policies", "list", cwd=PROJECT)
    assert text.out.split()[:5] == ["ID", "SEVERITY", "ENVIRONMENTS", "JUDGES", "TITLE"]
    explained = run_cli("policies", "explain", "MG-SEC-008", "--format", "json", cwd=PROJECT)
    assert explained.code == 0, explained.err
    rule = json.loads(explained.out)
    assert rule["remediation"].startswith("set spec.model.revision to the commit reviewed")
    assert rule["fails"][0]["at"] == "spec.model" and rule["passes"]

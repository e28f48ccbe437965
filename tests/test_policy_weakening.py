"""A policy set a pull request adds may turn built-in rules off, downgrade them or empty an
allow-list: every report says so, and the exit code stays what the findings make it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from validator.check import policy

from .conftest import PROJECT, Scaffold, git, run_cli
from .test_report import official
from .test_workflows import WORKFLOW_DIR, job_step, jobs, load

LENIENT = """\
apiVersion: modelgate.dev/v1alpha1
kind: PolicySet
metadata: {name: lenient}
extends: [modelgate]
parameters:
  allowedRegistries: []
overrides:
  MG-SEC-001: {severity: "off"}
  MG-SEC-003: {severity: warning}
"""
WEAKENED = ["MG-SEC-001 off", "MG-SEC-003 error -> warning", "allowedRegistries emptied"]
TEXT_LINE = (
    "policy: 2 rules and 1 parameter weakened: "
    "MG-SEC-001 off, MG-SEC-003 error -> warning, allowedRegistries emptied"
)


def with_policies(scaffold: Scaffold, **sets: str) -> Scaffold:
    scaffold.with_policies()
    for name, text in sets.items():
        (scaffold.root / "policies" / f"{name}.yaml").write_text(text, encoding="utf-8")
    scaffold.iris()
    return scaffold


@pytest.fixture
def lenient(scaffold: Scaffold) -> Scaffold:
    return with_policies(scaffold, lenient=LENIENT)


@pytest.fixture
def builtin(scaffold: Scaffold) -> Scaffold:
    return with_policies(scaffold)


def validate(scaffold: Scaffold, fmt: str) -> str:
    result = run_cli("--root", str(scaffold.root), "validate", "--format", fmt)
    assert result.code == 0, result.out + result.err  # weakening is information, not a failure
    return result.out


def weakened_by(text: str, tmp_path: Path) -> list[str]:
    directory = tmp_path / "set"
    shutil.copytree(PROJECT / "policies", directory / "policies")
    (directory / "policies" / "lenient.yaml").write_text(text, encoding="utf-8")
    loaded, problems = policy.load_policy(directory)
    assert problems == []
    return [str(weakening) for weakening in loaded.weakened()]


def test_text_names_what_is_weakened_after_the_summary(lenient: Scaffold) -> None:
    lines = validate(lenient, "text").splitlines()
    assert lines == ["1 spec checked: all valid.", TEXT_LINE]


def test_json_carries_the_weakenings(lenient: Scaffold) -> None:
    report = json.loads(validate(lenient, "json"))
    assert report["policy"]["weakened"] == [
        {"kind": "rule", "name": "MG-SEC-001", "change": "off"},
        {"kind": "rule", "name": "MG-SEC-003", "change": "error -> warning"},
        {"kind": "parameter", "name": "allowedRegistries", "change": "emptied"},
    ]


def test_sarif_run_properties_carry_the_weakenings(lenient: Scaffold) -> None:
    sarif = json.loads(validate(lenient, "sarif"))
    schema = json.loads(official("sarif-schema-2.1.0.json").read_text())
    errors = sorted(Draft4Validator(schema).iter_errors(sarif), key=str)
    assert errors == [], errors[0].message if errors else ""
    assert sarif["runs"][0]["properties"]["policyWeakened"] == WEAKENED


def test_junit_carries_the_weakenings(lenient: Scaffold) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    out = validate(lenient, "junit")
    xmlschema.XMLSchema(str(official("junit.xsd"))).validate(out.encode())
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"policy.weakened": ", ".join(WEAKENED)}
    assert TEXT_LINE in (suite.findtext("system-out") or "")


def test_the_built_in_set_alone_adds_nothing(builtin: Scaffold) -> None:
    assert validate(builtin, "text") == "1 spec checked: all valid.\n"
    assert "policy" not in json.loads(validate(builtin, "json"))
    assert "properties" not in json.loads(validate(builtin, "sarif"))["runs"][0]
    junit = validate(builtin, "junit")
    assert "policy.weakened" not in junit and "weakened" not in junit


def test_a_stricter_set_is_not_a_weakening(tmp_path: Path) -> None:
    stricter = LENIENT.replace("allowedRegistries: []", "allowedRegistries: [registry.local/]")
    stricter = stricter.replace('MG-SEC-001: {severity: "off"}', "MG-SEC-004: {severity: error}")
    stricter = stricter.replace("MG-SEC-003: {severity: warning}", "")
    assert weakened_by(stricter, tmp_path) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ("MG-SEC-021: {environments: [staging]}", "MG-SEC-021 off"),
        ("MG-OPS-001: {severityByEnvironment: {production: info}}",
         "MG-OPS-001 error -> info in production"),
        ("MG-SEC-002: {environments: [dev]}", "MG-SEC-002 off in every environment but dev"),
        ("MG-SEC-004: {severity: \"off\", severityByEnvironment: {production: warning}}",
         "MG-SEC-004 off in every environment but production"),
    ],
)  # fmt: skip
def test_environment_overrides_that_weaken_are_named(
    overrides: str, expected: str, tmp_path: Path
) -> None:
    text = (
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: lenient}\n"
        f"extends: [modelgate]\noverrides:\n  {overrides}\n"
    )
    assert weakened_by(text, tmp_path) == [expected]


def test_a_longer_waiver_limit_is_a_weakening(tmp_path: Path) -> None:
    text = LENIENT.split("overrides:")[0].replace("allowedRegistries: []", "maxWaiverDays: 3650")
    assert weakened_by(text, tmp_path) == ["maxWaiverDays 90 -> 3650"]


def test_a_longer_pickle_allow_list_is_a_weakening_a_shorter_one_is_not(tmp_path: Path) -> None:
    head = "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: lenient}\n"
    longer = (
        head + "extends: [modelgate]\nparameters:\n  pickleGlobals: [numpy.ndarray, os.system]\n"
    )
    assert weakened_by(longer, tmp_path / "longer") == ["pickleGlobals added os.system"]
    shorter = head + "extends: [modelgate]\nparameters:\n  pickleGlobals: []\n"
    assert weakened_by(shorter, tmp_path / "shorter") == []


def test_a_null_parameter_is_refused_not_a_crash(scaffold: Scaffold) -> None:
    with_policies(scaffold, lenient=LENIENT.replace("allowedRegistries: []", "allowedRegistries:"))
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1, result.err
    assert "policies/lenient.yaml:6:3: MG701" in result.out


def test_a_missing_built_in_set_is_a_weakening(scaffold: Scaffold) -> None:
    with_policies(scaffold, lenient=LENIENT.split("extends:")[0] + "rules: []\n")
    (scaffold.root / "policies" / "modelgate.yaml").unlink()
    lines = validate(scaffold, "text").splitlines()
    assert lines[-1] == "policy: 1 set weakened: modelgate missing"


def test_the_pull_request_summary_lists_the_weakenings(lenient: Scaffold, tmp_path: Path) -> None:
    """The workflow's summary step, run for real in the scratch repository."""
    step = job_step(jobs(load(WORKFLOW_DIR / "pull-request.yml"))["deploy-changed"], "SUMMARY")
    # the pull request: the weakening policy set and iris, on a base branch that had neither
    git(lenient.root, "init", "-q", "-b", "pr")
    git(lenient.root, "commit", "-q", "--allow-empty", "-m", "base")
    git(lenient.root, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(lenient.root, "add", "-A")
    git(lenient.root, "commit", "-q", "-m", "the change")
    (lenient.root / ".venv").symlink_to(PROJECT / ".venv")
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    env = {
        **os.environ,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "BASE_REF": "main",
    }
    done = subprocess.run(
        ["bash", "-c", step["run"]], cwd=lenient.root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    markdown = summary.read_text(encoding="utf-8")
    assert "| iris | mlserver | pass |" in markdown
    line = "> **policy weakened** against the built-in set: " + ", ".join(WEAKENED)
    assert line in markdown.splitlines()
    assert line in output.read_text(encoding="utf-8").splitlines()

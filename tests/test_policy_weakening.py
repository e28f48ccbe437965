"""A policy set a pull request adds may turn built-in rules off, downgrade them or widen an
allow-list, and it may edit or delete the built-in set itself: every report says so, measured
against the built-in set modelgate ships (the floor), with the line that did it, and the exit
code stays what the findings make it."""

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

from . import official_schemas
from .conftest import PROJECT, Scaffold, git, run_cli
from .test_report import official
from .test_workflows import WORKFLOW_DIR, job_step, jobs, load

LENIENT = """\
apiVersion: modelgate.dev/v1alpha1
kind: PolicySet
metadata: {name: lenient}
extends: [modelgate]
parameters:
  allowedRegistries: [""]
overrides:
  MG-SEC-001: {severity: "off"}
  MG-SEC-003: {severity: warning}
"""
WEAKENED = [
    "MG-SEC-001 off at policies/lenient.yaml:8",
    "MG-SEC-003 error -> warning at policies/lenient.yaml:9",
    "allowedRegistries adds '' at policies/lenient.yaml:6",
]
TEXT_LINE = "policy: 2 rules and 1 parameter weakened: " + ", ".join(WEAKENED)


WHERE = "policies/lenient.yaml:"


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
        {"kind": "rule", "name": "MG-SEC-001", "change": "off", "where": f"{WHERE}8"},
        {"kind": "rule", "name": "MG-SEC-003", "change": "error -> warning", "where": f"{WHERE}9"},
        {
            "kind": "parameter",
            "name": "allowedRegistries",
            "change": "adds ''",
            "where": f"{WHERE}6",
        },
    ]


def test_sarif_run_properties_carry_the_weakenings(lenient: Scaffold) -> None:
    sarif = json.loads(validate(lenient, "sarif"))
    schema = json.loads(official(official_schemas.sarif_schema).read_text())
    errors = sorted(Draft4Validator(schema).iter_errors(sarif), key=str)
    assert errors == [], errors[0].message if errors else ""
    assert sarif["runs"][0]["properties"]["policyWeakened"] == WEAKENED


def test_junit_carries_the_weakenings(lenient: Scaffold) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    out = validate(lenient, "junit")
    xmlschema.XMLSchema(str(official(official_schemas.junit_xsd))).validate(out.encode())
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
    stricter = LENIENT.replace('allowedRegistries: [""]', "allowedRegistries: [registry.local/]")
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
    assert weakened_by(text, tmp_path) == [f"{expected} at {WHERE}6"]


def test_a_longer_waiver_limit_is_a_weakening(tmp_path: Path) -> None:
    text = LENIENT.split("overrides:")[0].replace('allowedRegistries: [""]', "maxWaiverDays: 3650")
    assert weakened_by(text, tmp_path) == [f"maxWaiverDays 90 -> 3650 at {WHERE}6"]


def test_a_longer_pickle_allow_list_is_a_weakening_a_shorter_one_is_not(tmp_path: Path) -> None:
    head = "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: lenient}\n"
    longer = (
        head + "extends: [modelgate]\nparameters:\n  pickleGlobals: [numpy.ndarray, os.system]\n"
    )
    assert weakened_by(longer, tmp_path / "longer") == [
        "pickleGlobals adds 'os.system' at policies/lenient.yaml:6"
    ]
    shorter = head + "extends: [modelgate]\nparameters:\n  pickleGlobals: []\n"
    assert weakened_by(shorter, tmp_path / "shorter") == []


def test_a_null_parameter_is_refused_not_a_crash(scaffold: Scaffold) -> None:
    lenient = LENIENT.replace('allowedRegistries: [""]', "allowedRegistries:")
    with_policies(scaffold, lenient=lenient)
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


def parameters(text: str) -> str:
    return (
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: lenient}\n"
        f"extends: [modelgate]\nparameters:\n  {text}\n"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('allowedRegistries: ["", registry.local/]', "allowedRegistries adds ''"),
        ("waiverApprovers: [security@example.com, compliance@example.com, me@example.com]",
         "waiverApprovers adds 'me@example.com'"),
        ("pickleArtifacts: {production: allowed}", "pickleArtifacts.production scanned -> allowed"),
        ("pickleArtifacts: allowed", "pickleArtifacts changed"),
        ('allowedArtifactSchemes: ["s3://", "http://"]', "allowedArtifactSchemes adds 'http://'"),
        ("licenses: {production: {deny: [GPL-3.0-only]}}",
         "licenses.production.deny drops 'CC-BY-NC-*', 'NCGL-UK-*', 'PolyForm-Noncommercial-*'"),
        ("licenses: {staging: {deny: [GPL-3.0-only]}}",
         "licenses.production.deny removed"),
        ('allowedLabels: ["", example.com/]', "allowedLabels adds ''"),
        ("systemNodeKeys: [node-role.kubernetes.io/control-plane]",
         "systemNodeKeys drops 'CriticalAddonsOnly', 'node-role.kubernetes.io/etcd', "
         "'node-role.kubernetes.io/infra', 'node-role.kubernetes.io/master'"),
        ("modelCardSections: [Intended use]",
         "modelCardSections drops 'Evaluation', 'Limitations', 'Training data'"),
        ("engines: {mlserver: {formats: [sklearn, onnx], versions: ['1.7.*']}}",
         "engines.mlserver.formats adds 'onnx'"),
        ("engines: {mlserver: {formats: [sklearn]}}",
         "engines.mlserver.versions removed (anything allowed)"),
        ("teamServiceAccounts: {payments: ['*']}", "teamServiceAccounts.payments adds '*'"),
        ("runtimeAutoSelect: [sklearn]", "runtimeAutoSelect adds 'sklearn'"),
        ("maxRuntimePriority: 1000", "maxRuntimePriority 0 -> 1000"),
        ("gitRepositories: [https://git.example.com/ml/model-deployments.git, "
         "https://evil.example.org/x.git]", "gitRepositories adds 'https://evil.example.org/x.git'"),
    ],
)  # fmt: skip
def test_every_widened_parameter_is_named_with_its_line(
    given: str, expected: str, tmp_path: Path
) -> None:
    assert weakened_by(parameters(given), tmp_path) == [f"{expected} at {WHERE}6"]


@pytest.mark.parametrize(
    "given",
    [
        "allowedRegistries: []",  # an empty allow-list allows nothing
        "waiverApprovers: [security@example.com]",
        "pickleArtifacts: {production: forbidden, '*': checked}",
        "licenses: {production: {deny: ['CC-BY-NC-*', 'PolyForm-Noncommercial-*', 'NCGL-UK-*', "
        "'GPL-*'], allow: [MIT]}}",
        "systemNodeKeys: [node-role.kubernetes.io/control-plane, node-role.kubernetes.io/master, "
        "node-role.kubernetes.io/etcd, node-role.kubernetes.io/infra, CriticalAddonsOnly, gpu]",
        "engines: {mlserver: {formats: [sklearn], versions: ['1.7.*']}}",
        "teamServiceAccounts: {'*': ['{team}']}",
        "maxReplicasCap: 10",
    ],
)
def test_a_tightened_parameter_is_not_a_weakening(given: str, tmp_path: Path) -> None:
    assert weakened_by(parameters(given), tmp_path) == []


def test_the_built_in_set_is_the_one_modelgate_ships() -> None:
    """The floor lives in the package: the repository's copy is where reviewers read it."""
    shipped = Path(policy.__file__).with_name("modelgate.yaml")
    assert (PROJECT / "policies" / "modelgate.yaml").read_bytes() == shipped.read_bytes()


def edited_builtin(tmp_path: Path, old: str, new: str) -> list[str]:
    directory = tmp_path / f"set-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(PROJECT / "policies", directory / "policies")
    builtin = directory / "policies" / "modelgate.yaml"
    text = builtin.read_text(encoding="utf-8")
    assert old in text
    builtin.write_text(text.replace(old, new, 1), encoding="utf-8")
    loaded, problems = policy.load_policy(directory)
    assert problems == []
    return [str(weakening) for weakening in loaded.weakened()]


def test_an_edited_built_in_set_is_measured_against_the_floor(tmp_path: Path) -> None:
    assert edited_builtin(
        tmp_path, "  waiverApprovers: [security@", "  waiverApprovers: [me@example.com, security@"
    ) == ["waiverApprovers adds 'me@example.com' at policies/modelgate.yaml:28"]


def test_a_rule_removed_or_rewritten_in_the_built_in_set_is_a_weakening(tmp_path: Path) -> None:
    text = (PROJECT / "policies" / "modelgate.yaml").read_text(encoding="utf-8")
    start = text.index("  - id: MG-SEC-171\n")
    rule = text[start : text.index("\n  - id: ", start + 1) + 1]
    assert edited_builtin(tmp_path, rule, "") == ["MG-SEC-171 removed"]
    line = text[: text.index("  - id: MG-SEC-001\n")].count("\n") + 1
    assert edited_builtin(
        tmp_path, 'image: {pattern: "@sha256:[a-f0-9]{64}$"}', 'image: {pattern: "."}'
    ) == [f"MG-SEC-001 changed at policies/modelgate.yaml:{line}"]


def test_policy_files_deleted_since_the_base_are_weakenings(scaffold: Scaffold) -> None:
    """A pull request that deletes policies/ (or one set of it) says so against its base."""
    with_policies(scaffold, acme=LENIENT.split("parameters:")[0] + "rules: []\n")
    git(scaffold.root, "init", "-q", "-b", "main")
    git(scaffold.root, "add", "-A")
    git(scaffold.root, "commit", "-q", "-m", "base")
    (scaffold.root / "policies" / "acme.yaml").unlink()
    result = run_cli("--root", str(scaffold.root), "validate", "--changed-since", "HEAD")
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines()[-1] == (
        "policy: 1 set weakened: policies/acme.yaml removed since HEAD"
    )
    shutil.rmtree(scaffold.root / "policies")
    # without a base, git is asked as soon as the built-in set is missing
    assert validate(scaffold, "text").splitlines()[-1] == (
        "policy: 2 sets weakened: policies/acme.yaml removed since HEAD, "
        "policies/modelgate.yaml removed since HEAD"
    )
    git(scaffold.root, "commit", "-q", "-am", "no policies")
    result = run_cli("--root", str(scaffold.root), "validate", "--changed-since", "HEAD~1")
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines()[-1] == (
        "policy: 2 sets weakened: policies/acme.yaml removed since HEAD~1, "
        "policies/modelgate.yaml removed since HEAD~1"
    )

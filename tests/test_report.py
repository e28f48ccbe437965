"""Reporters: SARIF and JUnit validate against official schemas; text reads like ruff.

The schemas come from package registries, pinned by hash and cached (tests/official_schemas.py):
- SARIF: OASIS's sarif-schema-2.1.0.json (errata01), sha256
  c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e, as the Go module
  github.com/owenrumney/go-sarif/v3 v3.3.1 embeds it (pkg/report/v210/sarif/schema.go; the
  module's hash in tests/schemas/go.sum).
- JUnit: pytest's copy of the Jenkins xunit plugin's junit-10.xsd, from pytest 9.2.0's sdist
  (testing/example_scripts/junit-10.xsd, sha256
  a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6; the sdist's sha256
  97c4f3b1f3c7414aa36465e09b8220f1d03627993bd51b1282e193753c80557b).
Where a registry (or Go) is out of reach, the two schema tests skip and say why.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from . import official_schemas
from .conftest import PROJECT, Scaffold, run_cli
from .kube_env import Unavailable


def official(fetch: Callable[[], Path]) -> Path:
    try:
        return fetch()
    except Unavailable as reason:
        pytest.skip(f"the official schema could not be fetched: {reason}")


@pytest.fixture
def findings_repo(scaffold: Scaffold) -> Scaffold:
    """Two specs: one clean, one with a policy error, a waived finding and a schema error."""
    shutil.copytree(
        PROJECT / "policies",
        scaffold.root / "policies",
        ignore=shutil.ignore_patterns("waivers.yaml"),
    )
    scaffold.iris()
    scaffold.iris("broken", **{"minReplicas: 2": "minReplicas: 1", "tls: true": "tls: false"})
    scaffold.iris("typo", **{"protocol: v2": "protocol: v3"})
    soon = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    (scaffold.root / "policies" / "waivers.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: Waivers\nwaivers:\n"
        "  - {rule: MG-SEC-021, spec: broken, justification: TLS terminates at the mesh sidecar.,"
        f" approver: security@example.com, expires: '{soon}'}}\n"
    )
    return scaffold


def test_sarif_is_valid_and_carries_rules_and_locations(findings_repo: Scaffold) -> None:
    result = run_cli("--root", str(findings_repo.root), "validate", "--format", "sarif")
    assert result.code == 1
    sarif = json.loads(result.out)
    schema = json.loads(official(official_schemas.sarif_schema).read_text())
    errors = sorted(Draft4Validator(schema).iter_errors(sarif), key=str)
    assert errors == [], errors[0].message if errors else ""
    run = sarif["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert {"MG-SEC-001", "MG-CMP-003", "MG201"} <= set(rules)  # every policy rule, described
    assert rules["MG-SEC-021"]["properties"]["security-severity"] == "8.0"
    assert rules["MG-SEC-021"]["help"]["text"] == "set spec.endpoint.tls: true"
    by_rule = {r["ruleId"]: r for r in run["results"]}
    replicas = by_rule["MG-OPS-011"]
    location = replicas["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "models/broken.yaml"
    assert location["region"] == {"startLine": 26, "startColumn": 18}
    assert run["tool"]["driver"]["rules"][replicas["ruleIndex"]]["id"] == "MG-OPS-011"
    assert by_rule["MG-SEC-021"]["suppressions"][0]["kind"] == "external"
    assert by_rule["MG201"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "models/typo.yaml"
    )


def test_junit_is_valid_against_the_xsd(findings_repo: Scaffold) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    result = run_cli("--root", str(findings_repo.root), "validate", "--format", "junit")
    assert result.code == 1
    schema = xmlschema.XMLSchema(str(official(official_schemas.junit_xsd)))
    schema.validate(result.out.encode())
    assert 'tests="3" failures="2"' in result.out
    assert "models/broken.yaml:26:18: MG-OPS-011" in result.out


def test_reports_are_deterministic(findings_repo: Scaffold) -> None:
    for fmt in ("text", "json", "sarif", "junit"):
        first = run_cli("--root", str(findings_repo.root), "validate", "--format", fmt).out
        assert first == run_cli("--root", str(findings_repo.root), "validate", "--format", fmt).out


def test_junit_reports_a_warning_without_failing_the_file_unless_strict() -> None:
    # the repository's own specs: a note (MG265 on chat-assistant, whose GPU fit is not
    # computed) and a warning (MG-OPS-050 on churn-pipeline), no error
    result = run_cli("--root", str(PROJECT), "validate", "--format", "junit")
    assert result.code == 0
    suite = ET.fromstring(result.out).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert suite.findall("testcase/failure") == []
    out = suite.findtext("system-out") or ""
    assert "models/churn-pipeline.yaml:55:3: MG-OPS-050 warning: neither the local" in out
    assert "0 failing finding(s), 2 warning(s) and note(s) that fail nothing" in out

    strict = run_cli("--root", str(PROJECT), "validate", "--format", "junit", "--strict")
    assert strict.code == 1
    suite = ET.fromstring(strict.out).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failures = suite.findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["MG-OPS-050"]


def test_a_cached_schema_is_used_only_with_its_pinned_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(official_schemas, "SCHEMAS", tmp_path)
    tampered = tmp_path / official_schemas.SARIF_SHA256[:12] / "sarif-schema-2.1.0.json"
    tampered.parent.mkdir()
    tampered.write_text('{"description": "accepts anything"}')
    fetched = official(official_schemas.sarif_schema)
    assert fetched == tampered
    assert json.loads(fetched.read_text())["id"].endswith(
        "/errata01/os/schemas/sarif-schema-2.1.0.json"
    )

    monkeypatch.setattr(official_schemas, "SARIF_SHA256", "0" * 64)
    with pytest.raises(official_schemas.Broken, match=r"sha256 c3b4bb2d6093\w+, not 0{64}"):
        official(official_schemas.sarif_schema)


def test_the_official_schemas_refuse_what_their_formats_forbid() -> None:
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "modelgate"}}}]}
    validator = Draft4Validator(json.loads(official(official_schemas.sarif_schema).read_text()))
    assert list(validator.iter_errors(sarif)) == []
    assert list(validator.iter_errors({**sarif, "version": "2.2.0"}))
    assert list(validator.iter_errors({**sarif, "findings": []}))  # no additional properties

    xmlschema = pytest.importorskip("xmlschema")
    junit = xmlschema.XMLSchema(str(official(official_schemas.junit_xsd)))
    suite = (
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">{}</testsuite>'
        "</testsuites>"
    )
    assert junit.is_valid(suite.format('<testcase name="t" classname="c"/>'))
    assert not junit.is_valid(suite.format('<testcase classname="c"/>'))  # a case needs its name
    assert not junit.is_valid(suite.format('<testcase name="t"><failed/></testcase>'))

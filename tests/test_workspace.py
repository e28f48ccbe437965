"""Large sets are checked across processes; the findings must not depend on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from validator.check import workspace

from .conftest import IRIS_SPEC, PROJECT, Scaffold


def test_parallel_and_serial_checks_agree(
    scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    for index in range(workspace.PARALLEL_FROM + 20):
        name = f"m-{index:04d}"
        text = IRIS_SPEC.replace("name: iris", f"name: {name}")
        if index % 7 == 0:
            text = text.replace("minReplicas: 2", "minReplicas: 1")  # a policy finding
        if index % 11 == 0:
            text = text.replace("protocol: v2", "protocol: v9")  # a schema finding
        if index % 13 == 0:
            text = text.replace("    tls: true", "    tls: true\n    port: 8080")  # cross-file
        scaffold.write_spec(name, text)
    (scaffold.root / "models" / "broken.yaml").write_text("a: [\n")
    files = workspace.discover(scaffold.root, [])
    parallel = workspace.validate(files, scaffold.root)
    monkeypatch.setattr(workspace, "PARALLEL_FROM", 10**9)
    serial = workspace.validate(files, scaffold.root)
    assert parallel.diagnostics == serial.diagnostics
    assert [d.path for d in parallel.documents] == [d.path for d in serial.documents]
    rules = {d.rule for d in serial.diagnostics}
    assert {"MG-OPS-011", "MG201", "MG-OPS-040", "MG101"} <= rules


def test_a_spec_symlinked_from_outside_the_repository_is_not_read(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    secret = tmp_path / "credentials.yaml"
    secret.write_text("apiVersion: hunter2\n")
    link = scaffold.root / "models" / "iris.yaml"
    link.symlink_to(secret)
    scaffold.iris(name="real")
    inside = scaffold.root / "models" / "copy.yaml"
    inside.symlink_to("real.yaml")  # inside the repository: read as usual
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    [finding] = [d for d in result.diagnostics if d.path == "models/iris.yaml"]
    assert finding.rule == "MG115" and str(secret) in finding.message
    assert "hunter2" not in " ".join(d.message for d in result.diagnostics)
    assert not any(d.rule == "MG115" for d in result.diagnostics if d.path == "models/copy.yaml")

"""Symbolic links in a pull request never make modelgate read or write outside the
repository: each link out is a finding (MG118) naming its path, and nothing is followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Scaffold, run_cli

SECRET = "RUNNER-ONLY-CONTENT-5f3a"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file of the machine, outside the repository, that must stay unread and unchanged."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "secret.yaml").write_text(f"{SECRET}: 1\n")
    return place


def unchanged(outside: Path) -> bool:
    return [p.name for p in outside.iterdir()] == ["secret.yaml"] and (
        outside / "secret.yaml"
    ).read_text() == f"{SECRET}: 1\n"


def rendered(scaffold: Scaffold) -> Path:
    scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 0, result.out + result.err
    return scaffold.root / "rendered"


def test_render_check_does_not_print_what_a_rendered_link_points_at(
    scaffold: Scaffold, outside: Path
) -> None:
    target = rendered(scaffold) / "staging" / "iris" / "model.yaml"
    target.unlink()
    target.symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "render", "--check")
    assert result.code == 1
    assert SECRET not in result.out + result.err
    assert "rendered/staging/iris/model.yaml is a symbolic link" in result.err


def test_render_does_not_write_through_a_rendered_file_link(
    scaffold: Scaffold, outside: Path
) -> None:
    target = rendered(scaffold) / "staging" / "iris" / "model.yaml"
    target.unlink()
    target.symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 1
    assert "MG118 rendered/staging/iris/model.yaml would be written through a symbolic link" in (
        result.err
    )
    assert unchanged(outside)


def test_render_does_not_fill_a_directory_a_link_points_at(
    scaffold: Scaffold, outside: Path
) -> None:
    scaffold.iris()
    (scaffold.root / "rendered").mkdir()
    (scaffold.root / "rendered" / "local").symlink_to(outside, target_is_directory=True)
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 1
    assert "MG118 rendered/local/iris/" in result.err
    assert unchanged(outside)


def test_a_template_link_is_not_included(scaffold: Scaffold, outside: Path) -> None:
    scaffold.iris()
    header = scaffold.root / "templates" / "_k8s" / "header.j2"
    header.unlink()
    header.symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 1
    assert "MG118" in result.err and "_k8s/header.j2" in result.err
    assert SECRET not in result.out + result.err
    assert not (scaffold.root / "rendered").exists()


def test_values_that_are_a_link_are_not_read(scaffold: Scaffold, outside: Path) -> None:
    scaffold.iris()
    values = scaffold.root / "templates" / "values.yaml"
    values.unlink()
    values.symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 1
    assert "MG118" in result.err and SECRET not in result.out + result.err


def test_a_policy_link_is_a_finding_not_echoed(scaffold: Scaffold, outside: Path) -> None:
    scaffold.iris()
    (scaffold.root / "policies").mkdir()
    (scaffold.root / "policies" / "evil.yaml").symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1
    assert "policies/evil.yaml" in result.out and "MG118" in result.out
    assert SECRET not in result.out + result.err


def test_deploy_does_not_truncate_what_a_lock_link_points_at(
    scaffold: Scaffold, outside: Path
) -> None:
    spec = scaffold.iris()
    locks = scaffold.root / ".modelgate" / "locks"
    locks.mkdir(parents=True)
    (locks / "iris.lock").symlink_to(outside / "secret.yaml")
    result = run_cli("--root", str(scaffold.root), "deploy", str(spec))
    assert result.code == 1
    assert "MG118" in result.err and "Traceback" not in result.err
    assert unchanged(outside)


def test_an_artifact_changed_alone_is_a_finding_at_its_sha256(scaffold: Scaffold) -> None:
    spec = scaffold.iris()
    artifact = scaffold.root / "models" / "artifacts" / "iris" / "model.joblib"
    with artifact.open("ab") as stream:
        stream.write(b"\x00appended")
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1
    line = next(
        number
        for number, text in enumerate(spec.read_text().splitlines(), 1)
        if text.strip().startswith("sha256:")
    )
    assert f"models/iris.yaml:{line}:" in result.out and "MG119" in result.out


def test_an_artifact_link_out_is_a_finding(scaffold: Scaffold, outside: Path) -> None:
    scaffold.iris()
    artifact = scaffold.root / "models" / "artifacts" / "iris" / "model.joblib"
    os.replace(artifact, outside / "model.joblib")
    artifact.symlink_to(outside / "model.joblib")
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1 and "MG118" in result.out

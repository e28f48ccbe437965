"""Input a user can fix is a usage error (exit 2) or a finding (exit 1), never an internal
error (exit 3), and never a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Scaffold, run_cli


def test_an_empty_path_is_a_usage_error(scaffold: Scaffold) -> None:
    (scaffold.root / "stray.yaml").write_text("not: a spec\n")
    for command in (["validate", ""], ["render", ""], ["deploy", ""]):
        result = run_cli("--root", str(scaffold.root), *command)
        assert result.code == 2, (command, result.out + result.err)
        assert "empty path" in result.err


def test_catalog_out_empty_or_root_is_a_usage_error(scaffold: Scaffold) -> None:
    scaffold.iris()
    for out in ("", "."):
        result = run_cli("--root", str(scaffold.root), "catalog", "--out", out)
        assert result.code == 2, result.out + result.err
    assert not (scaffold.root / "index.html").exists()


def test_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--root", str(tmp_path / "nowhere"), "validate")
    assert result.code == 2 and "is not a directory" in result.err


def test_a_fifo_named_like_a_spec_is_a_finding_not_a_hang(scaffold: Scaffold) -> None:
    scaffold.iris()
    os.mkfifo(scaffold.root / "models" / "x.yaml")
    result = run_cli("--root", str(scaffold.root), "validate", timeout=60)
    assert result.code == 1
    assert "models/x.yaml: MG111 not a regular file" in result.out


@pytest.mark.parametrize("blocker", ["rendered", "rendered/local"])
def test_a_file_where_rendered_needs_a_directory_is_a_finding(
    scaffold: Scaffold, blocker: str
) -> None:
    scaffold.iris()
    (scaffold.root / blocker).parent.mkdir(parents=True, exist_ok=True)
    (scaffold.root / blocker).write_text("in the way\n")
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 1, result.out + result.err
    assert "MG407" in result.err and f"{blocker} is a file" in result.err


@pytest.fixture
def read_only_checkout(scaffold: Scaffold, tmp_path: Path) -> Iterator[Path]:
    """The scaffold's repository on a file system mounted read-only."""
    scaffold.iris()
    mount = tmp_path / "read-only"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a file system here (needs root)")
    try:
        shutil.copytree(scaffold.root, mount / "repo")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "repo"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_read_only_checkout_is_not_an_internal_error(read_only_checkout: Path) -> None:
    root = str(read_only_checkout)
    for command in (["new", "fresh", "--engine", "mlserver", "--format", "sklearn"],
                    ["deploy", "models/iris.yaml"], ["render"]):  # fmt: skip
        result = run_cli("--root", root, *command, cwd=read_only_checkout)
        assert result.code == 1, (command, result.out + result.err)
        assert "cannot write" in result.err and "internal error" not in result.err

"""The real pre-commit, in a temporary git repository made from the scaffold."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import kube_env
from .conftest import PROJECT

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")
SCAFFOLD = (
    "models",
    "templates",
    "policies",
    "rendered",
    "docs/models",
    ".pre-commit-config.yaml",
    ".yamllint.yaml",
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if not PRE_COMMIT.exists():
        pytest.skip(
            "pre-commit is not installed in this environment (pip install 'modelgate[dev]')"
        )
    root = tmp_path / "repo"
    root.mkdir()
    for name in SCAFFOLD:
        source = PROJECT / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, root / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the hooks' tools
    (root / ".gitignore").write_text(".venv\n.modelgate/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "scaffold")
    run(root, str(PRE_COMMIT), "install")
    return root


@pytest.fixture
def whole_tree(tmp_path: Path) -> Path:
    """Every file git tracks in the project, as it is on disk, committed to a new repository."""
    if not PRE_COMMIT.exists():
        pytest.skip(
            "pre-commit is not installed in this environment (pip install 'modelgate[dev]')"
        )
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip(f"the project at {PROJECT} is not a git checkout: no list of its files")
    root = tmp_path / "repo"
    for name in listed.stdout.decode().split("\0"):
        if name and (PROJECT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, root / name, follow_symlinks=False)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    git(root, "init", "-q", "-b", "main")
    (root / ".git/info/exclude").write_text(".venv\n")
    git(root, "add", "-A")
    assert git(root, "commit", "-q", "-m", "the project").returncode == 0
    return root


def environment(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        # The hooks' environments, kept between runs like the tests' other builds.
        "PRE_COMMIT_HOME": str(kube_env.CACHE / "pre-commit"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def run(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment(root),
        check=False,
    )


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(root, "git", *args)


def commit(root: Path, message: str) -> tuple[int, str]:
    """Stage everything and commit; the hooks' output (git prints it on stderr) as one text."""
    git(root, "add", "-A")
    done = git(root, "commit", "-m", message)
    return done.returncode, done.stdout + done.stderr


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_good_change_is_committed(repo: Path) -> None:
    edit(repo / "models/iris.yaml", "description: Logistic", "description: A logistic")
    assert run(repo, ".venv/bin/modelgate", "render").returncode == 0  # the spec hash changed
    code, output = commit(repo, "describe iris")
    assert code == 0, output
    assert "modelgate validate" in output and "Passed" in output


def test_a_policy_violation_is_blocked_with_its_position(repo: Path) -> None:
    edit(repo / "models/iris.yaml", "minReplicas: 2", "minReplicas: 1")
    code, output = commit(repo, "one replica")
    assert code != 0
    assert "models/iris.yaml:26:18: MG-OPS-011 production needs at least two replicas" in output
    assert git(repo, "log", "--oneline").stdout.count("\n") == 1  # nothing was committed


def test_a_stale_rendered_file_is_blocked(repo: Path) -> None:
    edit(repo / "rendered/staging/iris/model.yaml", "replicas: 2", "replicas: 5")
    code, output = commit(repo, "hand edit")
    assert code != 0
    assert "MG404 rendered/staging/iris/model.yaml differs from what the specs render" in output


def test_a_spec_change_without_rendering_is_blocked_then_passes(repo: Path) -> None:
    edit(repo / "models/iris.yaml", "maxReplicas: 3", "maxReplicas: 4")
    code, output = commit(repo, "scale")
    assert code != 0 and "+  maxReplicas: 4" in output
    assert run(repo, ".venv/bin/modelgate", "render").returncode == 0
    code, output = commit(repo, "scale")
    assert code == 0, output


def test_yaml_style_problems_are_blocked(repo: Path) -> None:
    edit(repo / "models/iris.yaml", "    pii: false", "    pii: no")
    code, output = commit(repo, "yes/no")
    assert code != 0 and "truthy value should be one of" in output


def test_a_model_card_that_loses_a_section_is_blocked(repo: Path) -> None:
    card = repo / "docs/models/iris.md"
    text = card.read_text()
    card.write_text(text[: text.index("## Evaluation")])
    code, output = commit(repo, "shorter card")
    assert code != 0
    assert "MG-CMP-004 model card docs/models/iris.md has no text under Evaluation" in output
    assert git(repo, "log", "--oneline").stdout.count("\n") == 1  # nothing was committed


def test_the_repository_passes_its_own_hooks(whole_tree: Path) -> None:
    done = run(whole_tree, str(PRE_COMMIT), "run", "--all-files")
    assert done.returncode == 0, done.stdout + done.stderr
    for hook in ("modelgate validate", "render --check", "yamllint", "check-jsonschema", "ruff"):
        assert any(hook in line and "Passed" in line for line in done.stdout.splitlines()), hook

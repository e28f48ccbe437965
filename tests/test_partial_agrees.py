"""Partial checks see what full checks see: over a corpus of one-file changes to the example
repository (a spec, its team, a model card, a template, values, a policy, an engine lock, the
deployer Roles, the file Argo CD's generator reads, a stand-in and its script, an artifact),
`validate --changed-since` and `render --check --changed-since` reach the verdict the full
commands reach, finding for finding."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PROJECT, git, run_cli

# What the example repository is made of (modelgate's own code aside: a change to it makes
# every check full anyway).
PARTS = ("models", "templates", "policies", "docs/models", "rendered", "crds", "locks")
FILES = ("pyproject.toml",)


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        text = (root / path).read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {path}"
        (root / path).write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def append(path: str, data: bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with (root / path).open("ab") as file:
            file.write(data)

    return edit


def delete(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


EVIL_PIN = "evil-pth==6.6.6 \\\n    --hash=sha256:" + "e" * 64 + "\n    # via nothing\n"
CHANGES = {
    "spec": replace("models/iris.yaml", "minReplicas: 2", "minReplicas: 1"),
    # a team with no Argo CD project yet, its files not rendered
    "spec's team": replace("models/iris.yaml", "team: ml-platform", "team: vision-ml"),
    "generator file": replace(
        "rendered/staging/iris/application.json", '"ml-platform"', '"growth-ml"'
    ),
    "model card gutted": replace("docs/models/iris.md", "## Intended use", "## Notes"),
    "docker template": replace(
        "templates/docker/compose.yaml.j2", 'cap_drop: ["ALL"]', "cap_drop: []"
    ),
    "engine template": replace("templates/kserve/inferenceservice.yaml.j2", "{#-", "{# -"),
    "values": replace("templates/values.yaml", "models-{environment}", "ml-{environment}"),
    "policy": replace("policies/modelgate.yaml", "maxReplicasCap: 50", "maxReplicasCap: 3"),
    "engine lock": append("locks/engine-kserve.txt", EVIL_PIN.encode()),
    "deployer role": replace(
        "rendered/staging/_rbac/role.yaml", '      - "patch"\n', '      - "patch"\n      - "bind"\n'
    ),
    "rendered manifest": replace(
        "rendered/production/chat-assistant/deployment.yaml",
        "runAsNonRoot: true",
        "runAsNonRoot: false",
    ),
    "stand-in": append("models/artifacts/fraud-onnx-small/model.onnx", b"\0"),
    "stand-in script": delete("models/artifacts/fraud-onnx-small/make.py"),
    "artifact": append("models/artifacts/iris/model.joblib", b"\0"),
}  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repository, committed: the base every change is made on."""
    root = tmp_path_factory.mktemp("base") / "repo"
    for part in PARTS:
        shutil.copytree(PROJECT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in FILES:
        shutil.copyfile(PROJECT / name, root / name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


Verdict = tuple[int, list[tuple[str, int, str]], bool]


def verdict(root: Path, *command: str) -> Verdict:
    """The exit code, the errors found outside rendered/, and whether rendered/ differs from
    what the specs make: the files of a spec that fails are not rendered, so which of them
    read as out of date depends on what was rendered, not on the verdict. (The base's
    warnings are not repeated for the specs a change leaves alone.)"""
    result = run_cli("--root", str(root), *command, "--format", "json", cwd=root)
    assert result.code in (0, 1), result.out + result.err
    errors = [d for d in json.loads(result.out)["diagnostics"] if d["severity"] == "error"]
    found = sorted(
        (d["path"], d["line"], d["rule"]) for d in errors if not d["path"].startswith("rendered/")
    )
    return result.code, found, any(d["path"].startswith("rendered/") for d in errors)


@pytest.mark.parametrize("name", sorted(CHANGES))
@pytest.mark.parametrize("command", [("validate",), ("render", "--check")], ids=" ".join)
def test_a_partial_check_reaches_the_full_checks_verdict(
    name: str, command: tuple[str, ...], base: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(base, root, symlinks=True)
    CHANGES[name](root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", name)
    full = verdict(root, *command)
    partial = verdict(root, *command, "--changed-since", "HEAD~1")
    assert partial == full

"""The adversarial corpus of repository trees (tests/corpus/trees/): links among the files a
pull request can change (rendered/, templates/, policies/, .modelgate/, artifacts), files
among them that are not plain data (templates/values.yaml), and model files that run code
when they load (`binary`, written by tests/make_pickle_trees.py, served by the `specs` it
names: the iris spec with text replaced, @sha256:PATH the digest of a planted file). Each tree
is planted in a scaffold repository, each command is run, and none may read, print or write
what a link points at outside the repository, nor fail with an internal error."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PROJECT, Scaffold, run_cli

TREES = sorted((Path(__file__).parent / "corpus" / "trees").glob("*.yaml"))
SECRET = "RUNNER-ONLY-CONTENT-9c1d"


def plant(scaffold: Scaffold, outside: Path, tree: dict[str, Any]) -> None:
    scaffold.iris()
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    if tree.get("render_first"):
        assert run_cli("--root", str(scaffold.root), "render").code == 0
    for where, text in tree.get("files", {}).items():
        (scaffold.root / where).parent.mkdir(parents=True, exist_ok=True)
        (scaffold.root / where).write_text(text)
    for where, replacements in tree.get("edits", {}).items():
        text = (scaffold.root / where).read_text(encoding="utf-8")
        for old, new in replacements.items():
            assert old in text, f"{old!r} is not in {where}"
            text = text.replace(old, new)
        (scaffold.root / where).write_text(text, encoding="utf-8")
    for where, encoded in tree.get("binary", {}).items():
        (scaffold.root / where).parent.mkdir(parents=True, exist_ok=True)
        (scaffold.root / where).write_bytes(base64.b64decode(encoded))
    for name, replacements in tree.get("specs", {}).items():
        scaffold.iris(
            name, **{old: digests(scaffold.root, new) for old, new in replacements.items()}
        )
    for where, target in tree.get("links", {}).items():
        link = scaffold.root / where
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        elif link.exists() or link.is_symlink():
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(target.replace("@outside", str(outside))))


def digests(root: Path, text: str) -> str:
    """`text` with each @sha256:PATH replaced by the sha256 of that file of the tree."""
    return re.sub(
        r"@sha256:(\S+)",
        lambda found: hashlib.sha256((root / found[1]).read_bytes()).hexdigest(),
        text,
    )


def snapshot(outside: Path) -> dict[str, str]:
    return {str(p.relative_to(outside)): p.read_text() for p in outside.rglob("*") if p.is_file()}


@pytest.mark.parametrize("path", TREES, ids=lambda path: path.stem)
def test_tree(path: Path, scaffold: Scaffold, tmp_path: Path) -> None:
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert tree["description"] and tree["runs"], f"{path.name} is incomplete"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(f"{SECRET}: 1\n")
    before = snapshot(outside)
    plant(scaffold, outside, tree)
    for run in tree["runs"]:
        result = run_cli("--root", str(scaffold.root), *run["command"], cwd=scaffold.root)
        shown = result.out + result.err
        assert result.code == run["exit"], (run["command"], shown)
        assert run["finding"] in shown, (run["command"], shown)
        assert SECRET not in shown and "internal error" not in shown
        assert snapshot(outside) == before, f"{run['command']} wrote outside the repository"

"""The adversarial corpus (tests/corpus/, made by tests/make_corpus.py): every file gives
located diagnostics with the expected rule ids, never an exception, a traceback or exit 3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from validator import render
from validator.check import load, workspace

from .conftest import PROJECT, assert_both_parsers_agree, run_cli

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, list[str]] = json.loads((CORPUS / "EXPECTED.json").read_text())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("corpus") / "repo"
    for part in ("policies", "templates", "docs/models"):
        shutil.copytree(PROJECT / part, base / part)
    (base / "models").mkdir()
    return base


def test_the_corpus_is_large_enough() -> None:
    assert len(EXPECTED) >= 200
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_file_is_diagnosed_with_positions(root: Path, name: str) -> None:
    path = root / "models" / "iris.yaml"  # the name the corpus specs carry: no MG109 noise
    shutil.copyfile(CORPUS / name, path)
    try:
        result = workspace.validate([path], root)
    finally:
        path.unlink()
    if not EXPECTED[name]:  # valid in disguise (BOM, CRLF): must be the clean spec
        assert result.diagnostics == [] and result.documents[0].data["metadata"]["name"] == "iris"
        for rendered in render.render_document(result.documents[0], root).files:
            assert_both_parsers_agree(rendered)
        return
    assert result.diagnostics, "a hostile file passed as valid"
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 1 and diagnostic.col >= 1, diagnostic
        assert diagnostic.hint, diagnostic
    found = {d.rule for d in result.diagnostics}
    assert set(EXPECTED[name]) <= found, sorted(found)


def test_the_cli_on_the_whole_corpus(tmp_path: Path) -> None:
    models = tmp_path / "repo" / "models"
    shutil.copytree(CORPUS, models, ignore=shutil.ignore_patterns("*.json", "trees"))
    shutil.copytree(PROJECT / "policies", tmp_path / "repo" / "policies")
    for fmt in ("text", "sarif"):
        result = run_cli("--root", str(tmp_path / "repo"), "validate", "--format", fmt)
        assert result.code == 1
        assert "Traceback" not in result.out + result.err
        assert "internal error" not in result.out + result.err


def test_files_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: '" + b"x" * (load.MAX_BYTES + 1) + b"'\n")
    document, problems = load.load_file(path, "models/big.yaml")
    assert document is None and [(p.rule, p.line, p.col) for p in problems] == [("MG105", 1, 1)]


def test_a_wide_alias_bomb_is_refused_quickly() -> None:
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 30))
    document, problems = load.load_bytes(b"l0: &l0 [x]\n" + levels.encode(), "models/bomb.yaml")
    assert document is None and problems[0].rule == "MG104"

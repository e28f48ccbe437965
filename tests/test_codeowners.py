"""CODEOWNERS covers what decides what reaches a cluster (MG304); its patterns are matched
as GitHub matches them. The repository trees in tests/corpus/trees/codeowners-*.yaml run
the whole command."""

from __future__ import annotations

import pytest

from validator.check import codeowners

from .conftest import PROJECT


def owns(pattern: str, path: str) -> bool:
    return bool(codeowners.Entry(1, pattern, ("@o",)).regex.match(path))


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/models/", "models/iris.yaml", True),
        ("/models/", "models/artifacts/iris/model.joblib", True),
        ("/models/", "docs/models/iris.md", False),
        ("models/", "docs/models/iris.md", True),  # a trailing slash alone anchors nothing
        ("/models/", "docs/models/iris.md", False),
        ("docs/models/", "x/docs/models/iris.md", False),  # a slash inside anchors it
        ("models", "docs/models/iris.md", True),  # no slash: a name at any depth
        ("*.txt", "locks/engine-vllm.txt", True),
        ("/locks/*.txt", "locks/engine-vllm.txt", True),
        ("/locks/*.txt", "locks/sub/engine-vllm.txt", False),
        ("/docs/**/CODEOWNERS", "docs/a/b/CODEOWNERS", True),
        ("/Makefile", "Makefile", True),
        ("/Makefile", "templates/Makefile", False),
        ("*", "pyproject.toml", True),
    ],
)
def test_patterns_match_as_github_matches_them(pattern: str, path: str, expected: bool) -> None:
    assert owns(pattern, path) is expected


def test_the_repositorys_own_codeowners_covers_every_guarded_path() -> None:
    assert codeowners.check(PROJECT) == []

"""Every loader refusal: a Diagnostic with rule, line and column, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from validator import paths
from validator.check import load

from .conftest import IRIS_SPEC


def refuse(text: str | bytes) -> tuple[str, int, int, str]:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    document, problems = load.load_bytes(raw, "models/x.yaml")
    assert document is None, "the loader accepted input it must refuse"
    assert len(problems) == 1
    found = problems[0]
    assert found.path == "models/x.yaml"
    assert found.hint, "every refusal tells the user what to do"
    return found.rule, found.line, found.col, found.message


@pytest.mark.parametrize(
    ("text", "rule", "line", "col"),
    [
        pytest.param("a: 1\nb: [1, 2\nc: 3\n", load.INVALID_YAML, 3, 2, id="unclosed-flow"),
        pytest.param("a: 1\n  b: 2\n", load.INVALID_YAML, 2, 4, id="bad-indent"),
        pytest.param("a:\n  b: 1\n  b: 2\n", load.DUPLICATE_KEY, 3, 3, id="duplicate-key"),
        pytest.param("a: 1\n---\nb: 2\n", load.MULTIPLE_DOCUMENTS, 2, 1, id="two-documents"),
        pytest.param("a: &x 1\nb: *x\n", load.ALIAS, 1, 4, id="anchor"),
        pytest.param(
            "a: !!python/object:os.system {}\n", load.FORBIDDEN_TAG, 1, 4, id="python-tag"
        ),
        pytest.param("a: !!python/name:os.system\n", load.FORBIDDEN_TAG, 1, 4, id="python-name"),
        pytest.param("a: !custom 1\n", load.FORBIDDEN_TAG, 1, 4, id="local-tag"),
        pytest.param("a:\n  - !!binary aGVsbG8=\n", load.FORBIDDEN_TAG, 2, 5, id="binary-tag"),
        pytest.param("- a\n- b\n", load.NOT_A_MAPPING, 1, 1, id="top-level-list"),
        pytest.param("just text\n", load.NOT_A_MAPPING, 1, 1, id="top-level-scalar"),
        pytest.param("a:\n  ? [1, 2]\n  : 3\n", load.KEY_NOT_SCALAR, 2, 5, id="complex-key"),
        pytest.param("", load.EMPTY, 1, 1, id="empty"),
        pytest.param("  \n\n", load.EMPTY, 1, 1, id="blank"),
        pytest.param("# only a comment\n", load.EMPTY, 1, 1, id="comment-only"),
        pytest.param("a: 0x1G\nb: 1\n", None, 0, 0, id="odd-int-is-text"),
    ],
)
def test_refusals_are_located(text: str, rule: str | None, line: int, col: int) -> None:
    if rule is None:  # not a refusal: 0x1G is not an int, so it is a string
        document, problems = load.load_bytes(text.encode(), "models/x.yaml")
        assert problems == [] and document is not None and document.data["a"] == "0x1G"
        return
    assert refuse(text)[:3] == (rule, line, col)


def test_control_characters_are_located() -> None:
    rule, line, col, message = refuse(b"a: 1\nb: x\x00y\n")
    assert (rule, line, col) == (load.INVALID_YAML, 2, 5) and "U+0000" in message


def test_billion_laughs_is_refused_before_expansion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefghij":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}]\n"
    rule, line, col, message = refuse(bomb)
    assert (rule, line, col) == (load.ALIAS, 1, 4)
    assert "'a'" in message


def test_merge_key_is_refused() -> None:
    assert refuse("a:\n  <<: {b: 1}\n")[0] == load.FORBIDDEN_TAG


def test_non_utf8_points_at_the_bad_byte() -> None:
    rule, line, col, message = refuse(b"a: 1\nb: caf\xe9\n")
    assert (rule, line, col) == (load.NOT_UTF8, 2, 7)
    assert "0xe9" in message


def test_utf8_bom_and_crlf_are_accepted() -> None:
    document, problems = load.load_bytes(b"\xef\xbb\xbfa: 1\r\nb: two\r\n", "models/x.yaml")
    assert problems == [] and document is not None
    assert document.data == {"a": 1, "b": "two"}


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (load.MAX_BYTES + 10) + b"\n")
    document, problems = load.load_file(path, "models/big.yaml")
    assert document is None
    assert [(p.rule, p.line, p.col) for p in problems] == [(load.TOO_LARGE, 1, 1)]


@pytest.mark.parametrize("size", [0, 10, 99, 100, 101, 5000])
def test_a_file_is_read_up_to_one_byte_past_the_limit(tmp_path: Path, size: int) -> None:
    """paths.read_at_most asks for the file's size first, and for the rest of the limit
    when there is more (a pipe has no size; a file may grow between the two looks)."""
    path = tmp_path / "spec.yaml"
    data = bytes(range(256)) * 20
    path.write_bytes(data[:size])
    with path.open("rb") as stream:
        assert paths.read_at_most(stream, 100) == data[: min(size, 101)]
    read, write = os.pipe()
    with os.fdopen(write, "wb") as sink:
        sink.write(data[:size])
    with os.fdopen(read, "rb") as stream:
        assert paths.read_at_most(stream, 100) == data[: min(size, 101)]
    with path.open("rb") as stream:
        path.write_bytes(data[: size + 150])  # written again, longer, once it is open
        assert paths.read_at_most(stream, 100) == data[: min(size + 150, 101)]


def test_unreadable_file_is_a_diagnostic(tmp_path: Path) -> None:
    document, problems = load.load_file(tmp_path / "missing.yaml", "models/missing.yaml")
    assert document is None and problems[0].rule == load.UNREADABLE


def test_deep_nesting_is_refused() -> None:
    text = "a: " + "[" * 40 + "]" * 40 + "\n"
    rule, line, _, _ = refuse(text)
    assert (rule, line) == (load.TOO_DEEP, 1)


def test_scalars_become_plain_json_types() -> None:
    text = "i: 3\nf: 1.5\nt: true\nn: null\nd: 2026-01-31\ns: '007'\nl: [1, two]\n"
    document, problems = load.load_bytes(text.encode(), "models/x.yaml")
    assert problems == [] and document is not None
    assert document.data == {
        "i": 3,
        "f": 1.5,
        "t": True,
        "n": None,
        "d": "2026-01-31",
        "s": "007",
        "l": [1, "two"],
    }


def test_locate_maps_json_paths_to_lines_and_columns() -> None:
    document, _ = load.load_bytes(IRIS_SPEC.encode(), "models/iris.yaml")
    assert document is not None
    lines = IRIS_SPEC.splitlines()

    def text_at(path: list[str | int], key: bool = False) -> str:
        line, col = document.locate(path, key=key)
        return lines[line - 1][col - 1 :]

    assert text_at(["spec", "model", "sha256"]).startswith("8698570b")
    assert text_at(["spec", "model", "sha256"], key=True).startswith("sha256:")
    assert text_at(["spec", "model"]).startswith("model:")  # a mapping is shown at its key
    assert text_at(["spec", "environments", 1]).startswith("production")
    assert text_at(["spec", "smoke", "requests", 1, "name"]).startswith("three-species")
    assert text_at(["spec", "model", "nope"]).startswith("model:")  # missing: nearest parent
    assert document.locate([]) == (2, 1)  # the root mapping starts after the schema comment

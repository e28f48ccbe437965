"""Answers kept for one run (validator/memo.py): a spec that names a shared artifact or model
card has it read once per run, and a second run in the same process sees what changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from validator import memo
from validator.check import workspace

from .conftest import IRIS_ARTIFACT, Scaffold


def test_an_answer_is_computed_once_per_run_and_not_kept_after_it() -> None:
    calls: list[str] = []

    def ask() -> int:
        calls.append("asked")
        return len(calls)

    with memo.run():
        assert memo.remembered("kind", "key", ask) == 1
        assert memo.remembered("kind", "key", ask) == 1
        with memo.run():  # an inner run shares the outer run's answers
            assert memo.remembered("kind", "key", ask) == 1
        assert memo.remembered("other", "key", ask) == 2
    assert memo.remembered("kind", "key", ask) == 3  # outside a run: asked every time
    assert memo.remembered("kind", "key", ask) == 4


def test_a_refusal_is_remembered_like_an_answer() -> None:
    calls: list[str] = []

    def refuse() -> int:
        calls.append("asked")
        raise ValueError("unreadable")

    with memo.run():
        for _ in range(3):
            with pytest.raises(ValueError, match="unreadable"):
                memo.remembered("kind", "key", refuse)
    assert calls == ["asked"]


def _rules(root: Path, *files: Path) -> list[str]:
    return [d.rule for d in workspace.validate(files, root).diagnostics]


def test_a_second_validation_in_one_process_sees_the_edited_card_and_artifact(
    scaffold: Scaffold,
) -> None:
    scaffold.with_policies()
    specs = [scaffold.iris(f"iris-{n}") for n in range(3)]
    assert _rules(scaffold.root, *specs) == []
    card = scaffold.root / "docs" / "models" / "iris.md"
    card.write_text("# Iris\n", encoding="utf-8")  # every section gone
    (scaffold.root / IRIS_ARTIFACT).write_bytes(b"changed")
    again = _rules(scaffold.root, *specs)
    assert again.count("MG119") == 3  # the artifact differs from its digest, for each spec
    assert again.count("MG-CMP-004") == 3, again  # the card is incomplete, for each spec


def test_an_answer_about_an_object_is_kept_by_its_identity_not_its_equality() -> None:
    calls: list[dict] = []

    def ask(subject: dict) -> int:
        calls.append(subject)
        return len(calls)

    first, equal = {"a": 1}, {"a": 1}
    with memo.run():
        assert memo.remembered_for("kind", first, lambda: ask(first)) == 1
        assert memo.remembered_for("kind", first, lambda: ask(first)) == 1
        assert memo.remembered_for("kind", equal, lambda: ask(equal)) == 2

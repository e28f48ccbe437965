"""Every diagnostic code modelgate emits is described once (validator/codes.py, which the
reporters read) and documented in docs/spec.md."""

from __future__ import annotations

import re

from validator.codes import BUILTIN_RULES

from .conftest import PROJECT

CODE = re.compile(r"""["'](MG\d{3})["']""")


def codes_in_source() -> set[str]:
    found = set()
    for path in (PROJECT / "validator").rglob("*.py"):
        if path.name == "codes.py":
            continue
        found |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_code_the_source_uses_is_described() -> None:
    assert codes_in_source() - set(BUILTIN_RULES) == set()


def test_every_described_code_is_used() -> None:
    assert set(BUILTIN_RULES) - codes_in_source() == set()


def test_every_code_is_documented() -> None:
    page = (PROJECT / "docs" / "spec.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| (MG\d{3}) \|", page, re.M))
    assert set(BUILTIN_RULES) - documented == set()
    assert documented - set(BUILTIN_RULES) == set()

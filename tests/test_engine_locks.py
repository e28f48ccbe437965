"""Engine locks hold what their dependency groups resolve to (MG305-MG307); the repository
trees in tests/corpus/trees/engine-lock-*.yaml run the whole command on hostile locks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from validator.check import engine_locks

from .conftest import PROJECT


def test_the_projects_engine_locks_hold_what_their_groups_resolve_to() -> None:
    assert engine_locks.check(PROJECT) == []


def test_every_pin_of_every_engine_lock_is_read_with_its_graph() -> None:
    for path in sorted((PROJECT / "locks").glob("engine-*.txt")):
        text = path.read_text(encoding="utf-8")
        pins = engine_locks.parse(text)
        assert len(pins) == sum(1 for line in text.splitlines() if "==" in line and line[0] != " ")
        assert all(pin.hashes and pin.via for pin in pins), path.name


def test_a_via_list_over_several_lines_is_one_pins() -> None:
    text = (
        "anyio==4.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via\n"
        "    #   fastapi\n    #   starlette\n"
    )
    [pin] = engine_locks.parse(text)
    assert (pin.name, pin.version, pin.via) == ("anyio", "4.16.0", ["fastapi", "starlette"])


# --- every lock is what pyproject.toml resolves to (locks/update.py --check, PyPI) -----------

FORGED = (
    "six==1.17.0 \\\n    --hash=sha256:" + "4" * 64 + "\n    # via numpy\n"
)  # numpy needs no six: a package slipped in under a parent that does not pull it


def _checked(
    tmp_path: Path, edit: Callable[[Path], None] | None = None
) -> subprocess.CompletedProcess:
    """`locks/update.py --check` in a copy of pyproject.toml and locks/, edited by `edit`."""
    shutil.copy2(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PROJECT / "locks", tmp_path / "locks")
    if edit:
        edit(tmp_path / "locks")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "locks" / "update.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 2:
        pytest.skip(f"the package index cannot be reached: {done.stdout.strip()[:300]}")
    return done


def test_every_lock_is_what_its_inputs_resolve_to(tmp_path: Path) -> None:
    done = _checked(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_package_added_to_a_lock_by_hand_under_a_forged_via_is_refused(tmp_path: Path) -> None:
    def forge(locks: Path) -> None:
        lock = locks / "engine-triton.txt"
        text = lock.read_text(encoding="utf-8")
        assert "\nnumpy==" in text
        lock.write_text(text.replace("\nnumpy==", "\n" + FORGED + "numpy==", 1), encoding="utf-8")

    done = _checked(tmp_path, forge)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "locks/engine-triton.txt: not what pyproject.toml resolves to" in done.stdout
    assert "-six==1.17.0 \\" in done.stdout
    assert "run `make lock` and commit locks/" in done.stdout
    assert "locks/engine-kserve.txt" not in done.stdout  # the untouched locks agree

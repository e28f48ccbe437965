"""Engine locks hold what their dependency groups resolve to (MG305-MG307); the repository
trees in tests/corpus/trees/engine-lock-*.yaml run the whole command on hostile locks."""

from __future__ import annotations

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

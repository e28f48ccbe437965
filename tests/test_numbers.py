"""Numbers a spec may not hold: non-finite floats are refused by the loader (MG116), and every
number the schema knows is bounded, so nothing huge or undefined reaches a rendered manifest
or an engine."""

from __future__ import annotations

import math
from typing import Any

import pytest

from validator.check import load, schema

from .conftest import IRIS_SPEC, Scaffold, run_cli

HUGE = "12345678901234567890123"  # 23 digits: far past int64


def line_col(text: str, needle: str) -> tuple[int, int]:
    """Line and column (1-based) of the first occurrence of `needle`."""
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


@pytest.mark.parametrize(
    "spelling",
    [
        ".inf",
        ".Inf",
        ".INF",
        "+.inf",
        "-.inf",
        "-.Inf",
        "-.INF",
        ".nan",
        ".NaN",
        ".NAN",
        "1.0e+400",
        "-1.5e+999",
        "!!float inf",
        "!!float nan",
        "!!float '-1e999'",
    ],
)
def test_non_finite_floats_are_refused_at_their_position(spelling: str) -> None:
    text = f"a: 1\nb:\n  c: [1, {spelling}]\n"
    document, problems = load.load_bytes(text.encode(), "models/x.yaml")
    assert document is None
    [found] = problems
    assert (found.rule, found.line, found.col) == (load.NOT_FINITE, 3, 10)
    assert "not finite" in found.message and found.hint


@pytest.mark.parametrize("text", ["a: 1.0e+308\n", "a: -0.0\n", "a: 1e400\n", "a: '.inf'\n"])
def test_finite_floats_and_text_that_looks_like_infinity_load(text: str) -> None:
    document, problems = load.load_bytes(text.encode(), "models/x.yaml")
    assert problems == [] and document is not None
    value = document.data["a"]
    assert isinstance(value, str) or math.isfinite(value)


def _numeric_nodes(node: Any, where: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if any(kind in ("number", "integer") for kind in kinds):
            found.append((where, node))
        for key, sub in node.items():
            found += _numeric_nodes(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            found += _numeric_nodes(sub, f"{where}/{index}")
    return found


def test_every_number_in_the_schema_has_finite_bounds() -> None:
    unbounded = []
    for where, node in _numeric_nodes(schema.schema()):
        low = node.get("minimum", node.get("exclusiveMinimum", -math.inf))
        high = node.get("maximum", node.get("exclusiveMaximum", math.inf))
        if not -(2**63) <= low <= high < 2**63:  # int64 at most, and finite
            unbounded.append(where)
    assert unbounded == []


# iris scales on Seldon's own signal, so it has no scaling target: one is written in
TARGET = ("    maxReplicas: 3\n", "    maxReplicas: 3\n    target: {}\n")
BOUNDED = {  # field: (text in the iris spec, the same with {} where the number goes)
    "scaling.target": TARGET,
    "expect.maxLatencyMs": ("maxLatencyMs: 500", "maxLatencyMs: {}"),
    "expect.outputs[].min": ("min: 0, max: 2}", "min: {}, max: 2}"),
    "expect.outputs[].max": ("max: 2}", "max: {}}"),
    "expect.outputs[].shape": ("shape: [3, 1]", "shape: [3, {}]"),
    "requests.cpu": ("cpu: 250m", "cpu: {}"),
    "limits.memory": ("memory: 512Mi", "memory: {}"),
}


@pytest.mark.parametrize("field", sorted(BOUNDED))
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1.0e+300"])
def test_a_huge_number_is_a_located_schema_finding(field: str, value: str) -> None:
    old, new = BOUNDED[field]
    assert old in IRIS_SPEC
    written = new.replace("{}", value)
    text = IRIS_SPEC.replace(old, written, 1)
    document, problems = load.load_bytes(text.encode(), "models/iris.yaml")
    assert problems == [] and document is not None
    at_value = (schema.SCHEMA_VIOLATION, *value_position(text, written, new))
    assert at_value in [(d.rule, d.line, d.col) for d in schema.check(document)]


def value_position(text: str, written: str, new: str) -> tuple[int, int]:
    """Line and column where the {} of `new` landed, `new` written into `text` as `written`."""
    line, col = line_col(text, written)
    before = new[: new.index("{}")]
    if "\n" in before:
        return line + before.count("\n"), len(before.rsplit("\n", 1)[1]) + 1
    return line, col + len(before)


def with_user(uid: object) -> str:
    return IRIS_SPEC.replace("  compliance:", f"  security:\n    runAsUser: {uid}\n  compliance:")


def test_a_huge_user_id_is_a_located_schema_finding() -> None:
    text = with_user(HUGE)
    document, problems = load.load_bytes(text.encode(), "models/iris.yaml")
    assert problems == [] and document is not None
    found = [(d.rule, d.line, d.col) for d in schema.check(document)]
    assert found == [(schema.SCHEMA_VIOLATION, *line_col(text, HUGE))]


def test_the_largest_kubernetes_user_id_is_allowed_and_one_more_is_not() -> None:
    for uid, clean in ((2**31 - 1, True), (2**31, False)):
        text = with_user(uid)
        document, _ = load.load_bytes(text.encode(), "models/iris.yaml")
        assert document is not None
        assert (schema.check(document) == []) is clean, uid


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", HUGE])
def test_validate_and_render_refuse_and_never_fault(scaffold: Scaffold, value: str) -> None:
    spec = scaffold.iris(**{TARGET[0]: TARGET[1].replace("{}", value)})
    text = spec.read_text(encoding="utf-8")
    line, col = line_col(text, f"target: {value}")
    expected = f"models/iris.yaml:{line}:{col + len('target: ')}: "
    rule = "MG201" if value == HUGE else "MG116"
    root = str(scaffold.root)

    validated = run_cli("--root", root, "validate", str(spec))
    assert validated.code == 1, validated
    assert expected + rule in validated.out, validated.out

    for engine in ("mlserver", "kserve"):
        spec.write_text(text.replace("name: mlserver", f"name: {engine}"), encoding="utf-8")
        rendered = run_cli("--root", root, "render")
        assert rendered.code == 1, rendered
        assert "Traceback" not in rendered.out + rendered.err
        assert expected + rule in rendered.out + rendered.err
        assert not (scaffold.root / "rendered").exists(), "render wrote files"

"""Property-based fuzzing: the validator never raises, and a spec that validates renders.

`make test` runs a small, derandomised number of examples; `make fuzz` sets
MODELGATE_FUZZ_EXAMPLES (10,000 by default there) for a long run.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validator import render
from validator.check import load, policy, schema

from .conftest import IRIS_SPEC, PROJECT, assert_both_parsers_agree

EXAMPLES = int(os.environ.get("MODELGATE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="MODELGATE_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IRIS = yaml.safe_load(IRIS_SPEC)
POLICY, _ = policy.load_policy(PROJECT)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
yamlish = st.text(alphabet=st.sampled_from(list("ab:- []{}&*!|>'\"#%@`,?\n\t 01.~")), max_size=200)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


IRIS_PATHS = paths(IRIS)


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict:
    data = copy.deepcopy(IRIS)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(IRIS_PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "extra"]))
            if action == "replace":
                parent[path[-1]] = draw(json_values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped this path
    return data


def check(text: str) -> tuple[load.Document | None, list]:
    """load -> schema -> policy, as `modelgate validate` runs them on one file."""
    document, problems = load.load_text(text, "models/iris.yaml")
    if document is None:
        return None, problems
    problems = schema.check(document)
    if problems:
        return document, problems
    return document, policy.evaluate([document], POLICY, PROJECT)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    document, problems = load.load_bytes(raw, "models/x.yaml")
    assert document is not None or all(p.line >= 1 or p.rule == "MG111" for p in problems)


@FUZZ
@given(yamlish)
def test_random_yaml_text_never_raises(text: str) -> None:
    document, problems = load.load_text(text, "models/x.yaml")
    assert (document is None) == bool(problems)
    for problem in problems:
        assert problem.line >= 1 and problem.col >= 1


@FUZZ
@given(mutated_specs())
def test_mutated_specs_never_raise_and_valid_ones_render(data: dict) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    document, problems = check(text)
    for problem in problems:
        assert problem.line >= 1 and problem.col >= 1, problem
    if document is not None and not any(p.severity.value == "error" for p in problems):
        rendering = render.render_document(document, PROJECT)
        assert rendering.diagnostics == [], rendering.diagnostics
        for rendered in rendering.files:
            assert_both_parsers_agree(rendered)


@FUZZ
@given(st.lists(st.integers(0, len(IRIS_SPEC.splitlines()) - 1), min_size=1, max_size=3))
def test_duplicated_and_dropped_lines_never_raise(lines: list[int]) -> None:
    text = IRIS_SPEC.splitlines()
    for index in lines:
        at = index % len(text)
        if index % 2:
            text.insert(at, text[at])
        else:
            text.pop(at)
    check("\n".join(text) + "\n")


def test_make_fuzz_runs_these_properties_with_many_more_examples() -> None:
    """`make test` runs a fixed sample; `make fuzz` must reach this file with a larger one."""
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nfuzz:", 1)[1].split("\n\n", 1)[0]
    assert "MODELGATE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES)" in recipe
    assert f"tests/{Path(__file__).name}" in recipe
    configured = re.search(r"^FUZZ_EXAMPLES \?= (\d+)$", makefile, re.M)
    assert configured and int(configured[1]) >= 10 * EXAMPLES
    assert FUZZ.derandomize is ("MODELGATE_FUZZ_EXAMPLES" not in os.environ)

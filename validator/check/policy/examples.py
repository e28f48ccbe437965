"""Rule examples: JSON merge patches (RFC 7386) on the reference spec, turned into Documents,
and for output rules on the reference output (one spec's rendered objects), turned into
OutputObjects.

The same examples are the rules' tests and what `modelgate policies explain` shows.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .. import load
from .rendered import OutputObject

REFERENCE = Path(__file__).with_name("reference.yaml")


@cache
def _packaged(path: Path) -> dict[str, Any]:
    """A reference file shipped with the package (a spec, or rendered objects)."""
    document, problems = load.load_file(path)
    assert document is not None, problems
    return document.data


def reference() -> dict[str, Any]:
    return _packaged(REFERENCE)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def to_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def example_document(patch: dict[str, Any], name: str = "reference") -> load.Document:
    """The reference spec with `patch` applied, loaded back with positions."""
    data = merge_patch(reference(), patch)
    data["metadata"]["name"] = name
    document, problems = load.load_text(to_yaml(data), f"models/{name}.yaml")
    assert document is not None, problems
    return document


def parse_path(dotted: str) -> list[str | int]:
    """`spec.engine.env[0].value` -> ['spec', 'engine', 'env', 0, 'value']. A name with dots
    goes in brackets and quotes, `metadata.annotations["example.com/team"]` (its value), or
    in braces, `metadata.annotations{example.com/team}`, for the key itself (a Key: a finding
    about the key is shown where the key is written)."""
    parts: list[str | int] = []
    for name, index, quoted, key in re.findall(
        r'([^.\[\]{}"]+)|\[(\d+)\]|\["([^"]+)"\]|\{([^{}]+)\}', dotted
    ):
        parts.append(int(index) if index else quoted or (load.Key(key) if key else name))
    return parts


REFERENCE_OUTPUT = Path(__file__).with_name("reference_output.yaml")


def reference_output() -> dict[str, Any]:
    return _packaged(REFERENCE_OUTPUT)


def output_path(name: str) -> str:
    """Where the reference output's object `name` stands in rendered/."""
    if name == "compose":
        return "rendered/docker/reference/compose.yaml"
    if name == "applicationset":
        return "rendered/argocd/staging.yaml"
    if name == "appproject":
        return "rendered/staging/_rbac/argocd-appproject-ml-platform.yaml"
    if name == "admission":
        return "rendered/staging/_admission/reference.yaml"
    return f"rendered/staging/reference/{name}.yaml"


def example_objects(patch: dict[str, Any]) -> list[OutputObject]:
    """The reference output with `patch` applied, one object per remaining name."""
    data = merge_patch(reference_output(), patch)
    return [OutputObject(output_path(name), value) for name, value in data.items()]

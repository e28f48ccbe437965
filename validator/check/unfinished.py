"""Specs with placeholders left in them: values `modelgate new` (or a person) wrote for somebody
to replace. Such a spec renders and may even deploy, serving `TODO-org/NAME` at a revision of
zeros under a licence nobody named, so every placeholder is an error at its value, with what to
write there; a deploy to this machine only (the local and docker targets) is told of them as
warnings (cli/deploy.py). validator/check/placeholders.py holds the rule that recognises them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ..diagnostics import Diagnostic, Severity
from . import placeholders
from .load import Document, JsonPath
from .schema import dotted

PLACEHOLDER = "MG122"

# What to write in place of a placeholder, by the field's name; a field not named here is told
# to take its real value
WHAT_TO_WRITE = {
    "description": "what the model does and who uses it, in a sentence or two",
    "owner": "the accountable person or group's email",
    "team": "the team that runs the model (--team on `modelgate new`)",
    "contact": "an email, #chat-channel or https:// on-call link that answers",
    "artifact": "where the model really is: a path in this repository, or s3://, gs://, "
    "https://, oci://, hf://ORG/NAME",
    "sha256": "the artifact's digest: `modelgate hash ARTIFACT` prints the line",
    "treeSha256": "the artifact folder's digest: `modelgate hash FOLDER` prints the line",
    "revision": "the 40-hex commit of the Hugging Face repository that was reviewed",
    "image": "the real image, pinned by digest: REGISTRY/REPOSITORY@sha256:<64 hex>",
    "license": "the SPDX license expression of the model's weights, e.g. Apache-2.0",
    "runtime": "the module and class that serve the model, e.g. my_package.models.MyModel",
    "modelCard": "the path of the model card in this repository, or its URL",
}


def check(document: Document) -> list[Diagnostic]:
    """An error at every string value of the spec that is, or holds, a placeholder."""
    # most specs hold none: their text says so faster than a walk through their values (a
    # value written with YAML escapes is not looked for: placeholders are left, not hidden)
    if not placeholders.maybe_in(document.text):
        return []
    return [
        document.finding(path, PLACEHOLDER, _message(path, value, mark), _hint(path))
        for path, value, mark in _placeholders(document.data, [])
    ]


def as_warnings(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The placeholders among `diagnostics` as warnings: for a deploy to this machine, where
    nothing reaches a cluster."""
    return [
        replace(d, severity=Severity.WARNING) if d.rule == PLACEHOLDER else d for d in diagnostics
    ]


def _placeholders(node: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str, str]]:
    if _is_request_data(path):
        return  # what smoke requests send and expect is the model's data: "a TODO list" is text
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _placeholders(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _placeholders(value, [*path, index])
    elif isinstance(node, str) and (mark := placeholders.find(node)):
        yield path, node, mark


def _is_request_data(path: JsonPath) -> bool:
    return (
        len(path) >= 5
        and list(path[:3]) == ["spec", "smoke", "requests"]
        and path[4] in ("body", "expect")
    )


def _message(path: JsonPath, value: str, mark: str) -> str:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{dotted(list(path))} is a placeholder ({mark}), not a value: {shown}"


def _hint(path: JsonPath) -> str:
    field = next((part for part in reversed(path) if isinstance(part, str)), "")
    return "write " + WHAT_TO_WRITE.get(field, f"the real value of {field or 'the field'}")

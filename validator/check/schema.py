"""Check a loaded spec against the ModelDeployment JSON Schema (draft 2020-12)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, error
from . import compiled
from .load import Document, Key

SCHEMA_DIR = Path(__file__).parent.parent / "schemas"
SPEC_SCHEMA = "modeldeployment.v1alpha1"
SCHEMA_VIOLATION = "MG201"
UNKNOWN_FIELD = "MG202"
UNQUOTED_TEXT = "MG255"


@cache
def schema(name: str = SPEC_SCHEMA) -> dict[str, Any]:
    loaded = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if name == SPEC_SCHEMA:
        _name_the_engines(loaded)
    return loaded


def _name_the_engines(spec_schema: dict[str, Any]) -> None:
    """`spec.engine.name` and `spec.smoke.standIn.engine` take the names of the engine
    records (validator/engines/), and `spec.engine.deploymentMode` the modes of those with
    several to choose from."""
    from ..engines import ENGINES

    spec = spec_schema["properties"]["spec"]["properties"]
    engine = spec["engine"]["properties"]
    engine["name"]["enum"] = list(ENGINES)
    spec["smoke"]["properties"]["standIn"]["properties"]["engine"]["enum"] = list(ENGINES)
    modes = [mode for e in ENGINES.values() if len(e.modes) > 1 for mode in e.modes]
    engine["deploymentMode"]["enum"] = list(dict.fromkeys(modes))


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(name))


def check_compiled(name: str = SPEC_SCHEMA) -> None:
    """Compile the named schema's fast check now (see workspace._compile_before_forking)."""
    compiled.compiled(schema(name))


def check(document: Document, name: str = SPEC_SCHEMA) -> list[Diagnostic]:
    """All violations of the named schema, each at the line:col of the offending value."""
    if compiled.compiled(schema(name))(document.data):
        return []
    return violations(document, _validator(name))


def violations(document: Document, validator: Any) -> list[Diagnostic]:
    """Diagnostics for every error a JSON Schema validator finds in the document."""
    findings: list[Diagnostic] = []
    for failure in validator.iter_errors(document.data):
        findings.extend(_diagnose(document, failure))
    return findings


def failure_path(failure: Any) -> list[Any]:
    """Where a jsonschema error points: its instance's path, or for a mapping key that breaks
    `propertyNames`, that key (a Key: shown where the key is written)."""
    path = list(failure.absolute_path)
    if "propertyNames" in failure.absolute_schema_path and isinstance(failure.instance, str):
        path.append(Key(failure.instance))
    return path


def _diagnose(document: Document, failure: Any) -> Iterator[Diagnostic]:
    path = failure_path(failure)
    if failure.validator == "additionalProperties" and isinstance(failure.instance, dict):
        yield from _unknown_fields(document, path, failure)
        return
    line, col = document.locate(path)
    unquoted = _unquoted_text(document, path, failure)
    if unquoted:
        yield error(document.path, line, col, UNQUOTED_TEXT, *unquoted)
        return
    message = failure.schema.get("x-messages", {}).get(failure.validator) or failure.message
    yield error(
        document.path, line, col, SCHEMA_VIOLATION, f"{dotted(path)}: {message}", _hint(failure)
    )


def _unquoted_text(document: Document, path: list[Any], failure: Any) -> tuple[str, str] | None:
    """YAML 1.1 reads unquoted `1.10` as the number 1.1 and `off` as false: where text was
    expected, the message and hint of a value that is text only once quoted."""
    value = failure.instance
    if isinstance(value, str | dict | list) or not _wants_text(failure):
        return None
    written = document.plain_text(path)
    if not written:  # nothing written at all: no quoting would make it text
        return None
    field = path[-1] if path and isinstance(path[-1], str) else None
    quoted = json.dumps(written)
    return (
        f"{dotted(path)}: YAML reads the unquoted {written} as {_read_as(value)}, "
        "where text is expected: quote it",
        f"write {field}: {quoted}" if field else f"write {quoted}",
    )


def _wants_text(failure: Any) -> bool:
    if failure.validator == "type":
        expected = failure.validator_value
        return "string" in (expected if isinstance(expected, list) else [expected])
    if failure.validator in ("enum", "const"):
        allowed = failure.validator_value
        allowed = allowed if failure.validator == "enum" else [allowed]
        return bool(allowed) and all(isinstance(choice, str) for choice in allowed)
    return False


def _read_as(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    return f"the number {json.dumps(value)}"


def _unknown_fields(document: Document, path: list[Any], failure: Any) -> Iterator[Diagnostic]:
    known = list(failure.schema.get("properties", {}))
    for name in sorted(set(failure.instance) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed here: {', '.join(known)}"
        yield document.finding(
            [*path, name],
            UNKNOWN_FIELD,
            f"{dotted([*path, name])}: unknown field '{name}'",
            hint,
            key=True,
        )


def _hint(failure: Any) -> str:
    """The field's own description tells the user what a valid value looks like."""
    if failure.validator == "required":
        return "add the missing field"
    allowed = failure.schema.get("enum")
    if allowed and failure.validator == "enum":
        return "one of: " + ", ".join(map(str, allowed))
    described = failure.schema.get("description")
    if described:
        return described
    return f"see {dotted(list(failure.absolute_path))} in docs/spec.md"


def dotted(path: list[Any]) -> str:
    if not path:
        return "(document)"
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

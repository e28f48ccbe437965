"""Schema violations map back to the line and column of the offending value."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

from validator.check import load, schema

from .conftest import IRIS_SPEC


def findings(text: str) -> list[tuple[str, int, int, str, str]]:
    document, problems = load.load_bytes(text.encode(), "models/iris.yaml")
    assert problems == [] and document is not None
    return [(d.rule, d.line, d.col, d.message, d.hint) for d in schema.check(document)]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(schema.schema())


def test_every_field_has_a_description() -> None:
    missing: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{where}.{name}")
                walk(sub, f"{where}.{name}")
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key], f"{where}[]")

    walk(schema.schema(), "$")
    assert missing == []


def test_the_example_is_clean() -> None:
    assert findings(IRIS_SPEC) == []


def test_a_wrong_value_points_at_the_value() -> None:
    text = IRIS_SPEC.replace("sha256: 869857", "sha256: XX9857")
    [(rule, line, col, message, hint)] = findings(text)
    assert (rule, line, col) == (schema.SCHEMA_VIOLATION, line_of(text, "sha256:"), 13)
    assert message.startswith("spec.model.sha256:")
    assert "SHA-256" in hint


def test_a_wrong_enum_lists_the_choices() -> None:
    text = IRIS_SPEC.replace("protocol: v2", "protocol: grpc")
    [(rule, line, col, message, hint)] = findings(text)
    assert (rule, line, col) == (schema.SCHEMA_VIOLATION, line_of(text, "protocol:"), 15)
    assert "spec.engine.protocol" in message and hint == "one of: v2, v1, openai"


def test_an_unquoted_version_yaml_reads_as_a_number_says_quote_it() -> None:
    text = IRIS_SPEC.replace('version: "1.0.0"', "version: 1.10")
    [(rule, line, col, message, hint)] = findings(text)
    assert (rule, line, col) == (schema.UNQUOTED_TEXT, line_of(text, "version: 1.10"), 14)
    assert message == (
        "spec.model.version: YAML reads the unquoted 1.10 as the number 1.1, where text is "
        "expected: quote it"
    )
    assert hint == 'write version: "1.10"'


def test_an_unquoted_off_yaml_reads_as_false_says_quote_it() -> None:
    text = IRIS_SPEC.replace("domain: botany", "domain: off")
    [(rule, line, col, message, hint)] = findings(text)
    assert (rule, line, col) == (schema.UNQUOTED_TEXT, line_of(text, "domain: off"), 13)
    assert "unquoted off as the boolean false" in message and hint == 'write domain: "off"'


def test_a_number_behind_a_tag_or_in_a_number_field_is_no_quoting_slip() -> None:
    tagged = IRIS_SPEC.replace('version: "1.0.0"', "version: !!float 1.10")
    assert [f[0] for f in findings(tagged)] == [schema.SCHEMA_VIOLATION]
    text = IRIS_SPEC.replace("minReplicas: 2", "minReplicas: off")
    assert [f[0] for f in findings(text)] == [schema.SCHEMA_VIOLATION]
    empty = IRIS_SPEC.replace("domain: botany", "domain:")
    assert [f[0] for f in findings(empty)] == [schema.SCHEMA_VIOLATION]


def test_an_unknown_field_points_at_its_key_and_suggests_the_right_one() -> None:
    text = IRIS_SPEC.replace("    format: sklearn", "    fromat: sklearn")
    found = findings(text)
    unknown = [f for f in found if f[0] == schema.UNKNOWN_FIELD]
    assert [(f[1], f[2]) for f in unknown] == [(line_of(text, "fromat:"), 5)]
    assert unknown[0][4] == "did you mean 'format'?"
    missing = [f for f in found if f[0] == schema.SCHEMA_VIOLATION]
    assert missing and "'format' is a required property" in missing[0][3]
    assert missing[0][1] == line_of(text, "  model:")  # a missing key points at its parent


def test_image_and_artifact_together_are_refused_with_a_plain_message() -> None:
    text = IRIS_SPEC.replace(
        "    format: sklearn",
        "    image: registry.local/iris@sha256:" + "a" * 64 + "\n    format: sklearn",
    )
    [(rule, line, _, message, _)] = findings(text)
    assert rule == schema.SCHEMA_VIOLATION and line == line_of(text, "  model:")
    assert message == "spec.model: set exactly one of 'image' or 'artifact'"


def test_a_bad_list_item_points_into_the_list() -> None:
    text = IRIS_SPEC.replace("[staging, production]", "[staging, Production]")
    [(_, line, col, message, _)] = findings(text)
    assert (line, col) == (line_of(text, "environments:"), 27)
    assert message.startswith("spec.environments[1]:")


def test_wrong_top_level_values() -> None:
    text = IRIS_SPEC.replace("kind: ModelDeployment", "kind: Deployment")
    [(_, line, col, message, _)] = findings(text)
    assert (line, col, message) == (3, 7, "kind: 'ModelDeployment' was expected")


def test_invalid_name_is_located() -> None:
    text = IRIS_SPEC.replace("name: iris", "name: Iris_Model")
    [(_, line, col, message, hint)] = findings(text)
    assert (line, col) == (5, 9) and message.startswith("metadata.name:")
    assert "DNS-1123" in hint


def test_checking_never_changes_the_data() -> None:
    # fastjsonschema fills in `default`s unless told not to; policies must see the spec as written
    text = IRIS_SPEC.replace("          status: 200\n", "").replace(
        "    visibility: internal\n", ""
    )
    document, _ = load.load_bytes(text.encode(), "models/iris.yaml")
    assert document is not None
    before = copy.deepcopy(document.data)
    assert schema.check(document) == []
    assert document.data == before

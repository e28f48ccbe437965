"""MG-SEC-030 reads mapping keys as well as values: a token used as a label name would land in
every rendered manifest, and one used as a key of a smoke request body in git history."""

from __future__ import annotations

import shutil

import pytest

from validator.check import load, policy

from .conftest import IRIS_SPEC, PROJECT, Scaffold, run_cli

BUILTIN = policy.load_policy(PROJECT)[0]
TOKENS = {
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "huggingface": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
}


def secret_findings(text: str) -> list[tuple[int, int, str]]:
    document, problems = load.load_bytes(text.encode(), "models/iris.yaml")
    assert problems == [] and document is not None
    found = policy.evaluate([document], BUILTIN, PROJECT)
    return [(d.line, d.col, d.message) for d in found if d.rule == "MG-SEC-030"]


def position(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_a_token_as_a_label_key_is_found_at_the_key(kind: str) -> None:
    token = TOKENS[kind]
    text = IRIS_SPEC.replace("    domain: botany\n", f"    domain: botany\n    {token}: x\n")
    [(line, col, message)] = secret_findings(text)
    assert (line, col) == position(text, token)
    assert "metadata.labels" in message and token not in message


def test_a_token_as_a_key_deep_in_a_request_body_is_found_at_the_key() -> None:
    token = TOKENS["github"]
    text = IRIS_SPEC.replace(
        "datatype: FP64, data: [5.1, 3.5, 1.4, 0.2]}",
        f"datatype: FP64, data: [5.1, 3.5, 1.4, 0.2], parameters: {{{token}: 1}}}}",
    )
    [(line, col, message)] = secret_findings(text)
    assert (line, col) == position(text, token)
    assert "a key of spec.smoke.requests[0].body.inputs[0].parameters holds" in message


def test_an_escaped_token_in_a_key_is_found() -> None:
    token = TOKENS["aws"]
    escaped = "\\x41" + token[1:]  # YAML decodes "\x41KIA..." to "AKIA...": still a token
    text = IRIS_SPEC.replace("    domain: botany\n", f'    domain: botany\n    "{escaped}": x\n')
    [(line, col, _)] = secret_findings(text)
    assert (line, col) == position(text, f'"{escaped}"')


def test_plain_keys_pass() -> None:
    assert secret_findings(IRIS_SPEC) == []


def test_validate_and_render_refuse_a_token_key(scaffold: Scaffold) -> None:
    token = TOKENS["aws"]
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    spec = scaffold.iris(**{"    domain: botany\n": f"    domain: botany\n    {token}: x\n"})
    line, col = position(spec.read_text(encoding="utf-8"), token)
    root = str(scaffold.root)
    validated = run_cli("--root", root, "validate", str(spec))
    assert validated.code == 1
    assert f"models/iris.yaml:{line}:{col}: MG-SEC-030" in validated.out
    rendered = run_cli("--root", root, "render")
    assert rendered.code == 1
    assert not (scaffold.root / "rendered").exists(), "the token reached rendered files"
    assert token not in validated.out + validated.err + rendered.out + rendered.err

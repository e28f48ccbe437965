"""Every image that reaches a cluster is pinned by digest: engine images through the `images`
section of templates/values.yaml (MG410, MG411), written by `modelgate images pin` from a real
registry (Debian's docker-registry, started here on a port of its own); a spec's own engine
image through MG-SEC-001/002."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator.check import load
from validator.render import images
from validator.render import registry as registry_client

from . import registry_env
from .conftest import PROJECT, Scaffold, run_cli

MIRROR_LINE = "imageMirror: registry.example.com/mirror\n"
CHAT = (PROJECT / "models" / "chat-assistant.yaml").read_text(encoding="utf-8")
FRAUD = (PROJECT / "models" / "fraud-onnx.yaml").read_text(encoding="utf-8")
# what the scaffold's specs (chat-assistant: vllm 0.6.3, fraud-onnx: triton 24.08) and the
# engine records' default versions (llama.cpp's b6000 among them) render
WANTED = (
    "ggml-org/llama.cpp:server-b6000",
    "huggingface/text-generation-inference:2.4.0",
    "kserve/storage-initializer:v0.14.0",
    "library/python:3.12-slim",
    "nvidia/tritonserver:24.08-py3",
    "vllm/vllm-openai:v0.6.3",
)


def values_path(scaffold: Scaffold) -> Path:
    return scaffold.root / "templates" / "values.yaml"


def mirrored_repository(scaffold: Scaffold, host: str, path: str) -> None:
    """The scaffold with chat-assistant and fraud-onnx, its mirror on `host`/`path`."""
    scaffold.write_spec("chat-assistant", CHAT)
    scaffold.write_spec("fraud-onnx", FRAUD)
    values = values_path(scaffold)
    text = values.read_text(encoding="utf-8")
    assert MIRROR_LINE in text
    values.write_text(text.replace(MIRROR_LINE, f"imageMirror: {host}/{path}\n"), encoding="utf-8")


def push_wanted(registry: registry_env.Registry, path: str) -> dict[str, str]:
    """Every wanted image into the registry under `path`: vLLM as an index of two platforms."""
    pushed = {}
    for reference in WANTED:
        name, tag = reference.rsplit(":", 1)
        if name.startswith("vllm/"):
            pushed[reference] = registry.push_index(f"{path}/{name}", tag, f"{path} {reference}")
        else:
            pushed[reference], _ = registry.push_image(f"{path}/{name}", tag, f"{path} {reference}")
    return pushed


def outside_images(text: str) -> list[str]:
    """The lines of values.yaml outside the images section (its key and indented entries)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("images:"):
            inside = True
            continue
        if inside and line.startswith("  "):
            continue
        inside = False
        kept.append(line)
    return kept


def images_section(pins: dict[str, str]) -> str:
    return "images:\n" + "".join(f"  {ref}: {digest}\n" for ref, digest in sorted(pins.items()))


def modelgate(scaffold: Scaffold, *args: str) -> Any:
    return run_cli("--root", str(scaffold.root), *args, cwd=scaffold.root)


def rendered_images(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "rendered").rglob("*.yaml")):
        found.extend(images.named_images(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return found


# -- modelgate images pin, against a real registry -------------------------------------------


def test_pin_writes_the_pushed_digests_and_nothing_else(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    mirrored_repository(scaffold, registry.host, "pin-once")
    pushed = push_wanted(registry, "pin-once")
    before = values_path(scaffold).read_text(encoding="utf-8")

    result = modelgate(scaffold, "images", "pin")

    assert result.code == 0, result.err
    after = values_path(scaffold).read_text(encoding="utf-8")
    assert outside_images(after) == outside_images(before)
    assert images_section(pushed) in after
    assert after.replace(images_section(pushed), "") == "".join(outside_images(before))
    assert "6 engine image(s) pinned in templates/values.yaml, 6 changed" in result.out
    rendered = modelgate(scaffold, "render")
    assert rendered.code == 0, rendered.err
    chat = (scaffold.root / "rendered/staging/chat-assistant/deployment.yaml").read_text()
    vllm = "vllm/vllm-openai:v0.6.3"
    assert f'image: "{registry.host}/pin-once/{vllm}@{pushed[vllm]}"' in chat
    fraud = (scaffold.root / "rendered/production/fraud-onnx/deployment.yaml").read_text()
    for reference in ("nvidia/tritonserver:24.08-py3", "kserve/storage-initializer:v0.14.0"):
        assert f'image: "{registry.host}/pin-once/{reference}@{pushed[reference]}"' in fraud
    assert modelgate(scaffold, "images", "list").code == 0
    again = modelgate(scaffold, "images", "pin")
    assert again.code == 0 and "0 changed" in again.out, again.out + again.err
    assert values_path(scaffold).read_text(encoding="utf-8") == after


def test_pin_follows_a_tag_moved_to_a_new_manifest(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    mirrored_repository(scaffold, registry.host, "moved")
    pushed = push_wanted(registry, "moved")
    assert modelgate(scaffold, "images", "pin").code == 0
    vllm = "vllm/vllm-openai:v0.6.3"
    moved = registry.push_index("moved/vllm/vllm-openai", "v0.6.3", "a rebuilt image")
    assert moved != pushed[vllm]
    pinned = values_path(scaffold).read_text(encoding="utf-8")

    check = modelgate(scaffold, "images", "pin", "--check")

    assert check.code == 1
    assert f"MG413 the pin of {vllm} is {pushed[vllm]}, but the mirror now serves {moved}" in (
        check.err
    )
    assert values_path(scaffold).read_text(encoding="utf-8") == pinned
    result = modelgate(scaffold, "images", "pin")
    assert result.code == 0, result.err
    assert f"pinned {vllm} {moved} (was {pushed[vllm]})" in result.out
    assert images_section({**pushed, vllm: moved}) in values_path(scaffold).read_text()
    assert modelgate(scaffold, "images", "pin", "--check").code == 0


def test_an_unknown_tag_is_a_finding_and_nothing_is_written(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    mirrored_repository(scaffold, registry.host, "unknown")
    push_wanted(registry, "unknown")
    scaffold.write_spec(
        "chat-assistant", CHAT.replace("version: 0.6.3", "version: 0.6.4")
    )  # a version the mirror does not hold
    before = values_path(scaffold).read_bytes()

    result = modelgate(scaffold, "images", "pin")

    assert result.code == 1
    assert re.search(
        r"templates/values\.yaml:\d+:\d+: MG412 cannot pin vllm/vllm-openai:v0\.6\.4: "
        rf"{re.escape(registry.host)}/unknown/vllm/vllm-openai:v0\.6\.4 is unknown to the "
        r"registry \(MANIFEST_UNKNOWN: manifest unknown\)",
        result.err,
    ), result.err
    assert "nothing written" in result.err and "Traceback" not in result.err
    assert values_path(scaffold).read_bytes() == before


def test_a_stopped_registry_is_a_finding_without_a_traceback(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    try:
        stopped = registry_env.start(tmp_path / "registry")
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    mirrored_repository(scaffold, stopped.host, "gone")
    push_wanted(stopped, "gone")
    stopped.stop()
    before = values_path(scaffold).read_bytes()

    result = modelgate(scaffold, "images", "pin")

    assert result.code == 1
    line = _line_of(before.decode(), f"imageMirror: {stopped.host}/gone")
    assert f"templates/values.yaml:{line}:14: MG412 {stopped.host} is unreachable" in result.err
    assert "Connection refused" in result.err and "Traceback" not in result.err
    assert result.err.count("MG412") == 1, result.err  # not once more per image
    assert values_path(scaffold).read_bytes() == before


def test_pin_answers_the_bearer_token_challenge(scaffold: Scaffold, tmp_path: Path) -> None:
    try:
        guarded = registry_env.start(tmp_path / "registry", token_auth=True)
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        mirrored_repository(scaffold, guarded.host, "guarded")
        pushed = push_wanted(guarded, "guarded")
        assert guarded.tokens is not None
        guarded.tokens.requests.clear()

        result = modelgate(scaffold, "images", "pin")

        assert result.code == 0, result.err
        assert images_section(pushed) in values_path(scaffold).read_text(encoding="utf-8")
        asked = [request["scope"] for request in guarded.tokens.requests]
        assert ["repository:guarded/vllm/vllm-openai:pull"] in asked, asked
        assert all(
            request["service"] == [registry_env.SERVICE] for request in guarded.tokens.requests
        )

        guarded.tokens.grant = False  # the token service now grants nothing
        refused = modelgate(scaffold, "images", "pin", "--check")
        assert refused.code == 1
        assert f"{guarded.host} refused anonymous pull access to guarded/" in refused.err
        assert "Traceback" not in refused.err
    finally:
        guarded.stop()


def test_a_token_realm_over_plain_http_to_another_host_is_refused(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    try:
        guarded = registry_env.start(
            tmp_path / "registry", token_auth=True, realm="http://tokens.example.com/token"
        )
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        mirrored_repository(scaffold, guarded.host, "realm")
        result = modelgate(scaffold, "images", "pin")
    finally:
        guarded.stop()
    assert result.code == 1
    assert "refusing a token realm to http://tokens.example.com/token" in result.err, result.err


def test_plain_http_only_for_loopback_hosts() -> None:
    assert registry_client.base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_client.base_url("[::1]:5000") == "http://[::1]:5000"
    assert registry_client.base_url("localhost:5000") == "http://localhost:5000"
    for host in ("registry.example.com", "127.0.0.1.example.com", "10.0.0.1:5000"):
        assert registry_client.base_url(host) == f"https://{host}"


def test_a_digest_the_registry_declares_must_be_the_digest_of_the_bytes() -> None:
    body = b'{"schemaVersion": 2}'
    registry_client.check_declared_digest(body, "", "x")
    registry_client.check_declared_digest(body, "sha256:" + hashlib.sha256(body).hexdigest(), "x")
    with pytest.raises(registry_client.RegistryError, match="declares sha256:00"):
        registry_client.check_declared_digest(body, "sha256:" + "0" * 64, "mirror/x:1")


# -- render refuses what is not pinned; values.yaml's pins are checked -------------------------


def test_an_engine_version_without_a_pin_is_refused_at_render_where_the_spec_names_it(
    scaffold: Scaffold,
) -> None:
    text = CHAT.replace("version: 0.6.3", "version: 0.6.4")
    scaffold.write_spec("chat-assistant", text)

    result = modelgate(scaffold, "render")

    assert result.code == 1
    line = _line_of(text, "    version: 0.6.4")
    assert (
        f"models/chat-assistant.yaml:{line}:14: MG410 engine image vllm/vllm-openai:v0.6.4 has "
        "no digest pin in templates/values.yaml (images); run `modelgate images pin`"
    ) in result.err
    assert not (scaffold.root / "rendered" / "staging").exists()


def test_a_default_version_without_a_pin_is_refused_at_the_engine_name(
    scaffold: Scaffold,
) -> None:
    text = CHAT.replace("    version: 0.6.3\n", "")
    scaffold.write_spec("chat-assistant", text)
    _drop_pin(scaffold, "vllm/vllm-openai:v0.6.3")

    result = modelgate(scaffold, "render")

    assert result.code == 1
    assert (
        f"models/chat-assistant.yaml:{_line_of(text, '    name: vllm')}:11: MG410 engine image "
        "vllm/vllm-openai:v0.6.3 has no digest pin"
    ) in result.err


def test_the_storage_initializer_without_a_pin_is_refused(scaffold: Scaffold) -> None:
    scaffold.write_spec("fraud-onnx", FRAUD)
    _drop_pin(scaffold, "kserve/storage-initializer:v0.14.0")

    result = modelgate(scaffold, "render")

    assert result.code == 1
    assert (
        f"models/fraud-onnx.yaml:{_line_of(FRAUD, '    name: triton')}:11: MG410 storage "
        "initializer image kserve/storage-initializer:v0.14.0 has no digest pin"
    ) in result.err


def test_images_list_fails_on_an_image_without_a_pin(scaffold: Scaffold) -> None:
    scaffold.write_spec("chat-assistant", CHAT.replace("version: 0.6.3", "version: 0.6.4"))

    result = modelgate(scaffold, "images", "list")

    assert result.code == 1
    assert (
        "MG410 vllm/vllm-openai:v0.6.4 has no digest pin (needed by models/chat-assistant.yaml)"
        in (result.err)
    )
    assert "registry.example.com/mirror/vllm/vllm-openai:v0.6.4 not pinned" in result.out


@pytest.mark.parametrize(
    ("entry", "message", "column"),
    [
        ("  vllm/vllm-openai:v0.6.9: sha256:abc\n", "the pin of 'vllm/vllm-openai:v0.6.9' is "
         "'sha256:abc', not a digest", 28),
        (f"  vllm/vllm-openai:v0.6.9: sha256:{'A' * 64}\n", "not a digest", 28),
        (f"  vllm/vllm-openai: sha256:{'a' * 64}\n", "'vllm/vllm-openai' is not an image "
         "REPOSITORY:TAG", 3),
    ],
)  # fmt: skip
def test_a_pin_that_is_not_well_formed_is_refused_with_its_position(
    scaffold: Scaffold, entry: str, message: str, column: int
) -> None:
    scaffold.iris()
    values = values_path(scaffold)
    text = values.read_text(encoding="utf-8") + entry
    values.write_text(text, encoding="utf-8")

    result = modelgate(scaffold, "render")

    assert result.code == 1
    line = len(text.splitlines())
    assert f"templates/values.yaml:{line}:{column}: MG411 images: " in result.err
    assert message in result.err


def test_every_image_of_the_rendered_examples_is_pinned_by_digest() -> None:
    found = rendered_images(PROJECT)
    assert len(found) >= 6, found  # vLLM, Triton and its initializer, the KServe model image
    assert [image for image in found if not re.search(r"@sha256:[a-f0-9]{64}$", image)] == []


# -- a spec's own engine image is judged like its model image --------------------------------


def test_an_engine_image_by_tag_from_anywhere_is_refused(scaffold: Scaffold) -> None:
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    text = CHAT.replace(
        "    version: 0.6.3\n", "    version: 0.6.3\n    image: docker.io/attacker/vllm:latest\n"
    )
    scaffold.write_spec("chat-assistant", text)

    result = modelgate(scaffold, "validate", "--format", "json")

    assert result.code == 1
    line = _line_of(text, "    image: docker.io/attacker/vllm:latest")
    found = {
        (d["rule"], d["line"], d["col"])
        for d in json.loads(result.out)["diagnostics"]
        if d["rule"].startswith("MG-SEC-00")
    }
    assert found == {("MG-SEC-001", line, 12), ("MG-SEC-002", line, 12)}


# -- the section is rewritten in place ----------------------------------------------------------

DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _rewritten(text: str, pins: dict[str, str]) -> str:
    document, problems = load.load_text(text, "templates/values.yaml")
    assert document is not None and not problems, problems
    return images.rewrite(document, pins)


def test_rewrite_appends_a_section_where_there_is_none() -> None:
    text = "# values\nimageMirror: r.example.com/m  # the mirror\n"
    updated = _rewritten(text, {"b/b:2": DIGEST_B, "a/a:1": DIGEST_A})
    assert updated.startswith(text)
    assert updated.endswith(f"images:\n  a/a:1: {DIGEST_A}\n  b/b:2: {DIGEST_B}\n")


def test_rewrite_keeps_the_lines_around_the_section_byte_for_byte() -> None:
    before = "a: 1\r\nimages: {x/y:1: " + DIGEST_A + "}  # old\r\n\r\n# next\r\nz: 2\r\n"
    assert _rewritten(before, {"x/y:2": DIGEST_B}) == (
        f"a: 1\r\nimages:\r\n  x/y:2: {DIGEST_B}\r\n\r\n# next\r\nz: 2\r\n"
    )
    empty = "images:\n# about z\nz: 2\n"
    assert _rewritten(empty, {}) == "images: {}\n# about z\nz: 2\n"


def test_rewrite_quotes_a_reference_yaml_would_read_as_a_number() -> None:
    assert _rewritten("images: {}\n", {"1:30": DIGEST_A}) == f'images:\n  "1:30": {DIGEST_A}\n'


def _line_of(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


def _drop_pin(scaffold: Scaffold, reference: str) -> None:
    values = values_path(scaffold)
    kept = [
        line
        for line in values.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith(f"  {reference}: ")
    ]
    values.write_text("".join(kept), encoding="utf-8")

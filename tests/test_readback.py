"""Reading rendered files back: the fast YAML 1.2 parser is used only where it reads exactly
what the strict YAML 1.1 loader reads, and the strict loader decides everything else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from validator import render
from validator.check import load, workspace
from validator.render import encode, readback, templates

from .conftest import PROJECT, assert_both_parsers_agree

YAML_TEMPLATES = sorted(  # what renders YAML files, and the partials they include
    str(path.relative_to(PROJECT / "templates"))
    for path in (PROJECT / "templates").rglob("*.j2")
    if path.parts[-2] not in ("catalog", "new")
    and (path.name.endswith(".yaml.j2") or path.parts[-2] == "_k8s")
)


@pytest.mark.parametrize("name", YAML_TEMPLATES)
def test_every_render_template_may_use_the_fast_parser(name: str) -> None:
    """Otherwise rendering silently falls back to the slow parser for that template."""
    assert readback.template_is_plain_safe(templates.environment(PROJECT), name)


def test_every_rendered_example_reads_the_same_with_both_parsers() -> None:
    documents = workspace.validate(workspace.discover(PROJECT, []), PROJECT).valid_documents()
    files = render.render_all(documents, PROJECT).files
    assert len(files) > 20
    for rendered in files:
        assert_both_parsers_agree(rendered)


@pytest.mark.parametrize(
    "literal",
    [
        "readOnly: yes\n",  # a boolean in YAML 1.1, text in 1.2
        "enabled: On\n",
        "mode: 0755\n",  # octal in 1.1
        "timeout: 1e3\n",  # a number in 1.2 only
        "window: 12:30\n",  # sexagesimal in 1.1
        "base: &defaults {a: 1}\n",
        "copy: *defaults\n",
        "secret: !!binary aGk=\n",
        "%YAML 1.1\n",
        "---\nkind: Secret\n",
        "? complex\n: key\n",
        "note: |\n  block\n",
        'image: "repo:\x00"\n',  # an inserted value inside literal quotes: not escaped
        "name: prefix-\x00\n",  # literal text glued to an inserted value
        "tab:\tvalue\n",
        "<<: {a: 1}\n",
        "ports:\n  8080: http\n",  # the strict loader keeps keys as text, yaml-rs makes 8080
        "{true: x}\n",
    ],
)
def test_literal_text_the_parsers_could_read_differently_is_refused(literal: str) -> None:
    assert not readback.literal_is_plain_safe(literal)


@pytest.mark.parametrize(
    "literal",
    [
        'apiVersion: "apps/v1"\nkind: Deployment\n',
        "spec:\n  replicas: \x00\n  paused: false\n  ratio: 0.5\n",
        "labels:\x00\n",  # toyaml starts its output with a space or a line break
        '# Generated from \x00; do not edit: run `modelgate render`.\nkind: "Service"\n',
        '- {name: "tmp", mountPath: "/tmp"}\n',
        'say: "yes: 0755 &x *y !z"\n',  # indicators inside quotes are text
    ],
)
def test_plain_literal_text_is_accepted(literal: str) -> None:
    assert readback.literal_is_plain_safe(literal)


def test_a_template_that_uses_an_unsafe_one_is_unsafe(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    (folder / "x").mkdir(parents=True)
    (folder / "x/base.j2").write_text("{% macro m() %}flag: yes\n{% endmacro %}\n")
    (folder / "x/user.yaml.j2").write_text('{% import "x/base.j2" as b %}\n{{ b.m() }}\n')
    (folder / "x/alone.yaml.j2").write_text("flag: true\nname: {{ v.name | tojson }}\n")
    (folder / "x/raw.yaml.j2").write_text("name: {{ v.name }}\n")  # a value not escaped
    environment = templates.environment(tmp_path)
    assert not readback.template_is_plain_safe(environment, "x/user.yaml.j2")
    assert readback.template_is_plain_safe(environment, "x/alone.yaml.j2")
    assert not readback.template_is_plain_safe(environment, "x/raw.yaml.j2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: &x 1\nb: *x\n", "anchor 'x' is not allowed"),
        ("a: [1,\n", "invalid YAML"),
        ("a: 'x\u2028y'\n", None),  # raw line separator: the strict loader reads it
    ],
)
def test_what_the_fast_parser_refuses_the_strict_loader_explains(
    text: str, message: str | None
) -> None:
    data, problem = readback.read_back(text, "rendered/x.yaml", plain_safe="&" not in text)
    strict, _ = load.load_text(text, "rendered/x.yaml")
    if message is None:
        assert problem is None and strict is not None and data == strict.data
    else:
        assert data is None and problem is not None and message in problem, problem


def test_templates_not_known_to_be_plain_are_read_by_the_strict_loader() -> None:
    """yaml-rs would read `on` as text; the strict loader reads YAML 1.1's boolean."""
    data, problem = readback.read_back("flag: on\n", "rendered/x.yaml", plain_safe=False)
    assert problem is None and data == {"flag": True}


@pytest.mark.parametrize("value", [1e20, -3e300, 1.5e-07, 0.5, 2.0, 10**20, True, None])
def test_numbers_are_written_so_both_yaml_versions_read_the_same_value(value: object) -> None:
    text = f"k: {encode.scalar(value)}\n"
    strict = yaml.load(text, Loader=yaml.CSafeLoader)["k"]
    fast, problem = readback.read_back(text, "x.yaml", plain_safe=True)
    assert problem is None and fast is not None
    assert strict == value == fast["k"] and type(strict) is type(fast["k"])


def test_an_edited_template_is_used_by_the_next_run_of_the_same_process(tmp_path: Path) -> None:
    for part in ("models", "templates", "policies", "docs/models"):
        shutil.copytree(PROJECT / part, tmp_path / part)
    documents = workspace.validate(workspace.discover(tmp_path, []), tmp_path).valid_documents()
    before = render.render_all(documents, tmp_path)
    service = tmp_path / "templates/_k8s/service.yaml.j2"
    service.write_text(service.read_text() + "# edited\n")
    after = render.render_all(documents, tmp_path)
    edited = [f for f in after.files if f.path.name == "service.yaml"]
    assert edited and all(f.content.endswith("# edited\n") for f in edited)
    assert len(after.files) == len(before.files)


def test_render_works_and_agrees_when_the_cache_cannot_be_written(tmp_path: Path) -> None:
    """The caches only save time: a cache path that is a file leaves the output unchanged."""
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    env = {**os.environ, "MODELGATE_CACHE_DIR": str(blocked)}
    done = subprocess.run(
        [sys.executable, "-m", "validator.cli", "render", "--check"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

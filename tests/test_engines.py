"""The engine records are the one place engine knowledge lives: everything that names
engines is derived from them, so adding an engine is a record and a templates folder."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from validator.check import policy, schema
from validator.cli import build_parser
from validator.engines import AUTOSCALERS, ENGINES, EVERY_FORMAT, Engine, policy_parameter
from validator.report.engine_table import capability_table, markdown_table

from .conftest import PROJECT

TEMPLATES = PROJECT / "templates"
NOT_ENGINES = {"argocd", "catalog", "new"}  # shared, ApplicationSets, catalog, `new`


def test_every_engine_folder_has_a_record_and_every_record_a_folder() -> None:
    folders = {
        path.name
        for path in TEMPLATES.iterdir()
        if path.is_dir() and not path.name.startswith("_") and path.name not in NOT_ENGINES
    }
    assert folders == set(ENGINES)


def test_every_template_a_record_names_exists() -> None:
    for engine in ENGINES.values():
        for template in engine.templates:
            assert (TEMPLATES / template).is_file(), f"{engine.name}: {template}"


def test_each_record_is_complete_and_consistent() -> None:
    for name, engine in ENGINES.items():
        assert engine.name == name and engine.summary and engine.protocols
        assert set(engine.formats) <= set(EVERY_FORMAT), name
        assert set(engine.runtimes) <= set(EVERY_FORMAT), name
        assert engine.local or engine.cluster, f"{name} renders nothing"
        if engine.image:
            assert "{version}" not in engine.image or engine.default_version, name


def test_the_schema_names_exactly_the_engines_and_formats() -> None:
    spec = schema.schema()["properties"]["spec"]["properties"]
    assert spec["engine"]["properties"]["name"]["enum"] == list(ENGINES)
    assert spec["model"]["properties"]["format"]["enum"] == list(EVERY_FORMAT)


def test_new_offers_exactly_the_engines_and_formats() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    new = {a.dest: a for a in commands["new"]._actions}
    assert list(new["engine"].choices) == sorted(ENGINES)
    assert list(new["model_format"].choices) == list(EVERY_FORMAT)


def test_the_policy_allow_list_defaults_to_the_records(tmp_path: Path) -> None:
    loaded, problems = policy.load_policy(tmp_path)  # no policies/: the built-in default
    assert problems == []
    assert loaded.parameters["engines"] == policy_parameter()
    project, problems = policy.load_policy(PROJECT)
    assert problems == []
    assert project.parameters["engines"] == policy_parameter()


def test_values_override_only_engines_that_exist() -> None:
    values = yaml.safe_load((TEMPLATES / "values.yaml").read_text(encoding="utf-8"))
    assert set(values.get("engines") or {}) <= set(ENGINES)


def test_the_docs_engine_table_is_made_from_the_records() -> None:
    page = (PROJECT / "docs" / "spec.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- engines:start -->\n(.*?)<!-- engines:end -->", page, re.S)
    assert table, "docs/spec.md lost its engine table markers"
    assert table[1] == markdown_table(), "paste `python -m validator.report.engine_table`"


def test_the_docs_capability_table_is_made_from_the_records() -> None:
    page = (PROJECT / "docs" / "spec.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- capabilities:start -->\n(.*?)<!-- capabilities:end -->", page, re.S)
    assert table, "docs/spec.md lost its capability table markers"
    assert table[1] == capability_table(), (
        "paste `python -m validator.report.engine_table capabilities`"
    )


def test_every_capability_record_is_consistent() -> None:
    for engine in ENGINES.values():
        assert engine.modes and engine.packaging, engine.name
        assert set(engine.packaging) <= {"artifact", "image"}, engine.name
        for name, mode in engine.modes.items():
            assert mode.autoscalers, (engine.name, name)
            named = [scaler.name for scaler in mode.autoscalers if scaler.name]
            assert len(named) == len(set(named)) and set(named) <= set(AUTOSCALERS)
            assert set(mode.overrides) <= {f.name for f in fields(Engine)}, (engine.name, name)
            for scaler in mode.autoscalers:
                assert scaler.autoscaler, (engine.name, name)
                assert set(scaler.whole_targets) <= set(scaler.metrics), (engine.name, name)
                assert scaler.target_max is None or scaler.metrics, (engine.name, name)


def test_the_schema_offers_exactly_the_modes_engines_choose_from() -> None:
    engine = schema.schema()["properties"]["spec"]["properties"]["engine"]["properties"]
    modes = {mode for e in ENGINES.values() if len(e.modes) > 1 for mode in e.modes}
    assert set(engine["deploymentMode"]["enum"]) == modes
    scaling = schema.schema()["properties"]["spec"]["properties"]["scaling"]["properties"]
    assert scaling["autoscaler"]["enum"] == list(AUTOSCALERS)


def test_no_engine_is_named_in_code_outside_its_record() -> None:
    """Engine knowledge outside validator/engines/ would have to change with a new engine."""
    quoted = re.compile(r"""["']({})["']""".format("|".join(ENGINES)))
    offenders = []
    for path in sorted((PROJECT / "validator").rglob("*.py")):
        if "engines" in path.relative_to(PROJECT / "validator").parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            # "docker" is also a target's name; targets are not engines
            names = set(quoted.findall(line)) - {"docker"}
            if names:
                offenders.append(f"{path.relative_to(PROJECT)}:{number}: {line.strip()}")
    assert offenders == []

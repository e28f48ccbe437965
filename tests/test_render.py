"""Rendering: real MLServer settings models accept the output; it is deterministic and
no value in a spec can change the structure of a rendered file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from validator import load, render

from .conftest import PROJECT, Scaffold, run_cli


def rendered_tree(root: Path) -> dict[str, bytes]:
    base = root / "rendered"
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def test_rendered_files_are_accepted_by_mlserver_itself(scaffold: Scaffold) -> None:
    settings_models = pytest.importorskip("mlserver.settings")
    scaffold.iris()
    assert run_cli("--root", str(scaffold.root), "render").code == 0
    out = scaffold.root / "rendered" / "local" / "iris"
    settings = settings_models.Settings.model_validate(
        json.loads((out / "settings.json").read_text())
    )
    assert settings.parallel_workers == 0 and settings.metrics_endpoint is None
    model = settings_models.ModelSettings.model_validate(
        json.loads((out / "model-settings.json").read_text())
    )
    assert model.name == "iris" and model.implementation_ == "mlserver_sklearn.SKLearnModel"
    assert (out / model.parameters.uri).resolve() == (
        scaffold.root / "models/artifacts/iris/model.joblib"
    )


def test_committed_rendered_tree_matches_the_specs(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for part in ("models", "templates"):
        shutil.copytree(PROJECT / part, copy / part)
    assert run_cli("--root", str(copy), "render").code == 0
    assert rendered_tree(copy) == rendered_tree(PROJECT)


def test_rendering_twice_is_byte_identical(scaffold: Scaffold) -> None:
    scaffold.iris()
    run_cli("--root", str(scaffold.root), "render")
    first = rendered_tree(scaffold.root)
    result = run_cli("--root", str(scaffold.root), "render")
    assert "(0 file(s) changed)" in result.out
    assert rendered_tree(scaffold.root) == first
    assert all(b"\r\n" not in content for content in first.values())


HOSTILE = [
    'evil"\n  "implementation": "os.system',
    "{{ 7 * 7 }}{% raw %}",
    "line\u2028separator\u2029and\x85next",
    "'; rm -rf / #",
    "---\nkind: Secret",
    "</script><!--",
    "x" * 4000,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_cannot_change_the_structure(scaffold: Scaffold, value: str) -> None:
    document, problems = load.load_text(
        scaffold.iris().read_text().replace('version: "1.0.0"', f"version: {json.dumps(value)}"),
        "models/iris.yaml",
    )
    assert problems == [] and document is not None
    files, problems = render.render_document(document, scaffold.root)
    assert problems == []
    model_settings = json.loads(
        next(f for f in files if f.path.name == "model-settings.json").content
    )
    assert model_settings == {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "../../../models/artifacts/iris/model.joblib", "version": value},
    }

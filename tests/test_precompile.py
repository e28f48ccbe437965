"""`make venv` compiles the schema checks that depend on modelgate alone (validator/
cli/precompile.py): a fresh CI runner then compiles only what its repository brings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from validator.render import kube_schemas

from .conftest import PROJECT


def builtin(api_version: str) -> bool:
    """A kind kube_schemas checks against the built-in Kubernetes schemas."""
    group = api_version.split("/")[0]
    return "." not in group or api_version.startswith(kube_schemas._BUILTIN_GROUPS)


def test_every_builtin_kind_the_templates_render_is_precompiled() -> None:
    rendered = set()
    for path in (PROJECT / "rendered").rglob("*.yaml"):
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "apiVersion" in manifest and builtin(manifest["apiVersion"]):  # not compose files
            rendered.add((manifest["apiVersion"], manifest["kind"]))
    assert rendered, "no built-in kind in rendered/"
    assert rendered <= set(kube_schemas.RENDERED_KINDS), rendered - set(kube_schemas.RENDERED_KINDS)


def test_precompiling_fills_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "validator.cli.precompile"],
        cwd=PROJECT,
        env={"MODELGATE_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    entries = sorted(path.name for path in cache.iterdir())
    # the spec, policy set and waivers schemas, and one check per rendered kind
    assert len([name for name in entries if name.startswith("schema-")]) >= 3 + len(
        kube_schemas.RENDERED_KINDS
    ), entries

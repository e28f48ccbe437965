"""Render validated specs into rendered/<target>/<name>/ through the engine's Jinja2 templates.

Templates are an attack surface: they run in Jinja's sandbox with StrictUndefined, every value
reaches them through `tojson`, and every rendered file is parsed back and checked before it is
written, so a value in a spec can never change the structure of a rendered file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from .diagnostics import Diagnostic, error
from .engines import ENGINES, runtime_for
from .load import Document

RENDERED_DIR = "rendered"
TEMPLATE_DIR = "templates"
TEMPLATE_ERROR = "MG401"
NO_RUNTIME = "MG402"
RENDERED_INVALID = "MG403"


@dataclass(frozen=True)
class RenderedFile:
    path: PurePosixPath  # relative to the repository root, e.g. rendered/local/iris/settings.json
    content: str


def rendered_dir(target: str, name: str) -> PurePosixPath:
    return PurePosixPath(RENDERED_DIR, target, name)


def render_document(document: Document, root: Path) -> tuple[list[RenderedFile], list[Diagnostic]]:
    """Every file the document's engine renders, for every target the engine supports."""
    spec = document.data["spec"]
    engine = ENGINES[spec["engine"]["name"]]
    files: list[RenderedFile] = []
    problems: list[Diagnostic] = []
    for target, templates in sorted(engine.templates.items()):
        out_dir = rendered_dir(target, document.data["metadata"]["name"])
        context, missing = _context(document, root, out_dir)
        if missing:
            return [], [missing]
        for template in templates:
            rendered, problem = _render_one(document, root, engine.name, template, context, out_dir)
            if problem:
                problems.append(problem)
            else:
                files.append(rendered)
    return files, problems


def write(files: list[RenderedFile], root: Path) -> list[PurePosixPath]:
    """Write files whose content changed; returns the paths that were (re)written."""
    written = []
    for item in files:
        target = root / item.path
        if target.is_file() and target.read_text(encoding="utf-8") == item.content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(item.content)
        written.append(item.path)
    return written


def _context(
    document: Document, root: Path, out_dir: PurePosixPath
) -> tuple[dict[str, Any], Diagnostic | None]:
    data = document.data
    spec = data["spec"]
    runtime = runtime_for(spec)
    if runtime is None:
        line, col = document.locate(["spec", "engine"])
        return {}, error(
            document.path,
            line,
            col,
            NO_RUNTIME,
            f"engine {spec['engine']['name']} has no default runtime for "
            f"format {spec['model']['format']}",
            "set spec.engine.runtime to the implementation that loads this model",
        )
    model = spec["model"]
    return {
        "name": data["metadata"]["name"],
        "labels": data["metadata"].get("labels", {}),
        "implementation": runtime,
        "uri": _model_uri(model, out_dir),
        "version": model["version"],
        "spec": spec,
    }, None


def _model_uri(model: dict[str, Any], out_dir: PurePosixPath) -> str:
    """Repository paths become relative to the rendered folder, so rendered files are portable."""
    artifact = model.get("artifact") or model.get("image", "")
    if "://" in artifact or "image" in model:
        return artifact
    return os.path.relpath(PurePosixPath(artifact), out_dir).replace(os.sep, "/")


def _render_one(
    document: Document,
    root: Path,
    engine: str,
    template: str,
    context: dict[str, Any],
    out_dir: PurePosixPath,
) -> tuple[RenderedFile, Diagnostic | None]:
    from jinja2 import TemplateError

    output = out_dir / template.removesuffix(".j2")
    try:
        text = (
            _environment(str(root / TEMPLATE_DIR))
            .get_template(f"{engine}/{template}")
            .render(context)
        )
    except TemplateError as exc:
        return RenderedFile(output, ""), error(
            document.path,
            0,
            0,
            TEMPLATE_ERROR,
            f"template {engine}/{template} failed: {exc}",
            "fix the template; values reach it as `name | tojson`",
        )
    text = text.rstrip("\n") + "\n"
    problem = _parse_back(output, text)
    if problem:
        return RenderedFile(output, text), error(
            document.path,
            0,
            0,
            RENDERED_INVALID,
            f"{output} is not valid: {problem}",
            "a template produced a broken file; fix the template",
        )
    return RenderedFile(output, text), None


def _parse_back(output: PurePosixPath, text: str) -> str | None:
    if output.suffix == ".json":
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            return str(exc)
        return None if isinstance(parsed, dict) else "expected a JSON object"
    return None


@cache
def _environment(template_dir: str) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=FileSystemLoader(template_dir),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )

"""Render validated specs into rendered/ through the engines' Jinja2 templates.

    rendered/local/NAME/       MLServer settings for the local target
    rendered/ENV/NAME/         Kubernetes manifests, per environment of the spec
    rendered/docker/NAME/      compose file for specs whose model is an image
    rendered/argocd/ENV.yaml   one Argo CD ApplicationSet per environment

Templates are an attack surface: they run in Jinja's sandbox with StrictUndefined, every value
reaches them through `tojson` (or `toyaml`, which encodes every scalar the same way), and every
rendered file is parsed back and checked (Kubernetes schemas, CRD schemas, Triton's config
grammar) before it is written. Output is deterministic: sorted keys, no timestamps, LF endings.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from . import emit, kube, load, view
from .diagnostics import Diagnostic, Severity, error
from .engines import APPLICATIONSET_TEMPLATE, COMPOSE_TEMPLATE, ENGINES
from .load import Document

RENDERED_DIR = "rendered"
TEMPLATE_DIR = "templates"
VALUES_FILE = "values.yaml"
LOCAL, DOCKER, ARGOCD = "local", "docker", "argocd"
TEMPLATE_ERROR = "MG401"
NO_RUNTIME = "MG402"
RENDERED_INVALID = "MG403"
DRIFT = "MG404"
UNCHECKED = "MG405"


@dataclass(frozen=True)
class RenderedFile:
    path: PurePosixPath  # relative to the repository root, e.g. rendered/local/iris/settings.json
    content: str


@dataclass
class Rendering:
    files: list[RenderedFile] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)  # kinds no schema was supplied for

    def extend(self, other: Rendering) -> None:
        self.files.extend(other.files)
        self.diagnostics.extend(other.diagnostics)
        self.unchecked |= other.unchecked


def rendered_dir(target: str, name: str) -> PurePosixPath:
    return PurePosixPath(RENDERED_DIR, target, name)


def load_values(root: Path) -> dict[str, Any]:
    path = root / TEMPLATE_DIR / VALUES_FILE
    if not path.is_file():
        return {
            "namespace": "{environment}",
            "imageMirror": "",
            "artifactStore": "",
            "repoURL": "",
            "targetRevision": "main",
            "storageInitializer": "",
        }
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}


def render_all(
    documents: Iterable[Document], root: Path, schemas: kube.Schemas | None = None
) -> Rendering:
    """Every file the specs produce, the repository-wide ApplicationSets included."""
    documents = list(documents)
    values = load_values(root)
    result = Rendering()
    for part in _render_documents(documents, root, schemas, values):
        result.extend(part)
    for env_view in view.repository(documents, values)["applicationsets"]:
        output = PurePosixPath(RENDERED_DIR, ARGOCD, f"{env_view['environment']}.yaml")
        _render_into(result, None, root, APPLICATIONSET_TEMPLATE, {"a": env_view}, output, schemas)
    result.files.sort(key=lambda item: item.path)
    return result


PARALLEL_FROM = 64  # specs; below this a second process costs more than it saves
_ACTIVE: tuple[Path, kube.Schemas | None, dict[str, Any]] | None = None  # for forked workers


def _render_documents(
    documents: list[Document], root: Path, schemas: kube.Schemas | None, values: dict[str, Any]
) -> list[Rendering]:
    """render_document for each spec; large sets across processes (one per core, up to 4):
    specs render independently, and rendering and checking are CPU-bound."""
    global _ACTIVE
    workers = min(os.cpu_count() or 1, 4)
    if len(documents) < PARALLEL_FROM or workers < 2 or not hasattr(os, "fork"):
        return [render_document(d, root, schemas, values) for d in documents]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _ACTIVE = (root, schemas, values)
    try:
        chunks = [documents[start::workers] for start in range(workers)]
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return [part for chunk in pool.map(_render_chunk, chunks) for part in chunk]
    finally:
        _ACTIVE = None


def _render_chunk(documents: list[Document]) -> list[Rendering]:
    assert _ACTIVE is not None
    root, schemas, values = _ACTIVE
    return [render_document(document, root, schemas, values) for document in documents]


def render_document(
    document: Document,
    root: Path,
    schemas: kube.Schemas | None = None,
    values: dict[str, Any] | None = None,
    local_only: bool = False,
) -> Rendering:
    """The document's files; `local_only` for what the local target needs and nothing else."""
    values = load_values(root) if values is None else values
    spec = document.data["spec"]
    engine = ENGINES[spec["engine"]["name"]]
    name = document.data["metadata"]["name"]
    result = Rendering()
    if engine.local:
        if view.base(document)["runtime"] is None:
            result.diagnostics.append(
                document.finding(
                    ["spec", "engine"],
                    NO_RUNTIME,
                    f"engine {engine.name} has no default runtime for format "
                    f"{spec['model']['format']}",
                    "set spec.engine.runtime to the implementation that loads this model",
                )
            )
            return result
        out_dir = rendered_dir(LOCAL, name)
        context = {"v": view.local(document, out_dir)}
        for template in engine.local:
            _render_into(
                result, document, root, template, context, out_dir / _output(template), schemas
            )
    if local_only:
        return result
    for environment in spec["environments"]:
        out_dir = rendered_dir(environment, name)
        context = {"v": view.cluster(document, environment, values)}
        if engine.name == "triton":
            context["v"]["triton_config"] = _template(root, "triton/config.pbtxt.j2").render(
                context
            )
            _check_pbtxt(result, document, context["v"]["triton_config"])
        for template in engine.cluster:
            _render_into(
                result, document, root, template, context, out_dir / _output(template), schemas
            )
    if spec["model"].get("image"):
        out_dir = rendered_dir(DOCKER, name)
        _render_into(
            result,
            document,
            root,
            COMPOSE_TEMPLATE,
            {"v": view.docker(document)},
            out_dir / _output(COMPOSE_TEMPLATE),
            schemas,
        )
    return result


def write(files: list[RenderedFile], root: Path, prune: bool = False) -> tuple[list, list]:
    """Write files whose content changed; with `prune`, delete rendered files no spec makes.
    Returns (written, removed) paths."""
    written = []
    for item in files:
        target = root / item.path
        if target.is_file() and target.read_bytes() == item.content.encode("utf-8"):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(item.content)
        written.append(item.path)
    removed = []
    if prune:
        for orphan in orphans(files, root):
            (root / orphan).unlink()
            removed.append(orphan)
        _remove_empty_dirs(root / RENDERED_DIR)
    return written, removed


def orphans(files: list[RenderedFile], root: Path) -> list[PurePosixPath]:
    expected = {item.path for item in files}
    base = root / RENDERED_DIR
    present = (
        PurePosixPath(p.relative_to(root).as_posix()) for p in base.rglob("*") if p.is_file()
    )
    return sorted(path for path in present if path not in expected)


def drift(
    files: list[RenderedFile], root: Path, with_orphans: bool = True
) -> tuple[list[Diagnostic], str]:
    """Findings and a unified diff for every rendered file that differs from the specs:
    edited by hand, missing, or orphaned (its spec is gone)."""
    findings, diffs = [], []
    for item in files:
        target = root / item.path
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == item.content:
            continue
        state = "is missing" if current is None else "differs from what the specs render"
        findings.append(
            error(
                str(item.path),
                0,
                0,
                DRIFT,
                f"{item.path} {state}",
                "run `modelgate render` and commit rendered/",
            )
        )
        diffs.append(_diff(str(item.path), current or "", item.content))
    for orphan in orphans(files, root) if with_orphans else []:
        current = (root / orphan).read_text(encoding="utf-8", errors="replace")
        findings.append(
            error(
                str(orphan),
                0,
                0,
                DRIFT,
                f"{orphan} is orphaned: no spec renders it",
                "run `modelgate render` (it prunes orphans) and commit rendered/",
            )
        )
        diffs.append(_diff(str(orphan), current, ""))
    return findings, "".join(diffs)


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )


def _remove_empty_dirs(base: Path) -> None:
    for directory in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def _output(template: str) -> str:
    return PurePosixPath(template).name.removesuffix(".j2")


def _render_into(
    result: Rendering,
    document: Document | None,
    root: Path,
    template: str,
    context: dict[str, Any],
    output: PurePosixPath,
    schemas: kube.Schemas | None,
) -> None:
    from jinja2 import TemplateError

    source = document.path if document else str(output)
    try:
        text = _template(root, template).render(context)
    except TemplateError as exc:
        result.diagnostics.append(
            error(
                source,
                0,
                0,
                TEMPLATE_ERROR,
                f"template {template} failed: {exc}",
                "fix the template; values reach it through `tojson`",
            )
        )
        return
    text = text.rstrip("\n") + "\n"
    problem, unchecked = _parse_back(output, text, schemas or kube.Schemas())
    if problem:
        result.diagnostics.append(
            error(
                source,
                0,
                0,
                RENDERED_INVALID,
                f"{output} is not valid: {problem}",
                f"the template {template} produced a broken file; fix it",
            )
        )
        return
    if unchecked:
        result.unchecked.add(unchecked)
    result.files.append(RenderedFile(output, text))


def _parse_back(output: PurePosixPath, text: str, schemas: kube.Schemas) -> tuple[str | None, str]:
    """(problem, kind left unchecked for want of a schema)."""
    if output.suffix == ".json":
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            return str(exc), ""
        return (None if isinstance(parsed, dict) else "expected a JSON object"), ""
    # the spec loader: strict (one document, no anchors or tags) and 3x faster than yaml.load
    parsed, problems = load.load_text(text, str(output))
    if parsed is None:
        return f"not a single plain YAML mapping: {problems[0].message}", ""
    manifest = parsed.data
    if output.name == "compose.yaml":
        return (None if "services" in manifest else "a compose file needs services"), ""
    problem, found = kube.check(manifest, schemas)
    return problem, "" if found else f"{manifest.get('apiVersion')} {manifest.get('kind')}"


def _check_pbtxt(result: Rendering, document: Document, text: str) -> None:
    from .pbtxt import parse_error

    problem = parse_error(text)
    if problem:
        result.diagnostics.append(
            error(
                document.path,
                0,
                0,
                RENDERED_INVALID,
                f"triton config.pbtxt is not valid: {problem}",
                "fix templates/triton/config.pbtxt.j2",
            )
        )


def _template(root: Path, name: str) -> Any:
    return _environment(str(root / TEMPLATE_DIR)).get_template(name)


@cache
def _environment(template_dir: str) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(
        loader=FileSystemLoader(template_dir),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.policies["json.dumps_function"] = emit.scalar
    environment.policies["json.dumps_kwargs"] = {}
    environment.filters["toyaml"] = emit.block
    environment.filters["combine"] = lambda first, second: dict(sorted({**first, **second}.items()))
    environment.filters["pbtxt"] = _pbtxt_string
    return environment


def _pbtxt_string(value: Any) -> str:
    """A protobuf text-format string literal: C escapes, bytes outside printable ASCII octal."""
    out = []
    for byte in str(value).encode("utf-8"):
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def severity_note(rendering: Rendering) -> Diagnostic | None:
    """An info finding naming the custom resource kinds no schema was supplied for."""
    if not rendering.unchecked:
        return None
    kinds = ", ".join(sorted(rendering.unchecked))
    return Diagnostic(
        RENDERED_DIR,
        0,
        0,
        UNCHECKED,
        Severity.INFO,
        f"not checked against a schema (no CRD supplied): {kinds}",
        "pass --crds DIR with the CustomResourceDefinition files to check them",
    )

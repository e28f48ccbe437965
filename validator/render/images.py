"""Engine images pinned by digest: the `images` section of templates/values.yaml.

Engine records name their images as REPOSITORY:TAG under values.imageMirror (vLLM's
`vllm/vllm-openai:v{version}`), values.storageInitializer names the image that fetches a
model before its server starts, and values.artifactVerifier the one that then checks its
digest. A tag can be moved to other content at any time, so no engine image
is rendered by tag: `images` maps each reference, exactly as the record names it, to the digest
of what the mirror serves for it, and the rendered image is MIRROR/REPOSITORY:TAG@sha256:....
A reference without a pin is refused where the spec chooses it (MG410).

`modelgate images pin` resolves every reference the repository can render through the mirror's
registry (validator/render/registry.py) and rewrites the section in place: every other line of the
file stays as it was, byte for byte, and entries are sorted so that the file is reproducible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..check import load
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..engines import ENGINES, engine_for, engine_values, fetched_by_pod, verified_by_pod

IMAGES = "images"
MIRROR_KEY = "imageMirror"
INITIALIZER_KEY = "storageInitializer"
VERIFIER_KEY = "artifactVerifier"
UNPINNED = "MG410"
INVALID_PIN = "MG411"
UNRESOLVED = "MG412"
STALE = "MG413"
PIN_COMMAND = "modelgate images pin"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
REFERENCE = re.compile(rf"(?P<name>{_NAME}):(?P<tag>{_TAG})")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
MIRROR = re.compile(rf"(?P<host>{_HOST})(?:/(?P<path>{_NAME}))?/?")
SECTION_COMMENT = (
    "# Engine images by digest (MG410): REPOSITORY:TAG under imageMirror -> sha256 digest.\n"
    f"# Written by `{PIN_COMMAND}`; rendered as MIRROR/REPOSITORY:TAG@DIGEST.\n"
)


@dataclass(frozen=True)
class Mirror:
    """values.imageMirror: a registry host and the path its mirrored repositories live under."""

    host: str
    path: str

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Mirror | None:
        text = values.get(MIRROR_KEY)
        found = MIRROR.fullmatch(text) if isinstance(text, str) else None
        return cls(found["host"], found["path"] or "") if found else None

    def repository(self, reference: str) -> tuple[str, str]:
        """(repository on the registry, tag) of a mirrored REPOSITORY:TAG."""
        name, _, tag = reference.rpartition(":")
        return (f"{self.path}/{name}" if self.path else name), tag

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.path else self.host


def pins(values: Mapping[str, Any]) -> dict[str, str]:
    held = values.get(IMAGES)
    return dict(held) if isinstance(held, dict) else {}


def engine_reference(spec: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """The engine image (REPOSITORY:TAG under the mirror) the spec's cluster files run; None
    when the spec names its own image (spec.engine.image, a model image) or the engine has
    no image of its own."""
    if spec["engine"].get("image") or spec["model"].get("image"):
        return None
    if not engine_for(spec).image:  # its mode runs the cluster's servers (a Seldon Model)
        return None
    defaults = engine_values(values, spec["engine"]["name"])
    pattern = defaults.get("image") or ""
    if not pattern:
        return None
    return _filled(pattern, spec["engine"].get("version") or _default_version(defaults))


def storage_reference(spec: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """The storage initializer image the spec's pod fetches its model with ("" when values
    names none), or None when its pod fetches nothing itself."""
    if not fetched_by_pod(spec):
        return None
    named = values.get(INITIALIZER_KEY)
    return named if isinstance(named, str) else ""


def verifier_reference(spec: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """The image that checks the fetched model's digest before the server starts ("" when
    values names none), or None when the spec's pod checks nothing."""
    if not verified_by_pod(spec):
        return None
    named = values.get(VERIFIER_KEY)
    return named if isinstance(named, str) else ""


def rendered_image(values: Mapping[str, Any], reference: str) -> str:
    """MIRROR/REFERENCE@DIGEST. Without a pin it would be MIRROR/REFERENCE, which render
    refuses before any template sees it (unpinned)."""
    image = f"{str(values.get(MIRROR_KEY) or '').rstrip('/')}/{reference}"
    digest = pins(values).get(reference)
    return f"{image}@{digest}" if digest else image


def unpinned(document: Document, values: Mapping[str, Any]) -> list[Diagnostic]:
    """MG410 for every engine image the spec's cluster files would run without a pin, at
    spec.engine.version when the spec names the version, else at spec.engine.name."""
    spec = document.data["spec"]
    engine = engine_for(spec)
    held = pins(values)
    found = []
    reference = engine_reference(spec, values)
    if reference is not None and reference not in held:
        where = "version" if spec["engine"].get("version") else "name"
        found.append(
            document.finding(
                ["spec", "engine", where],
                UNPINNED,
                f"engine image {reference} has no digest pin in templates/values.yaml "
                f"(images); run `{PIN_COMMAND}`",
                f"a tag can be moved to other content: `{PIN_COMMAND}` records the digest the "
                "mirror (imageMirror) serves for it; or choose an engine version that is pinned",
            )
        )
    helpers = (
        ("storage initializer", INITIALIZER_KEY, storage_reference(spec, values), "fetches"),
        ("artifact verifier", VERIFIER_KEY, verifier_reference(spec, values), "checks"),
    )
    for what, key, reference, does in helpers:
        if reference is not None and reference not in held:
            found.append(
                document.finding(
                    ["spec", "engine", "name"],
                    UNPINNED,
                    f"{what} image {reference} has no digest pin in templates/values.yaml "
                    f"(images); run `{PIN_COMMAND}`"
                    if reference
                    else f"engine {engine.name} {does} its model with values.{key}, which "
                    "templates/values.yaml does not name",
                    f"`{PIN_COMMAND}` records the digest the mirror (imageMirror) serves for it",
                )
            )
    return found


def check_values(document: Document) -> list[Diagnostic]:
    """MG411 for what values.yaml says about images that cannot be used as written: an
    imageMirror that is no registry host, a storageInitializer or pinned reference that is no
    REPOSITORY:TAG, a pin that is no sha256 digest."""
    data = document.data
    found = []
    mirror = data.get(MIRROR_KEY)
    if mirror is not None and Mirror.of(data) is None:
        found.append(
            document.finding(
                [MIRROR_KEY],
                INVALID_PIN,
                f"imageMirror {_shown(mirror)} is not a registry host with an optional path",
                "write e.g. `imageMirror: registry.example.com/mirror`",
            )
        )
    examples = {
        INITIALIZER_KEY: "kserve/storage-initializer:v0.14.0",
        VERIFIER_KEY: "library/python:3.12-slim",
    }
    for key, example in examples.items():
        named = data.get(key)
        if named is not None and not _is_reference(named):
            found.append(
                document.finding(
                    [key],
                    INVALID_PIN,
                    f"{key} {_shown(named)} is not an image REPOSITORY:TAG",
                    f"write e.g. `{key}: {example}` (under imageMirror; its digest goes under "
                    "`images`)",
                )
            )
    section = data.get(IMAGES)
    if section is None:
        return found
    if not isinstance(section, dict):
        found.append(
            document.finding(
                [IMAGES],
                INVALID_PIN,
                "images must map image references to digests",
                f"one `REPOSITORY:TAG: sha256:<64 hex>` line per image; `{PIN_COMMAND}` "
                "writes them",
            )
        )
        return found
    for reference, digest in section.items():
        found.extend(_pin_problems(document, reference, digest))
    return found


def _pin_problems(document: Document, reference: str, digest: Any) -> list[Diagnostic]:
    found = []
    if not _is_reference(reference):
        found.append(
            document.finding(
                [IMAGES, reference],
                INVALID_PIN,
                f"images: {_shown(reference)} is not an image REPOSITORY:TAG",
                "name the image as its engine record does, under imageMirror, e.g. "
                "vllm/vllm-openai:v0.6.3",
                key=True,
            )
        )
    if not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
        found.append(
            document.finding(
                [IMAGES, reference],
                INVALID_PIN,
                f"images: the pin of {_shown(reference)} is {_shown(digest)}, not a digest "
                "sha256:<64 lowercase hex>",
                f"`{PIN_COMMAND}` writes the digest the mirror serves",
            )
        )
    return found


def wanted(documents: Iterable[Document], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every engine image the repository can render, sorted, with what needs each: every
    engine's default version, every version a spec names, the storage initializer and the
    artifact verifier of every engine whose pods fetch their model."""
    needed: dict[str, set[str]] = {}
    helpers = ((INITIALIZER_KEY, "model download"), (VERIFIER_KEY, "model check before start"))
    for engine in ENGINES.values():
        defaults = engine_values(values, engine.name)
        if defaults.get("image"):
            reference = _filled(defaults["image"], _default_version(defaults))
            needed.setdefault(reference, set()).add(f"{engine.name} default version")
        for key, why in helpers:
            named = values.get(key)
            if engine.fetch and isinstance(named, str) and named:
                needed.setdefault(named, set()).add(f"{engine.name} {why}")
    for document in documents:
        reference = engine_reference(document.data["spec"], values)
        if reference is not None:
            needed.setdefault(reference, set()).add(document.path)
    return {reference: sorted(why) for reference, why in sorted(needed.items())}


@dataclass
class Pinning:
    """What the mirror serves for every image the repository renders, against the pins
    values.yaml holds."""

    needed: dict[str, list[str]]
    held: dict[str, str]
    resolved: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def changes(self) -> list[tuple[str, str | None, str | None]]:
        """(reference, pin before, pin after) for every pin that is added, moved or dropped."""
        references = sorted(set(self.held) | set(self.resolved))
        return [
            (reference, self.held.get(reference), self.resolved.get(reference))
            for reference in references
            if self.held.get(reference) != self.resolved.get(reference)
        ]


Resolver = Callable[[str, str, str], str]  # (host, repository, tag) -> digest


def pin(values_document: Document, documents: Iterable[Document], resolve: Resolver) -> Pinning:
    """Resolve every image the repository renders in the mirror; a finding (MG412) for
    each the registry cannot give a digest for."""
    from .registry import RegistryError

    values = values_document.data
    pinning = Pinning(wanted(documents, values), pins(values))
    mirror = Mirror.of(values)
    if mirror is None:
        pinning.diagnostics.append(
            values_document.finding(
                [MIRROR_KEY],
                UNRESOLVED,
                "templates/values.yaml names no imageMirror to resolve engine images in",
                "write e.g. `imageMirror: registry.example.com/mirror`",
            )
        )
        return pinning
    for reference in pinning.needed:
        repository, tag = mirror.repository(reference)
        try:
            pinning.resolved[reference] = resolve(mirror.host, repository, tag)
        except RegistryError as exc:
            if exc.unreachable:  # every other image would wait for the same silence
                pinning.diagnostics.append(
                    values_document.finding([MIRROR_KEY], UNRESOLVED, f"{exc}", exc.hint)
                )
                break
            where = [IMAGES, reference] if reference in pinning.held else [MIRROR_KEY]
            pinning.diagnostics.append(
                values_document.finding(
                    where, UNRESOLVED, f"cannot pin {reference}: {exc}", exc.hint
                )
            )
    return pinning


def stale(values_document: Document, pinning: Pinning) -> list[Diagnostic]:
    """`images pin --check`: MG410 for an image without a pin, MG413 for a pin that differs
    from what the mirror serves or that nothing renders."""
    found = []
    for reference, before, after in pinning.changes():
        if before is None:
            found.append(
                _values_finding(
                    values_document,
                    UNPINNED,
                    f"{reference} has no digest pin; the mirror serves {after}",
                    f"run `{PIN_COMMAND}`",
                )
            )
        elif after is None:
            found.append(
                values_document.finding(
                    [IMAGES, reference],
                    STALE,
                    f"the pin of {reference} is not used by any engine or spec",
                    f"`{PIN_COMMAND}` drops it",
                    key=True,
                )
            )
        else:
            found.append(
                values_document.finding(
                    [IMAGES, reference],
                    STALE,
                    f"the pin of {reference} is {before}, but the mirror now serves {after}",
                    f"review what changed under the tag, then run `{PIN_COMMAND}`",
                )
            )
    return found


def missing(values_document: Document, needed: Mapping[str, list[str]]) -> list[Diagnostic]:
    """`images list`: MG410 for every image the repository renders without a pin."""
    held = pins(values_document.data)
    return [
        _values_finding(
            values_document,
            UNPINNED,
            f"{reference} has no digest pin (needed by {', '.join(why)})",
            f"run `{PIN_COMMAND}`",
        )
        for reference, why in needed.items()
        if reference not in held
    ]


def _values_finding(document: Document, code: str, message: str, hint: str) -> Diagnostic:
    where = [IMAGES] if IMAGES in document.data else []
    line, col = document.locate(where, key=True) if where else (1, 1)
    return error(document.path, line, col, code, message, hint)


class CannotRewrite(Exception):
    """The images section is written in a way a line-based rewrite cannot replace safely."""


def rewrite(document: Document, pinned: Mapping[str, str]) -> str:
    """values.yaml's text with the images section holding exactly `pinned` (sorted), every
    line outside the section unchanged. Read back before it is returned: the new text must
    load to the same values with only `images` changed."""
    text = document.text
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = _block(pinned, newline)
    span = _section_lines(document)
    if span is None:
        separator = "" if not text or text.endswith("\n") else newline
        comment = SECTION_COMMENT.replace("\n", newline)
        updated = f"{text}{separator}{newline}{comment}{block}"
    else:
        first, last = span
        updated = "".join([*lines[:first], block, *lines[last + 1 :]])
    _check_rewrite(document, updated, pinned)
    return updated


def _block(pinned: Mapping[str, str], newline: str) -> str:
    if not pinned:
        return f"{IMAGES}: {{}}{newline}"
    entries = [f"  {_key(ref)}: {pinned[ref]}{newline}" for ref in sorted(pinned)]
    return f"{IMAGES}:{newline}{''.join(entries)}"


def _key(reference: str) -> str:
    """The reference as a plain scalar where YAML reads it back as this text, else quoted."""
    try:
        plain = yaml.safe_load(f"{reference}: x") == {reference: "x"}
    except yaml.YAMLError:
        plain = False
    return reference if plain else json.dumps(reference)


def _section_lines(document: Document) -> tuple[int, int] | None:
    """First and last line (0-based) of the top-level `images` entry: its key through the end
    of its value. None when values.yaml has no such entry."""
    root = document.root
    for key_node, value_node in root.value:
        if key_node.value != IMAGES:
            continue
        if root.flow_style or key_node.start_mark.column != 0:
            raise CannotRewrite("templates/values.yaml is not a block mapping at its top level")
        first = key_node.start_mark.line
        if isinstance(value_node, yaml.ScalarNode) and value_node.value == "":
            return first, first  # `images:` and nothing: the next lines belong to others
        end = value_node.end_mark
        if isinstance(value_node, yaml.MappingNode) and not value_node.flow_style:
            end = value_node.value[-1][1].end_mark  # a block mapping has entries
        last = end.line if end.column > 0 else end.line - 1
        return first, max(last, first)
    return None


def _check_rewrite(document: Document, updated: str, pinned: Mapping[str, str]) -> None:
    reread, problems = load.load_text(updated, document.path)
    expected = {**document.data, IMAGES: dict(pinned)}
    if reread is None or problems or reread.data != expected:
        raise CannotRewrite(
            "the images section of templates/values.yaml could not be replaced on its own lines"
        )


def _filled(pattern: str, version: str) -> str:
    return pattern.replace("{version}", version)


def _default_version(defaults: Mapping[str, Any]) -> str:
    return str(defaults.get("defaultVersion") or "latest")


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def named_images(node: Any) -> Iterator[str]:
    """Every container image a manifest names, wherever it sits (pods, ServingRuntimes,
    InferenceServices): each string under a key `image`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from named_images(value)
    elif isinstance(node, list):
        for value in node:
            yield from named_images(value)

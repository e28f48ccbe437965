"""The CustomResourceDefinitions custom resources are checked against: the repository's crds/
folder (always, when it exists) and the folders `render --crds DIR` names.

crds/ arrives through pull requests like everything else, so it is read as untrusted input: a
link out of the repository is refused (MG118, validator/paths.py) and each *.yaml / *.yml file
is parsed strictly: UTF-8, at most 16 MiB, no anchors or aliases, no tags, no duplicate keys,
nothing nested deeper than 128 levels, and only CustomResourceDefinitions of
apiextensions.k8s.io/v1 with a schema per version. Anything else is MG406 at its position.
Parsing a large CRD takes a second or two: the strict schemas made from a file are cached
(validator/cache.py) under the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import cache, paths
from ..check import load
from ..diagnostics import Diagnostic, error
from .kube_schemas import CRD_INVALID, Schemas, builtin, strict_object
from .sync import RENDERED_DIR

RENDERED_INVALID = "MG403"

CRDS_DIR = "crds"
MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 128
CACHE_KIND = "crd-schemas"
LAYOUT = "strict-2"  # part of the cache key: change it when parsing or `strict` changes
HINT = (
    "keep CustomResourceDefinition YAML files only in a CRD folder "
    "(`modelgate crds pull` fills crds/ from a cluster)"
)

Key = tuple[str, str]  # (apiVersion, kind)
NO_ALIASES = "anchors and aliases are not allowed"


class _Refused(Exception):
    def __init__(self, node: yaml.Node | None, message: str) -> None:
        super().__init__(message)
        self.node, self.message = node, message


def repository_schemas(root: Path, extra: Iterable[Path] = ()) -> Schemas:
    """The CRDs of ROOT/crds/ (when there is one), then those of each `extra` folder."""
    schemas = Schemas()
    links = links_out(root)
    schemas.problems += links
    folder = root / CRDS_DIR
    if not links and folder.is_dir():
        _load_folder(schemas, folder, root)
    for directory in extra:
        _load_folder(schemas, Path(directory), None)
    return schemas


def links_out(root: Path) -> list[Diagnostic]:
    """MG118 for crds/ itself, or any file in it, leading out of the repository."""
    folder = root / CRDS_DIR
    if not os.path.lexists(folder):
        return []
    link = paths.link_finding(folder, root)
    if link is not None or not folder.is_dir():
        return [link] if link is not None else []
    found = (paths.link_finding(path, root) for path in sorted(folder.iterdir()))
    return [finding for finding in found if finding is not None]


def load_dirs(directories: Iterable[Path]) -> Schemas:
    schemas = Schemas()
    for directory in directories:
        _load_folder(schemas, Path(directory), None)
    return schemas


def _load_folder(schemas: Schemas, folder: Path, root: Path | None) -> None:
    for path in sorted(folder.glob("*.y*ml")):
        if path.suffix not in (".yaml", ".yml"):
            continue
        shown = _shown(path, root)
        found, problem = schemas_of_file(path, shown)
        if problem is not None:
            schemas.problems.append(problem)
        schemas.crds.update(found)


def _shown(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    return path.relative_to(root).as_posix()


def schemas_of_file(path: Path, shown: str) -> tuple[dict[Key, dict[str, Any]], Diagnostic | None]:
    """The strict JSON schema of every version each CRD in the file serves, or a finding."""
    try:
        with path.open("rb") as stream:
            raw = paths.read_at_most(stream, MAX_BYTES)
    except OSError as exc:
        return {}, error(shown, 0, 0, CRD_INVALID, f"CRD file cannot be read: {exc}", HINT)
    if len(raw) > MAX_BYTES:
        return {}, error(shown, 1, 1, CRD_INVALID, "CRD file is larger than 16 MiB", HINT)
    key = f"{LAYOUT}|{hashlib.sha256(raw).hexdigest()}"
    cached = cache.load(CACHE_KIND, key)
    if cached is not None:
        return {(a, k): schema for a, k, schema in json.loads(cached)}, None
    try:
        found = _parse(raw)
    except _Refused as refused:
        line, col = _position(refused.node)
        return {}, error(shown, line, col, CRD_INVALID, f"CRD file cannot be read: {refused}", HINT)
    cache.store(CACHE_KIND, key, json.dumps([[a, k, s] for (a, k), s in found.items()]).encode())
    return found, None


def parse_documents(raw: bytes) -> list[dict[str, Any]]:
    """The documents of a YAML file, parsed strictly (raises ValueError with the reason)."""
    try:
        return [data for _, data in _documents(raw)]
    except _Refused as refused:
        line, col = _position(refused.node)
        raise ValueError(f"line {line}, column {col}: {refused}") from None


def _parse(raw: bytes) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for node, document in _documents(raw):
        found.update(_crd_schemas(node, document))
    return found


def _documents(raw: bytes) -> list[tuple[yaml.Node, dict[str, Any]]]:
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _Refused(None, f"not UTF-8 (byte {exc.start})") from None
    documents = []
    loader = load._Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                documents.append((node, _build(node, 0, set())))
    except yaml.MarkedYAMLError as exc:
        raise _Refused(_Marked(exc.problem_mark), f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise _Refused(None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    for node, data in documents:
        if not isinstance(data, dict):
            raise _Refused(node, "a document that is not a mapping")
    return documents


def _build(node: yaml.Node, depth: int, seen: set[int]) -> Any:
    # the composer hands out the anchored node again for each alias: a node met twice is one
    if id(node) in seen:
        raise _Refused(node, f"a YAML alias ({NO_ALIASES})")
    seen.add(id(node))
    if depth > MAX_DEPTH:
        raise _Refused(node, f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.ScalarNode):
        try:
            return load._scalar(node)
        except load._Refusal as refusal:
            raise _Refused(node, refusal.message) from None
    if isinstance(node, yaml.SequenceNode) and node.tag == load._SEQ:
        if any(id(item) in seen for item in node.value):
            raise _Refused(node, f"an item is a YAML alias ({NO_ALIASES})")
        return [_build(item, depth + 1, seen) for item in node.value]
    if isinstance(node, yaml.MappingNode) and node.tag == load._MAP:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, depth + 1, seen)
            if not isinstance(key, str):
                raise _Refused(key_node, "a mapping key that is not a string")
            if key in result:
                raise _Refused(key_node, f"duplicate key '{key}'")
            if id(value_node) in seen:
                raise _Refused(key_node, f"'{key}' is a YAML alias ({NO_ALIASES})")
            result[key] = _build(value_node, depth + 1, seen)
        return result
    raise _Refused(node, f"YAML tag '{node.tag}' is not allowed")


def _crd_schemas(node: yaml.Node, crd: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    if crd.get("apiVersion") != "apiextensions.k8s.io/v1" or (
        crd.get("kind") != "CustomResourceDefinition"
    ):
        shown = f"{crd.get('apiVersion')} {crd.get('kind')}"
        raise _Refused(node, f"{shown} is not an apiextensions.k8s.io/v1 CustomResourceDefinition")
    spec = crd.get("spec")
    names = spec.get("names") if isinstance(spec, dict) else None
    if not isinstance(names, dict) or not isinstance(spec.get("group"), str):
        raise _Refused(node, "a CustomResourceDefinition without spec.group and spec.names")
    found = {}
    for version in spec.get("versions") or []:
        schema = version.get("schema") if isinstance(version, dict) else None
        schema = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
        if not isinstance(version.get("name"), str) or not isinstance(schema, dict):
            raise _Refused(node, f"{names.get('kind')}: a version without an openAPIV3Schema")
        found[(f"{spec['group']}/{version['name']}", str(names.get("kind")))] = strict_object(
            schema
        )
    return found


class _Marked:
    """A stand-in node for a parser error's position."""

    def __init__(self, mark: Any) -> None:
        self.start_mark = mark


def _position(node: Any) -> tuple[int, int]:
    mark = getattr(node, "start_mark", None)
    if mark is None:
        return 1, 1
    return mark.line + 1, mark.column + 1


# --- crds pull --------------------------------------------------------------------------------

HEADER = (
    "# Pulled from the cluster by `modelgate crds pull`: `modelgate render` checks the custom\n"
    "# resources of rendered/ against it. Pull again after the cluster's operator is upgraded.\n"
)
NAME_PART = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def rendered_kinds(root: Path) -> tuple[set[Key], list[Diagnostic]]:
    """(apiVersion, kind) of every custom resource in rendered/, and the files that did not
    read (rendered/ comes from pull requests too: no links out, strict parsing)."""
    kinds: set[Key] = set()
    problems: list[Diagnostic] = []
    for path in sorted((root / RENDERED_DIR).rglob("*.yaml")):
        shown = path.relative_to(root).as_posix()
        link = paths.link_finding(path, root)
        if link is not None:
            problems.append(link)
            continue
        try:
            documents = parse_documents(paths.read_bytes(path, root))
        except (OSError, ValueError) as exc:
            problems.append(error(shown, 0, 0, RENDERED_INVALID, f"cannot read: {exc}", RENDER))
            continue
        for document in documents:
            api_version, kind = document.get("apiVersion"), document.get("kind")
            if isinstance(api_version, str) and isinstance(kind, str) and not builtin(api_version):
                kinds.add((api_version, kind))
    return kinds, problems


RENDER = "run `modelgate render` to write rendered/ again"


@dataclass
class Pulled:
    written: dict[str, list[Key]] = field(default_factory=dict)  # crds/FILE -> kinds it serves
    missing: list[str] = field(default_factory=list)  # kinds the cluster has no CRD for


def pull(root: Path, kinds: set[Key], definitions: list[dict[str, Any]]) -> Pulled:
    """Write into crds/ the CRD of each kind among `definitions` (the cluster's), as
    crds/GROUP_PLURAL.yaml: spec only, no status or server-set metadata."""
    pulled = Pulled()
    chosen: dict[str, tuple[dict[str, Any], list[Key]]] = {}
    for api_version, kind in sorted(kinds):
        group, _, version = api_version.rpartition("/")
        crd = next((d for d in definitions if _defines(d, group, kind)), None)
        if crd is None:
            pulled.missing.append(f"{api_version} {kind}: the cluster has no CRD for it")
            continue
        served = [v.get("name") for v in crd["spec"].get("versions") or [] if v.get("served")]
        if version not in served:
            shown = ", ".join(map(str, served)) or "none"
            pulled.missing.append(f"{api_version} {kind}: the cluster serves {shown} only")
            continue
        plural = str(crd["spec"].get("names", {}).get("plural", ""))
        if not (NAME_PART.match(group) and NAME_PART.match(plural)):
            pulled.missing.append(f"{api_version} {kind}: the CRD's names are not DNS names")
            continue
        file_name = f"{group}_{plural}.yaml"
        chosen.setdefault(file_name, (crd, []))[1].append((api_version, kind))
    folder = root / CRDS_DIR
    for file_name, (crd, served_kinds) in sorted(chosen.items()):
        clean = {
            "apiVersion": crd["apiVersion"],
            "kind": crd["kind"],
            "metadata": {"name": crd["metadata"]["name"]},
            "spec": crd["spec"],
        }
        text = HEADER + yaml.safe_dump(clean, sort_keys=False, allow_unicode=True, width=4096)
        paths.make_dirs(folder, root)
        paths.write_bytes(folder / file_name, root, text.encode("utf-8"))
        pulled.written[f"{CRDS_DIR}/{file_name}"] = served_kinds
    return pulled


def _defines(crd: dict[str, Any], group: str, kind: str) -> bool:
    spec = crd.get("spec") if isinstance(crd, dict) else None
    if not isinstance(spec, dict):
        return False
    return spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind

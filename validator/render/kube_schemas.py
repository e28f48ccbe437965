"""Check rendered Kubernetes manifests against real schemas, like kubeconform does.

Built-in kinds are checked against the Kubernetes JSON schemas that the kubernetes-validate
package ships (strict: unknown fields are errors). Custom resources (KServe, Seldon, Argo CD)
are checked against the CustomResourceDefinitions of the repository's crds/ folder and of
`--crds DIR` (crds.py reads them), made strict the same way. A kind with no schema at hand is
reported as skipped, never as valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic

KUBERNETES_VERSION = "1.30.0"


@dataclass
class Schemas:
    """CRD schemas by (apiVersion, kind), loaded from CRD files by crds.load_dirs."""

    crds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)  # CRD files that did not load
    _validators: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def validator(self, key: tuple[str, str]) -> Any | None:
        if key not in self.crds:
            return None
        if key not in self._validators:
            from jsonschema import Draft4Validator

            self._validators[key] = Draft4Validator(self.crds[key])
        return self._validators[key]


CRD_INVALID = "MG406"


def check(manifest: dict[str, Any], schemas: Schemas) -> tuple[str | None, bool]:
    """(problem or None, whether a schema was found) for one parsed manifest."""
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return "apiVersion and kind must be strings", True
    validator = schemas.validator((api_version, kind))
    if validator is not None:  # jsonschema here: fastjsonschema is slower on huge CRD schemas
        return _first_error(validator, manifest), True
    if builtin(api_version):
        return _builtin(manifest), True
    return None, False


def builtin(api_version: str) -> bool:
    """A kind Kubernetes itself serves (its schema ships with kubernetes-validate), not a
    custom resource."""
    return "." not in api_version.split("/")[0] or api_version.startswith(_BUILTIN_GROUPS)


_BUILTIN_GROUPS = (
    "apps/", "autoscaling/", "policy/", "networking.k8s.io/", "batch/", "rbac.",
    "admissionregistration.k8s.io/",
)  # fmt: skip
# The built-in kinds the engines' templates render (tests/test_render.py keeps the list whole):
# their checks are compiled when modelgate is installed (cli/precompile.py), like its bytecode.
RENDERED_KINDS = (
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
)


def precompile() -> None:
    """Compile (and cache) the checks of the kinds modelgate renders."""
    for api_version, kind in RENDERED_KINDS:
        _builtin_check(api_version, kind)


def _builtin(manifest: dict[str, Any]) -> str | None:
    """Fast yes/no against the strict schema compiled once (cached on disk); the detailed
    check of kubernetes-validate (about 15 ms a manifest) only for manifests that fail."""
    check = _builtin_check(manifest["apiVersion"], manifest["kind"])
    if check is not None and check(manifest):
        return None
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "(root)"
        return f"{where}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"no Kubernetes schema for {manifest['apiVersion']} {manifest['kind']}"
    return None


@cache
def _builtin_check(api_version: str, kind: str) -> Any:
    from ..check import compiled

    directory = _schema_dir()
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = directory / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None

    def schema() -> dict[str, Any]:
        loaded = _local_refs(json.loads(path.read_text(encoding="utf-8")))
        loaded["$defs"] = _reachable(loaded, _definitions(str(directory)))
        return loaded

    files = [path, directory / "_definitions.json"]
    fingerprint = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return compiled.compiled_from(f"{REFS_LAYOUT}|{fingerprint}", schema)


REFS_LAYOUT = "local-refs-2"  # part of the cache key: change it when _local_refs changes


def _schema_dir() -> Path:
    from importlib.util import find_spec

    # found, not imported: importing it (and jsonschema with it) costs 0.1 s a process
    spec = find_spec("kubernetes_validate")
    assert spec is not None and spec.origin is not None, "kubernetes-validate is a dependency"
    base = Path(spec.origin).parent / "kubernetes-json-schema"
    return base / f"v{KUBERNETES_VERSION}-local-strict"


@cache
def _definitions(directory: str) -> dict[str, Any]:
    return _local_refs(json.loads((Path(directory) / "_definitions.json").read_text())["$defs"])


def _reachable(schema: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """The definitions `schema` refers to, directly or not: code is generated for each one
    kept, and all of them would make 28 MB of code for a Deployment."""
    kept: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                name = reference.removeprefix("#/$defs/")
                if name not in kept and name in definitions:
                    kept[name] = definitions[name]
                    pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return dict(sorted(kept.items()))


def _local_refs(node: Any) -> Any:
    """References into _definitions.json, rewritten to point inside one schema document."""
    if isinstance(node, dict):
        result = {
            key: _local_refs(value) for key, value in node.items() if key not in ("$id", "$schema")
        }
        if isinstance(node.get("$ref"), str):
            result["$ref"] = "#" + node["$ref"].split("#", 1)[1]
        return result
    if isinstance(node, list):
        return [_local_refs(item) for item in node]
    return node


def _first_error(validator: Any, manifest: dict[str, Any]) -> str | None:
    error = next(iter(sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


# Every object may carry these, whether its CRD's schema declares them or not (Istio's do not)
OBJECT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


def strict_object(schema: Any) -> Any:
    """A CRD version's openAPIV3Schema as the strict schema of a whole object (`strict`),
    apiVersion, kind and metadata accepted as the API server accepts them."""
    result = strict(schema)
    if isinstance(result, dict) and "properties" in result:
        result["properties"] = {**OBJECT_FIELDS, **result["properties"]}
    return result


def strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema as strict JSON Schema: objects with declared properties refuse
    unknown fields (unless marked to preserve them), and int-or-string means exactly that."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        key: strict(value)
        for key, value in schema.items()
        if key not in ("nullable",) and not key.startswith("x-kubernetes")
    }
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    open_object = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in result and "additionalProperties" not in result and not open_object:
        result["additionalProperties"] = False
    return result

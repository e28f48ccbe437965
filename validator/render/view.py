"""What the templates see: a spec turned into the values a manifest needs.

All decisions live here, in Python, so that templates stay layout: labels, resources, security
contexts, images and URIs are computed once, the same way for every engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from ..check import exposure
from ..check.load import Document
from ..check.platform import Platform, from_values
from ..engines import ENGINES, PROTOCOL_HEALTH, Engine, engine_values, health_paths, runtime_for
from . import images

MANAGED_BY = "modelgate"
DEFAULT_USER = 10001
TRITON_TYPES = {"BYTES": "TYPE_STRING"}


def spec_hash(document: Document) -> str:
    """A stable fingerprint of the whole spec (label-sized: 32 hex characters)."""
    canonical = json.dumps(document.data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def label_value(text: str) -> str:
    """`text` squeezed into a Kubernetes label value: [A-Za-z0-9._-], at most 63, alnum ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return cleaned.strip("-._")


def base(document: Document) -> dict[str, Any]:
    """Values every template may use, whatever the target."""
    data = document.data
    metadata, spec = data["metadata"], data["spec"]
    name = metadata["name"]
    labels = {
        **metadata.get("labels", {}),
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/version": label_value(spec["model"]["version"]),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "modelgate.dev/owner": label_value(metadata["owner"]),
        "modelgate.dev/team": label_value(metadata["team"]),
        "modelgate.dev/spec-hash": spec_hash(document),
    }
    annotations = {"modelgate.dev/owner": metadata["owner"], "modelgate.dev/source": document.path}
    if "contact" in metadata:
        annotations["modelgate.dev/contact"] = metadata["contact"]
    return {
        "name": name,
        "source": document.path,
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "selector": {ENGINES[spec["engine"]["name"]].pod_label: name},
        "spec": spec,
        "model": spec["model"],
        "engine": spec["engine"],
        "protocol": spec["engine"]["protocol"],
        "runtime": runtime_for(spec),
        "version": spec["model"]["version"],
    }


def local(
    document: Document, out_dir: PurePosixPath, shared: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The local target: MLServer reads a repository path relative to its settings file.
    `shared` is base(document), when the caller already has it."""
    view = shared or base(document)
    model = document.data["spec"]["model"]
    artifact = model.get("artifact", "")
    uri = artifact
    if "://" not in artifact:
        uri = os.path.relpath(artifact, out_dir).replace(os.sep, "/") + _folder_end(model)
    local_view = {**view, "uri": uri, "signature": model.get("signature")}
    if ENGINES[document.data["spec"]["engine"]["name"]].model_config:
        local_view.update(_local_model_config(document.data["spec"]))
    return local_view


def _local_model_config(spec: dict[str, Any]) -> dict[str, Any]:
    """What the model configuration template needs locally: the cluster's signature and
    batch size, and no platform (the local server runs the model in its Python backend)."""
    return {
        "triton_platform": None,
        "max_batch_size": spec["engine"].get("maxBatchSize", 0),
        "triton_inputs": _triton_tensors(spec, "inputs"),
        "triton_outputs": _triton_tensors(spec, "outputs"),
    }


def cluster(
    document: Document,
    environment: str,
    values: dict[str, Any],
    shared: dict[str, Any] | None = None,
    platform: Platform | None = None,
) -> dict[str, Any]:
    """`platform` is what values declares for endpoint exposure, when the caller has it."""
    spec = document.data["spec"]
    view = shared or base(document)
    engine = ENGINES[spec["engine"]["name"]]
    defaults = engine_values(values, engine.name)
    scaling = spec.get("scaling", {})
    low = scaling.get("minReplicas", 1)
    mode, scaler = engine.mode(spec["engine"])
    endpoint = spec.get("endpoint", {})
    live_path, ready_path = health_paths(spec, view["name"], values)
    exposed = exposure.plan(spec, view["name"], environment, platform or from_values(values))
    return {
        **view,
        "environment": environment,
        "namespace": values["namespace"].format(environment=environment),
        "image": _image(spec, values),
        "storage_uri": storage_uri(document, values),
        "port": endpoint.get("port") or defaults.get("port", 8080),
        "traffic_ports": _traffic_ports(engine, spec, endpoint.get("port") or defaults["port"]),
        "live_path": live_path,
        "ready_path": ready_path,
        "args": list(spec["engine"].get("args", [])),
        # the engine's own environment, then the spec's; the API key the engine checks
        # (auth.type apiKey) comes from auth.secretRef
        "env": _cluster_env(engine, spec["engine"].get("env", [])) + exposed["env"],
        "resources": _resources(spec.get("resources", {})),
        "min_replicas": low,
        "max_replicas": max(scaling.get("maxReplicas", low), low),
        # the mode's own default where the spec names none (Knative scales on concurrency)
        "scale_metric": scaling.get("metric") or next(iter(scaler.metrics), "cpu"),
        "scale_target": scaling.get("target", 80),
        "canary": spec.get("rollout", {}).get("canaryTrafficPercent"),
        "deployment_mode": mode,
        "service_account": spec.get("serviceAccountName"),
        "exposure": exposed,
        # a public InferenceService is reached through KServe's own gateway (NetworkPolicy)
        "public": spec.get("endpoint", {}).get("visibility") == "public",
        "pod_security": _pod_security(spec.get("security", {})),
        "container_security": _container_security(spec.get("security", {})),
        "seldon_requirements": _seldon_requirements(engine, spec),
        "triton_platform": engine.platforms.get(spec["model"]["format"]),
        "max_batch_size": spec["engine"].get("maxBatchSize", 0),
        "triton_inputs": _triton_tensors(spec, "inputs"),
        "model_ref": _model_ref(document, values),
        "model_file": _model_file(spec["model"]),
        "model_dir": _model_dir(view["name"], spec["model"]),
        "metrics_port": engine.metrics_port,
        "egress": _egress(spec, values),
        "cache_size": values.get("modelCacheSize", "20Gi"),
        **_storage_initializer(engine, values),
        "triton_outputs": _triton_tensors(spec, "outputs"),
    }


def docker(document: Document, shared: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = document.data["spec"]
    view = shared or base(document)
    security = spec.get("security", {})
    limits = spec.get("resources", {}).get("limits", {})
    return {
        **view,
        "image": spec["model"]["image"],
        "command": list(spec["engine"].get("args", [])),  # as the docker target runs it
        "port": spec.get("endpoint", {}).get("port", 8080),
        "user": str(security.get("runAsUser", DEFAULT_USER)),
        "read_only": security.get("readOnlyRootFilesystem", True),
        "cap_add": list(security.get("capabilities", {}).get("add", [])),
        "memory": _compose_memory(limits.get("memory")),
        "cpus": _cpus(limits.get("cpu")),
        "environment": {
            v["name"]: v["value"] for v in spec["engine"].get("env", []) if "value" in v
        },
        "secrets": sorted(v["name"] for v in spec["engine"].get("env", []) if "valueFrom" in v),
        "ready_path": PROTOCOL_HEALTH[spec["engine"]["protocol"]][1].format(name=view["name"]),
    }


def for_compose(value: Any) -> Any:
    """`docker compose` substitutes `${VAR}` and `$VAR` in every string of a compose file from
    the environment of whoever runs it; `$$` is a literal `$`. Spec values stay literal."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: for_compose(item) for key, item in value.items()}
    if isinstance(value, list):
        return [for_compose(item) for item in value]
    return value


def repository(documents: list[Document], values: dict[str, Any]) -> dict[str, list[dict]]:
    """One Argo CD ApplicationSet per environment the specs deploy to."""
    environments = sorted({env for doc in documents for env in doc.data["spec"]["environments"]})
    sync = values.get("sync", {})
    return {
        "applicationsets": [
            {
                "environment": env,
                "namespace": values["namespace"].format(environment=env),
                "repo_url": values["repoURL"],
                "revision": values["targetRevision"],
                "sync": {
                    **{"prune": True, "selfHeal": True},
                    **sync.get("default", {}),
                    **sync.get(env, {}),
                },
            }
            for env in environments
        ]
    }


# What `modelgate deploy --target kubernetes` does in a namespace, and the rights it needs:
# server-side apply (create, patch), readiness from each object's status (get), and the smoke
# test's port-forward to a Service (kubectl reads the Service, finds a pod behind it, opens the
# pod's portforward subresource). Nothing else: no list of what it applies, no delete.
APPLY_VERBS = ("create", "get", "patch")
PORT_FORWARD = {"services": ("get",), "pods": ("get", "list"), "pods/portforward": ("create",)}
DEPLOYER_GROUP = "modelgate:deployers"


def plural(kind: str) -> str:
    """A kind's resource name, as Kubernetes derives it when a type does not name its own
    (k8s.io/apimachinery's UnsafeGuessKindToResource): every kind modelgate renders follows it."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def deployer(environment: str, kinds: set[tuple[str, str]], values: dict[str, Any]) -> dict:
    """The Role a deployer needs in an environment's namespace: apply and read exactly the
    kinds rendered there (apiVersion, kind), and port-forward for the smoke test."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for api_version, kind in kinds:
        group = api_version.rpartition("/")[0]
        verbs.setdefault((group, plural(kind)), set()).update(APPLY_VERBS)
    for resource, needed in PORT_FORWARD.items():
        verbs.setdefault(("", resource), set()).update(needed)
    rules: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), granted in sorted(verbs.items()):
        rules.setdefault((group, tuple(sorted(granted))), []).append(resource)
    return {
        "environment": environment,
        "namespace": values["namespace"].format(environment=environment),
        "group": values.get("deployerGroup", DEPLOYER_GROUP),
        "rules": [
            {"apiGroups": [group], "resources": resources, "verbs": list(granted)}
            for (group, granted), resources in rules.items()
        ],
    }


def storage_uri(document: Document, values: dict[str, Any]) -> str:
    model = document.data["spec"]["model"]
    artifact = model.get("artifact", "")
    if not artifact or "://" in artifact:
        return artifact
    name = document.data["metadata"]["name"]
    store = values["artifactStore"].rstrip("/")
    return f"{store}/{name}/{model['version']}/{Path(artifact).name}{_folder_end(model)}"


def _folder_end(model: dict[str, Any]) -> str:
    """'/' for a folder artifact, which the spec names by its tree digest (validation checks
    that the folder is one): storage initializers copy a prefix without it as a file, and
    would copy `NAME2/` along with `NAME/`."""
    return "/" if "treeSha256" in model else ""


def _model_file(model: dict[str, Any]) -> str:
    """The name Triton loads in the version folder: the artifact's file or folder name."""
    return Path(model.get("artifact", "model")).name or "model"


def _model_dir(name: str, model: dict[str, Any]) -> str:
    """Where the storage initializer puts the artifact: a file into version folder 1, a
    folder's contents into a folder of its name inside it (the name config.pbtxt loads)."""
    version = f"/models/{name}/1"
    return f"{version}/{_model_file(model)}" if _folder_end(model) else version


def _model_ref(document: Document, values: dict[str, Any]) -> str:
    """What an LLM server loads: a Hugging Face id for hf:// artifacts, else the storage URI."""
    artifact = document.data["spec"]["model"].get("artifact", "")
    return (
        artifact.removeprefix("hf://")
        if artifact.startswith("hf://")
        else storage_uri(document, values)
    )


def _image(spec: dict[str, Any], values: dict[str, Any]) -> str:
    """The spec's own image (judged by MG-SEC-001/002), else its engine's, pinned by digest."""
    if spec["engine"].get("image"):
        return spec["engine"]["image"]
    if spec["model"].get("image"):
        return spec["model"]["image"]
    reference = images.engine_reference(spec, values)
    return images.rendered_image(values, reference) if reference else ""


def _storage_initializer(engine: Engine, values: dict[str, Any]) -> dict[str, str]:
    """Only for the engines whose record says they fetch their model with it: a template of
    another engine that used it would fail (StrictUndefined) instead of running it unpinned."""
    reference = images.storage_reference(engine, values)
    return {"storage_initializer": images.rendered_image(values, reference)} if reference else {}


def _cluster_env(engine: Engine, variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine's own environment (where its caches go), then the spec's, which wins."""
    named = {variable["name"] for variable in variables}
    own = [{"name": k, "value": v} for k, v in engine.cluster_env.items() if k not in named]
    return own + [_env(variable) for variable in variables]


# Where a server that fetches its model may connect: cluster DNS always; HTTPS anywhere but
# the cloud metadata service when it downloads an artifact (templates/values.yaml `egress`
# narrows it to the stores' address ranges).
DNS_PEERS = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
]
ARTIFACT_PEERS = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]


def _egress(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    chosen = values.get("egress") or {}
    downloads = "artifact" in spec["model"]
    return {
        "dns": chosen.get("dns", DNS_PEERS),
        "artifacts": chosen.get("artifacts", ARTIFACT_PEERS) if downloads else [],
    }


KNATIVE_QUEUE_PORT = 8012  # Serverless KServe pods receive requests through queue-proxy


def _traffic_ports(engine: Engine, spec: dict[str, Any], port: int) -> list[str | int]:
    """The pod ports inference requests arrive at, for the NetworkPolicy: the Deployment's
    named port, or an InferenceService's container port (and Knative's queue-proxy)."""
    if engine.port_name:
        return [engine.port_name]
    if spec["engine"].get("deploymentMode") == "Serverless":
        return [port, KNATIVE_QUEUE_PORT]
    return [port]


def _env(variable: dict[str, Any]) -> dict[str, Any]:
    if "valueFrom" in variable:
        ref = variable["valueFrom"]
        return {
            "name": variable["name"],
            "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}},
        }
    return {"name": variable["name"], "value": variable["value"]}


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        amounts = {key: str(value) for key, value in resources.get(kind, {}).items()}
        if resources.get("gpu"):
            amounts["nvidia.com/gpu"] = str(resources["gpu"])
        if amounts:
            result[kind] = dict(sorted(amounts.items()))
    return result


def _pod_security(security: dict[str, Any]) -> dict[str, Any]:
    user = security.get("runAsUser", DEFAULT_USER)
    return {
        "runAsNonRoot": security.get("runAsNonRoot", True),
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": security.get("seccompProfile", "RuntimeDefault")},
    }


def _container_security(security: dict[str, Any]) -> dict[str, Any]:
    capabilities = security.get("capabilities", {})
    result: dict[str, Any] = {
        "allowPrivilegeEscalation": security.get("allowPrivilegeEscalation", False),
        "readOnlyRootFilesystem": security.get("readOnlyRootFilesystem", True),
        "privileged": security.get("privileged", False),
        "capabilities": {"drop": capabilities.get("drop", ["ALL"])},
    }
    if capabilities.get("add"):
        result["capabilities"]["add"] = capabilities["add"]
    return result


def _seldon_requirements(engine: Engine, spec: dict[str, Any]) -> list[str]:
    requirement = engine.requirements.get(spec["model"]["format"])
    return [requirement] if requirement else []


def _triton_tensors(spec: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    signature = spec["model"].get("signature") or {}
    return [
        {
            "name": t["name"],
            "data_type": TRITON_TYPES.get(t["datatype"], "TYPE_" + t["datatype"]),
            "dims": t["shape"],
        }
        for t in signature.get(kind, [])
    ]


def _compose_memory(quantity: Any) -> str | None:
    if quantity is None:
        return None
    text = str(quantity)
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g"), ("Ti", "t")):
        if text.endswith(suffix):
            return text[: -len(suffix)] + unit
    return text


def _cpus(quantity: Any) -> str | None:
    if quantity is None:
        return None
    text = str(quantity)
    return str(float(text[:-1]) / 1000) if text.endswith("m") else text

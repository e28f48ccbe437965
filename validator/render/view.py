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

from ..check import delivery, exposure, pod, stores
from ..check.load import Document
from ..check.platform import Platform, from_values
from ..engines import (
    APPLICATION_FILE,
    BY_WORKLOAD,
    COMPONENT_HEALTH,
    COMPONENTS,
    ENGINES,
    GPU_TAINT_EFFECT,
    HPA,
    KNATIVE,
    Engine,
    accelerator_of,
    digest_field,
    engine_for,
    engine_values,
    fetched_by_pod,
    health_paths,
    runtime_for,
    tolerates,
    verified_by_pod,
    vllm,
)
from ..engines.kserve import COMPONENT_LABEL
from ..quantities import mebibytes, to_bytes
from . import images, modelcar, verify

MANAGED_BY = "modelgate"
DEFAULT_USER = 10001
TRITON_TYPES = {"BYTES": "TYPE_STRING"}
HF = "hf://"
# the base view's key for the digest of the spec's model image, where the artifact store is an
# OCI registry (set by the render stage, which reads the artifact)
MODEL_IMAGE = "model_image"
# what the init containers that fetch and check the model may use
INIT_RESOURCES = {
    "requests": {"cpu": "100m", "ephemeral-storage": "256Mi", "memory": "256Mi"},
    "limits": {"cpu": "1", "ephemeral-storage": "256Mi", "memory": "1Gi"},
}
# Node disk every container may fill besides the volumes its pod sizes: its logs (the root
# filesystem is read-only); /tmp of a Deployment when the values name no size
LOG_ALLOWANCE = 256 * 2**20
SCRATCH_SIZE = "1Gi"
PREDICTOR = "predictor"
# the init container that fetches the model: KServe injects none of its own into a pod that
# already has one of this name
FETCH_CONTAINER = "storage-initializer"


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
    own = metadata.get("annotations", {})  # never one modelgate writes (check/pod.py)
    annotations = {
        **own,
        "modelgate.dev/owner": metadata["owner"],
        "modelgate.dev/source": document.path,
    }
    if "contact" in metadata:
        annotations["modelgate.dev/contact"] = metadata["contact"]
    return {
        "name": name,
        "source": document.path,
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        # the spec's own annotations, for pod templates written apart from their object's
        # metadata (an InferenceService component's `annotations`)
        "pod_annotations": dict(sorted(own.items())),
        "selector": {engine_for(spec).pod_label: name},
        "spec": spec,
        "model": spec["model"],
        "engine": spec["engine"],
        "protocol": spec["engine"]["protocol"],
        # a runtime the spec defines is named like the spec unless engine.runtime names it
        "runtime": runtime_for(spec) or (name if "runtime" in spec else None),
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
    engine = ENGINES[document.data["spec"]["engine"]["name"]]
    if engine.name == vllm.ENGINE.name:  # the model folder relative to the settings file
        args, _ = engine.local_args(list(document.data["spec"]["engine"].get("args", [])))
        revision_args = _revision_args(engine, model)
        local_view["vllm_args"] = vllm.command_line(uri, view["name"], revision_args, args)
    # the local server is the engine's own, whatever the spec's cluster mode (Seldon's Triton
    # servers complete a model's configuration; the local one is given it)
    if engine.model_config:
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
    engine = engine_for(spec)  # as it is in the spec's deployment mode
    defaults = engine_values(values, engine.name)
    scaling = spec.get("scaling", {})
    low = scaling.get("minReplicas", 1)
    mode, scaler = engine.scaling(spec)
    metric = scaling.get("metric") or next(iter(scaler.metrics), "cpu")
    namespace = values["namespace"].format(environment=environment)
    endpoint = spec.get("endpoint", {})
    live_path, ready_path = health_paths(spec, view["name"], values)
    exposed = exposure.plan(spec, view["name"], environment, platform or from_values(values))
    port = endpoint.get("port") or defaults.get("port", 8080)
    # a Deployment's container names its port; an InferenceService's probes give the number
    probe_port = engine.port_name or port
    scheduling = spec.get("scheduling", {})
    container_security = _container_security(spec.get("security", {}))
    model_image = view.get(MODEL_IMAGE, "")
    uri = storage_uri(document, values, model_image)
    cache_size = _volume(spec, "cache") or values.get("modelCacheSize", "20Gi")
    scratch_size = values.get("scratchSize", SCRATCH_SIZE)
    mesh = platform_mesh(platform or from_values(values))
    fetches = fetched_by_pod(spec) and not model_image  # into a volume of the pod's
    model_ref = _model_ref(document, values, uri)
    revision_args = _revision_args(engine, spec["model"])
    args = list(spec["engine"].get("args", []))
    return {
        **view,
        "environment": environment,
        "namespace": namespace,
        "image": _image(spec, values),
        "storage_uri": uri,
        "port": port,
        "traffic_ports": _traffic_ports(engine, spec, port),
        "live_path": live_path,
        "ready_path": ready_path,
        "probes": _probes(spec, engine, probe_port, live_path, ready_path),
        "args": args,
        "vllm_args": vllm.command_line(model_ref, view["name"], revision_args, args, port),
        # the engine's own environment, then the spec's; the API key the engine checks
        # (auth.type apiKey) comes from auth.secretRef
        "env": _cluster_env(engine, spec["engine"].get("env", []))
        + _revision_env(engine, spec["model"])
        + exposed["env"],
        "resources": _with_disk(
            _resources(spec), _server_disk(engine, fetches, cache_size, scratch_size)
        ),
        "node_selector": _node_selector(spec),
        # a transformer's or explainer's: the spec's own, without the GPU product (no GPUs)
        "component_node_selector": dict(sorted(scheduling.get("nodeSelector", {}).items())),
        "tolerations": _tolerations(spec),
        # a transformer's or explainer's: the spec's own (no GPUs, so no GPU toleration)
        "component_tolerations": scheduling.get("tolerations", []),
        "affinity": scheduling.get("affinity", {}),
        "topology_spread": _topology_spread(scheduling, engine, view["selector"], PREDICTOR),
        "min_replicas": low,
        "max_replicas": max(scaling.get("maxReplicas", low), low),
        # the mode's own default where the spec names none (Knative scales on concurrency)
        "scale_metric": metric,
        "scale_target": scaling.get("target", 80),
        "autoscaler": scaler.name,
        "knative_class": KNATIVE_CLASSES.get(scaler.name, "") if mode == SERVERLESS else "",
        "keda": _keda(
            engine.workload.format(name=view["name"]),
            namespace,
            metric,
            scaling.get("target", 80),
            values,
        ),
        "components": _components(spec, view["name"], namespace, metric, values, engine),
        "serving_runtime": _serving_runtime(spec, view["runtime"], engine),
        "runtime_version": spec["engine"].get("runtimeVersion"),
        "canary": spec.get("rollout", {}).get("canaryTrafficPercent"),
        "deployment_mode": mode,
        "service_account": spec.get("serviceAccountName")
        or (_reader_account(spec, values) if fetches else None),
        "exposure": exposed,
        # a public InferenceService is reached through KServe's own gateway (NetworkPolicy)
        "public": spec.get("endpoint", {}).get("visibility") == "public",
        "pod_security": _pod_security(spec.get("security", {})),
        "container_security": container_security,
        "seldon_requirements": _seldon_requirements(engine, spec),
        "triton_platform": engine.platforms.get(spec["model"]["format"]),
        "max_batch_size": spec["engine"].get("maxBatchSize", 0),
        "triton_inputs": _triton_tensors(spec, "inputs"),
        "model_ref": model_ref,
        "revision_args": revision_args,
        "model_file": _model_file(spec["model"]),
        # init containers that fetch the model and check its digest before the server starts
        # a model image is pulled by the kubelet, its digest the reference (KServe's modelcar)
        "init_containers": []
        if model_image
        else _init_containers(document, values, container_security, uri),
        "credentials_volume": None if model_image else _credentials_volume(document, values),
        "model_volume": engine.model_volume if fetched_by_pod(spec) and not model_image else "",
        "model_mount": engine.fetch_mount,
        "metrics_port": engine.metrics_port,
        "egress": _egress(spec, values, mesh),
        "peers": _peers(spec, view["name"], engine, _traffic_ports(engine, spec, port)),
        "mesh": mesh,
        "cache_size": cache_size,
        "scratch_size": scratch_size,
        "shm_size": _volume(spec, "shm"),
        "triton_outputs": _triton_tensors(spec, "outputs"),
    }


SERVERLESS = "Serverless"  # the KServe mode whose autoscalers are Knative's classes
KNATIVE_CLASSES = {KNATIVE: "kpa.autoscaling.knative.dev", HPA: "hpa.autoscaling.knative.dev"}
# The per-pod series of docs/autoscaling.md, as KEDA's Prometheus scaler queries them
KEDA_SERIES = {
    "rps": "modelgate:requests_per_second",
    "concurrency": "modelgate:requests_in_flight",
}
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
# The pods of a Deployment: NAME-<replica set hash>-<pod hash>
POD_PATTERN = "{name}-[a-z0-9]+-[a-z0-9]+"


def _keda(
    workload: str, namespace: str, metric: str, target: float, values: dict[str, Any]
) -> dict[str, Any]:
    """What a KEDA trigger needs: the query and threshold of a request metric (its series
    summed over the workload's pods, which KEDA divides by the replicas: a per-pod target),
    or the utilisation of a resource."""
    if metric not in KEDA_SERIES:
        return {"metric": metric, "resource": True, "value": str(int(target))}
    pods = POD_PATTERN.format(name=workload)  # a DNS label: nothing to escape
    query = f'sum({KEDA_SERIES[metric]}{{namespace="{namespace}",pod=~"{pods}"}})'
    server = (values.get("keda") or {}).get("prometheus", DEFAULT_PROMETHEUS)
    return {"metric": metric, "resource": False, "query": query, "server": server,
            "value": _number(target)}  # fmt: skip


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


# A transformer or explainer is a KServe model server (the kserve package's ModelServer): it
# serves HTTP on 8080 and answers the v1 and v2 health paths, the engine's among them
COMPONENT_PORT = 8080


def _components(
    spec: dict[str, Any],
    name: str,
    namespace: str,
    metric: str,
    values: dict[str, Any],
    engine: Engine,
) -> list[dict[str, Any]]:
    """spec.transformer and spec.explainer as KServe components (their pods are named
    NAME-COMPONENT-...), each scaled and spread like the predictor."""
    target = spec.get("scaling", {}).get("target", 80)
    scheduling = spec.get("scheduling", {})
    selector = {engine.pod_label: name}
    return [
        {
            "name": component,
            "image": spec[component]["image"],
            "args": list(spec[component].get("args", [])),
            "env": [_env(variable) for variable in spec[component].get("env", [])],
            # no GPUs: only its requests and limits, and the disk its logs may fill
            "resources": _with_disk(
                _resources({"resources": spec[component].get("resources", {})}), LOG_ALLOWANCE
            ),
            "topology_spread": _topology_spread(scheduling, engine, selector, component),
            "keda": _keda(f"{name}-{component}", namespace, metric, target, values),
            "port": COMPONENT_PORT,
            # its own server's, not the predictor's (another runtime, or spec.probes)
            "live_path": COMPONENT_HEALTH[0],
            "ready_path": COMPONENT_HEALTH[1],
        }
        for component in COMPONENTS
        if component in spec
    ]


def _serving_runtime(
    spec: dict[str, Any], name: str | None, engine: Engine
) -> dict[str, Any] | None:
    """spec.runtime as a ServingRuntime: a single-model runtime's container listens on its
    HTTP port; a multi-model one (ModelMesh) serves its models' data over gRPC, and its
    container gets the spec's resources (no predictor pod carries them there)."""
    runtime = spec.get("runtime")
    if runtime is None or not engine.runtime_definition:
        return None
    multi = bool(runtime.get("multiModel", False))
    return {
        "name": name,
        "image": runtime["image"],
        "formats": [
            {"name": entry["name"], **{k: entry[k] for k in _FORMAT_KEYS if k in entry}}
            for entry in runtime["formats"]
        ],
        "protocols": list(runtime.get("protocols", [spec["engine"]["protocol"]])),
        "args": list(runtime.get("args", [])),
        "env": [_env(variable) for variable in runtime.get("env", [])],
        "port": runtime.get("port", 8085 if multi else 8080),
        "multi_model": multi,
        "replicas": runtime.get("replicas") if multi else None,
        "resources": _resources(spec) if multi else {},
        "container_security": _container_security(spec.get("security", {})),
    }


_FORMAT_KEYS = ("version", "autoSelect", "priority")


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
        "ready_path": health_paths(spec, view["name"], {})[1],  # a model image: its protocol's
        "shm_size": _compose_memory(_volume(spec, "shm")),
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


# the namespace Argo CD creates admits only pods meeting Pod Security "restricted"
RESTRICTED_NAMESPACE = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def repository(documents: list[Document], values: dict[str, Any]) -> dict[str, list[dict]]:
    """Per environment the specs deploy to, in the order templates/values.yaml declares them:
    its delivery, and for Argo CD delivery its ApplicationSet's settings. Only an environment
    declared with autoSync syncs by itself; the others wait for `modelgate rollout`."""
    declared = delivery.from_values(values) or {}
    named = {env for doc in documents for env in doc.data["spec"].get("environments") or ()}
    order = [*declared, *sorted(named - set(declared))]
    sync = values.get("sync", {})
    return {
        "applicationsets": [
            {
                "environment": env,
                "name": applicationset_name(env),
                "delivery": declared[env].delivery if env in declared else delivery.ARGOCD,
                "namespace": values["namespace"].format(environment=env),
                "repo_url": values["repoURL"],
                "revision": values["targetRevision"],
                "auto_sync": env in declared and declared[env].auto_sync,
                # each Application's project: its team's, named in the generator's file
                "project": project_name("{{.team}}", env),
                "parameters": APPLICATION_FILE,
                # the models it deploys: their Applications are the ones a rollout may sync
                "models": sorted(
                    name
                    for doc in documents
                    if env in (doc.data["spec"].get("environments") or ())
                    and isinstance(name := doc.data["metadata"].get("name"), str)
                ),
                "sync": {
                    **{"prune": True, "selfHeal": True},
                    **sync.get("default", {}),
                    **sync.get(env, {}),
                },
                "namespace_labels": {
                    **RESTRICTED_NAMESPACE,
                    **from_values(values).namespace_labels,
                },
            }
            for env in order
            if env in named
        ]
    }


# What `modelgate deploy --target kubernetes` does in a namespace, and the rights it needs:
# server-side apply (create, patch), readiness from each object's status (get), removing what a
# failed deploy created and pruning what a spec no longer renders (list by modelgate's labels,
# delete), and the smoke test's port-forward to a Service (kubectl reads the Service, finds a
# pod behind it, opens the pod's portforward subresource). Nothing else.
APPLY_VERBS = ("create", "delete", "get", "list", "patch")
PORT_FORWARD = {"services": ("get",), "pods": ("get", "list"), "pods/portforward": ("create",)}
# What serves where is recorded in the cluster, a ConfigMap per model (deploy/record.py)
RECORD = {"configmaps": ("create", "get", "list", "patch")}
# Argo CD's namespace, where the rollout asks the environment's Applications to sync (and
# watches each until Argo CD reports it done) and their ApplicationSet to read the repository
ARGOCD_NAMESPACE = "argocd"
SYNC_VERBS = ("get", "patch", "watch")
REFRESH_VERBS = ("get", "patch")
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
    for resource, needed in (*PORT_FORWARD.items(), *RECORD.items()):
        verbs.setdefault(("", resource), set()).update(needed)
    rules: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), granted in sorted(verbs.items()):
        rules.setdefault((group, tuple(sorted(granted))), []).append(resource)
    return {
        "environment": environment,
        "name": "modelgate-deployer",
        "namespace": values["namespace"].format(environment=environment),
        "group": values.get("deployerGroup", DEPLOYER_GROUP),
        "rules": [
            {"apiGroups": [group], "resources": resources, "verbs": list(granted)}
            for (group, granted), resources in rules.items()
        ],
    }


def syncer(environment: str, models: list[str], values: dict[str, Any]) -> dict:
    """The Role a rollout needs in Argo CD's namespace: read, sync (patch `operation`) and
    watch the environment's Applications, by name, and no other Application; ask the
    environment's ApplicationSet to read the repository again (a new model's Application)."""
    return {
        "environment": environment,
        "name": f"modelgate-deployer-{environment}",
        "namespace": ARGOCD_NAMESPACE,
        "group": values.get("deployerGroup", DEPLOYER_GROUP),
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["applicationsets"],
                "resourceNames": [applicationset_name(environment)],
                "verbs": list(REFRESH_VERBS),
            },
            *(
                [
                    {
                        "apiGroups": ["argoproj.io"],
                        "resources": ["applications"],
                        "resourceNames": [application_name(name, environment) for name in models],
                        "verbs": list(SYNC_VERBS),
                    }
                ]
                if models
                else []
            ),
        ],
    }


def project(
    environment: str, team: str, kinds: set[tuple[str, str]], values: dict[str, Any]
) -> dict:
    """The Argo CD project of a team's Applications in an environment: from the deployment
    repository, into the environment's namespace of this cluster, only the namespaced kinds
    the team's models render there (apiVersion, kind), and of the cluster's kinds only the
    environment's own Namespace, which CreateNamespace=true makes (Argo CD checks it against
    the project like any object)."""
    return {
        "environment": environment,
        "team": team,
        "name": project_name(team, environment),
        "namespace": ARGOCD_NAMESPACE,
        "repo_url": values["repoURL"],
        "destination": values["namespace"].format(environment=environment),
        "kinds": [
            {"group": group, "kind": kind}
            for group, kind in sorted({(api.rpartition("/")[0], kind) for api, kind in kinds})
        ],
    }


def project_name(team: str, environment: str) -> str:
    """The Argo CD project of a team's Applications in an environment."""
    return f"modelgate-{team}-{environment}"


def application(document: Document) -> dict[str, Any]:
    """What an environment's ApplicationSet reads of the model (rendered/ENV/NAME/
    application.json): the team whose project its Application belongs to."""
    return {"team": document.data["metadata"]["team"]}


def applicationset_name(environment: str) -> str:
    """rendered/argocd/ENV.yaml's ApplicationSet."""
    return f"modelgate-{environment}"


def application_name(model: str, environment: str) -> str:
    """The Application the environment's ApplicationSet makes for rendered/ENV/MODEL."""
    return f"{model}-{environment}"


def storage_uri(document: Document, values: dict[str, Any], model_image: str = "") -> str:
    """Where a cluster fetches the artifact from. A Hugging Face repository at its revision is
    hf://ORG/NAME:REVISION, as KServe's storage initializer takes it; a repository artifact in
    an oci:// store is its model image by digest (`model_image`, render/modelcar.py)."""
    model = document.data["spec"]["model"]
    artifact = model.get("artifact", "")
    if artifact.startswith(HF) and model.get("revision"):
        return f"{artifact}:{model['revision']}"
    if not artifact or "://" in artifact:
        return artifact
    name = document.data["metadata"]["name"]
    oci = modelcar.oci_store(values)
    if oci is not None and model_image:
        return oci.reference(name, model_image)
    store = values["artifactStore"].rstrip("/")
    return f"{store}/{name}/{model['version']}/{Path(artifact).name}{_folder_end(model)}"


def _folder_end(model: dict[str, Any]) -> str:
    """'/' for a folder artifact, which the spec names by its tree digest (validation checks
    that the folder is one): storage initializers copy a prefix without it as a file, and
    would copy `NAME2/` along with `NAME/`."""
    return "/" if "treeSha256" in model else ""


def _fetch_dir(name: str, engine: Engine, model: dict[str, Any]) -> str:
    """Where the storage initializer puts the artifact: a file into the engine's model
    folder, a folder's contents into it (or into a folder of its name, `folder_by_name`)."""
    folder = engine.model_dir.format(name=name)
    return (
        f"{folder}/{_model_file(model)}" if engine.folder_by_name and _folder_end(model) else folder
    )


def _fetched_path(name: str, engine: Engine, model: dict[str, Any]) -> str:
    """The fetched artifact: the file, or the folder."""
    folder = _fetch_dir(name, engine, model)
    return folder if _folder_end(model) else f"{folder}/{_model_file(model)}"


def _model_file(model: dict[str, Any]) -> str:
    """The name Triton loads in the version folder: the artifact's file or folder name."""
    return Path(model.get("artifact", "model")).name or "model"


def _model_ref(document: Document, values: dict[str, Any], uri: str) -> str:
    """What an LLM server loads: a Hugging Face id for hf:// artifacts (it downloads them at
    spec.model.revision), else where its init container fetched the artifact to."""
    spec = document.data["spec"]
    artifact = spec["model"].get("artifact", "")
    if artifact.startswith(HF):
        return artifact.removeprefix(HF)
    if fetched_by_pod(spec):
        return _fetched_path(document.data["metadata"]["name"], engine_for(spec), spec["model"])
    return uri


def _revision_env(engine: Engine, model: dict[str, Any]) -> list[dict[str, Any]]:
    """The variable through which the engine takes the Hugging Face revision (TGI)."""
    if engine.revision_env and model.get("revision"):
        return [{"name": engine.revision_env, "value": model["revision"]}]
    return []


def _revision_args(engine: Engine, model: dict[str, Any]) -> list[str]:
    """The flags through which the engine takes the Hugging Face revision (vLLM)."""
    revision = model.get("revision")
    return [part for flag in engine.revision_args for part in (flag, revision)] if revision else []


def _init_containers(
    document: Document, values: dict[str, Any], security: dict[str, Any], uri: str
) -> list[dict[str, Any]]:
    """The pod's init containers: the storage initializer that fetches the artifact, then
    the check of its digest (verify.py), where the spec's pod fetches it itself."""
    spec = document.data["spec"]
    if not fetched_by_pod(spec):
        return []
    name = document.data["metadata"]["name"]
    engine = engine_for(spec)
    model = spec["model"]
    mount = {"name": engine.model_volume, "mountPath": engine.fetch_mount}
    fetch = {
        "name": FETCH_CONTAINER,
        "image": _helper_image(values, images.storage_reference(spec, values)),
        "args": [uri, _fetch_dir(name, engine, model)],
        "resources": INIT_RESOURCES,
        "securityContext": security,
        "volumeMounts": [mount],
    }
    scheme, credentials = _store_credentials(spec, values)
    if credentials.get("secret") and scheme in CREDENTIAL_FILES:
        fetch["env"] = [
            {"name": variable, "value": f"{CREDENTIALS_MOUNT}/{file}"}
            for variable, file in CREDENTIAL_FILES[scheme].items()
        ]
        fetch["volumeMounts"] = [
            mount,
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_MOUNT, "readOnly": True},
        ]
    elif uri.startswith("s3://") and stores.is_public(uri, values):
        fetch["env"] = [ANONYMOUS_S3]
    if not verified_by_pod(spec):
        return [fetch]
    field = digest_field(model) or ""
    check = {
        "name": verify.CONTAINER_NAME,
        "image": _helper_image(values, images.verifier_reference(spec, values)),
        "command": verify.command(),
        "args": [field, model[field], _fetched_path(name, engine, model)],
        "resources": INIT_RESOURCES,
        "securityContext": security,
        "volumeMounts": [{**mount, "readOnly": True}],
    }
    return [fetch, check]


def _helper_image(values: dict[str, Any], reference: str | None) -> str:
    """An init container's image, pinned by digest. Render refuses a reference without a pin
    (MG410) before any template sees it."""
    return images.rendered_image(values, reference or "")


def _image(spec: dict[str, Any], values: dict[str, Any]) -> str:
    """The spec's own image (judged by MG-SEC-001/002), else its engine's, pinned by digest."""
    if spec["engine"].get("image"):
        return spec["engine"]["image"]
    if spec["model"].get("image"):
        return spec["model"]["image"]
    reference = images.engine_reference(spec, values)
    return images.rendered_image(values, reference) if reference else ""


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


def _egress(spec: dict[str, Any], values: dict[str, Any], mesh: dict[str, Any]) -> dict[str, Any]:
    chosen = values.get("egress") or {}
    downloads = "artifact" in spec["model"]
    return {
        "dns": chosen.get("dns", DNS_PEERS),
        "artifacts": chosen.get("artifacts", ARTIFACT_PEERS) if downloads else [],
        "istiod": [_in_namespace(mesh["namespace"], ISTIOD_LABELS)] if mesh.get("sidecars") else [],
    }


# Sidecars fetch their configuration and certificates from istiod (xDS and CA on 15012); in
# ambient mode ztunnel carries mesh traffic to the peer pod's HBONE port, and the kubelet's
# probes reach the pod from ztunnel's link-local address
ISTIOD_LABELS = {"app": "istiod"}
ISTIOD_PORT = 15012
HBONE_PORT = 15008
AMBIENT_PROBE_SOURCE = "169.254.7.127/32"


def platform_mesh(platform: Platform) -> dict[str, Any]:
    """What the model pods' NetworkPolicy must admit for the mesh the platform runs."""
    if not platform.istio or not platform.istio_mode:  # no mesh: nothing to admit for one
        return {
            "mode": "",
            "namespace": "",
            "sidecars": False,
            "istiod_port": None,
            "hbone_port": None,
            "probe_source": None,
        }
    ambient = platform.istio_mode == "ambient"
    return {
        "mode": platform.istio_mode,
        "namespace": platform.istio_namespace,
        "sidecars": not ambient,
        "istiod_port": ISTIOD_PORT,
        "hbone_port": HBONE_PORT if ambient else None,
        "probe_source": AMBIENT_PROBE_SOURCE if ambient else None,
    }


def _in_namespace(namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A NetworkPolicy peer: the pods of a namespace (those with `labels`, or all)."""
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    if labels:
        peer["podSelector"] = {"matchLabels": dict(sorted(labels.items()))}
    return peer


def _peers(
    spec: dict[str, Any], name: str, engine: Engine, ports: list[str | int]
) -> list[dict[str, Any]]:
    """Where the model's pods call besides DNS and the artifact store, as NetworkPolicy egress
    rules: a transformer and an explainer call the predictor (at its traffic ports: Knative's
    queue-proxy too in Serverless mode), and each component the peers it declares
    (spec.COMPONENT.peers: a feature store)."""
    rules: list[dict[str, Any]] = []
    components = [component for component in COMPONENTS if component in spec]
    if components:
        predictor = {engine.pod_label: name, COMPONENT_LABEL: PREDICTOR}
        rules.append({"to": [{"podSelector": {"matchLabels": predictor}}], "ports": ports})
        if KNATIVE_QUEUE_PORT in ports:  # Serverless: Knative's activator may answer instead
            rules.append({"to": [_in_namespace(KNATIVE_NAMESPACE, ACTIVATOR_LABELS)],
                          "ports": [KNATIVE_QUEUE_PORT]})  # fmt: skip
    for component in components:
        for peer in spec[component].get("peers", []):
            rule = {"to": [_in_namespace(peer["namespace"], peer.get("podLabels"))],
                    "ports": [peer["port"]]}  # fmt: skip
            if rule not in rules:
                rules.append(rule)
    return rules


KNATIVE_QUEUE_PORT = 8012  # Serverless KServe pods receive requests through queue-proxy
# A Serverless predictor scaled to zero, or short of burst capacity, is reached through the
# activator of Knative Serving, on the same port
KNATIVE_NAMESPACE = "knative-serving"
ACTIVATOR_LABELS = {"app": "activator"}


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


def _resources(spec: dict[str, Any]) -> dict[str, Any]:
    """Requests and limits, GPUs as the extended resource of their vendor's device plugin."""
    resources = spec.get("resources", {})
    result: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        amounts = {key: str(value) for key, value in resources.get(kind, {}).items()}
        if resources.get("gpu"):
            amounts[accelerator_of(spec).resource] = str(resources["gpu"])
        if amounts:
            result[kind] = dict(sorted(amounts.items()))
    return result


def _node_selector(spec: dict[str, Any]) -> dict[str, str]:
    """spec.scheduling.nodeSelector, and the GPU model on its vendor's product label."""
    chosen = dict(spec.get("scheduling", {}).get("nodeSelector", {}))
    product = spec.get("resources", {}).get("acceleratorProduct")
    if product:
        chosen[accelerator_of(spec).product_label] = product
    return dict(sorted(chosen.items()))


# Replicas on different nodes and zones where the cluster allows it, for the Deployments
# modelgate writes; spec.scheduling.topologySpread replaces it.
DEFAULT_SPREAD = tuple(
    {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway"}
    for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
)


def _topology_spread(
    scheduling: dict[str, Any], engine: Engine, selector: dict[str, str], component: str
) -> list[dict[str, Any]]:
    """Spread constraints over the model's own pods: the spec's, else the default. The pods
    of an InferenceService component are told apart by KServe's component label: each
    component spreads its own replicas."""
    given = scheduling.get("topologySpread")
    if given is None:
        given = DEFAULT_SPREAD
    if engine.exposure != BY_WORKLOAD:
        selector = {**selector, COMPONENT_LABEL: component}
    return [{**each, "labelSelector": {"matchLabels": selector}} for each in given]


def _tolerations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """spec.scheduling.tolerations, and the taint GPU nodes carry (their device plugin's
    resource as its key, NoSchedule) unless the spec tolerates it already."""
    given = list(spec.get("scheduling", {}).get("tolerations", []))
    if not spec.get("resources", {}).get("gpu"):
        return given
    key = accelerator_of(spec).resource
    if any(tolerates(toleration, key) for toleration in given):
        return given
    return [*given, {"key": key, "operator": "Exists", "effect": GPU_TAINT_EFFECT}]


def _server_disk(engine: Engine, fetches: bool, cache_size: str, scratch_size: str) -> int:
    """The node disk the serving container may fill: its logs, a Deployment's /tmp and the
    model's volume (an engine's cache, or KServe's /mnt/models where the pod fetches the
    model). The kubelet counts every emptyDir on disk against the pod's containers' limits."""
    total = LOG_ALLOWANCE
    if engine.exposure == BY_WORKLOAD:
        total += to_bytes(scratch_size) or 0
    if engine.cache or fetches:
        total += to_bytes(cache_size) or 0
    return total


def _with_disk(resources: dict[str, Any], disk: int) -> dict[str, Any]:
    """`resources` requesting and limited to `disk` bytes of ephemeral storage."""
    amount = mebibytes(disk)
    return {
        kind: dict(sorted({**resources.get(kind, {}), "ephemeral-storage": amount}.items()))
        for kind in ("requests", "limits")
    }


# The Secret values.artifactCredentials names is mounted into the storage initializer as files
# (never as environment variables), each found through the variable its store's client reads
CREDENTIALS_VOLUME = "artifact-store-credentials"
CREDENTIALS_MOUNT = "/var/run/secrets/modelgate/artifact-store"
CREDENTIAL_FILES: dict[str, dict[str, str]] = {
    "s3": {"AWS_SHARED_CREDENTIALS_FILE": "credentials", "AWS_CONFIG_FILE": "config"},
    "gs": {"GOOGLE_APPLICATION_CREDENTIALS": "key.json"},
    "hf": {"HF_TOKEN_PATH": "token"},
}
# KServe's storage initializer sends unsigned requests to s3:// with this set (a store of
# values.publicArtifactStores); for gs:// it falls back to an anonymous client by itself
ANONYMOUS_S3 = {"name": "awsAnonymousCredential", "value": "true"}
SECRET_FILE_MODE = 0o440  # the owner and the pod's fsGroup read it


def _credentials_volume(document: Document, values: dict[str, Any]) -> dict[str, Any] | None:
    """The pod volume of the store's Secret, where the pod's storage initializer mounts it."""
    spec = document.data["spec"]
    scheme, credentials = _store_credentials(spec, values)
    if not (fetched_by_pod(spec) and credentials.get("secret") and scheme in CREDENTIAL_FILES):
        return None
    secret = {"secretName": credentials["secret"], "defaultMode": SECRET_FILE_MODE}
    return {"name": CREDENTIALS_VOLUME, "secret": secret}


def _store_credentials(spec: dict[str, Any], values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The scheme of the store the spec's pods fetch their model from, and what
    values.artifactCredentials names for it ({} for none)."""
    artifact = spec["model"].get("artifact", "")
    scheme = artifact.split("://", 1)[0] if "://" in artifact else ""
    if not scheme:  # kept in the repository: uploaded to values.artifactStore
        scheme = str(values.get("artifactStore", "")).split("://", 1)[0]
    chosen = (values.get("artifactCredentials") or {}).get(scheme)
    return scheme, chosen if isinstance(chosen, dict) else {}


def _reader_account(spec: dict[str, Any], values: dict[str, Any]) -> str | None:
    """The service account the platform gives pods that read the artifact store."""
    if "artifact" not in spec["model"] or not engine_for(spec).fetch:
        return None
    return _store_credentials(spec, values)[1].get("serviceAccount")


# (periodSeconds, failureThreshold) of each probe the spec does not set
PROBE_DEFAULTS = {"liveness": (10, 3), "readiness": (5, 3)}


def _probes(
    spec: dict[str, Any], engine: Engine, port: str | int, live: str, ready: str
) -> dict[str, Any]:
    """HTTP probes of the serving container: the engine's paths and timing, overridden field
    by field by spec.probes. A Deployment always has a startup probe (models load slowly);
    an InferenceService has one where the spec asks for it."""
    settings = spec.get("probes", {})
    probes: dict[str, Any] = {
        kind: _probe(settings.get(kind, {}), path, port, *PROBE_DEFAULTS[kind])
        for kind, path in (("liveness", live), ("readiness", ready))
    }
    startup = settings.get("startup")
    probes["startup"] = (
        _probe(startup or {}, ready, port, pod.STARTUP_PERIOD, pod.startup_failures(spec))
        if startup is not None or engine.exposure == BY_WORKLOAD
        else None
    )
    return probes


def _probe(
    settings: dict[str, Any], path: str, port: str | int, period: int, failures: int
) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": settings.get("path", path), "port": port}}
    if "initialDelaySeconds" in settings:
        probe["initialDelaySeconds"] = settings["initialDelaySeconds"]
    probe["periodSeconds"] = settings.get("periodSeconds", period)
    if "timeoutSeconds" in settings:
        probe["timeoutSeconds"] = settings["timeoutSeconds"]
    probe["failureThreshold"] = settings.get("failureThreshold", failures)
    return probe


def _volume(spec: dict[str, Any], name: str) -> str | None:
    """The size of the writable volume spec.volumes names (cache, shm), if it names it."""
    volume = spec.get("volumes", {}).get(name)
    return volume["sizeLimit"] if volume else None


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

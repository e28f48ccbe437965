"""What a KServe or Seldon Core v2 manifest means, as plain data that two manifests can be
compared by, field by field (tests/test_upstream.py).

A manifest says some things and leaves others to the platform. The meaning of a field left
unset is what the platform then does, so both are written the same way here: an
InferenceService without the deploymentMode annotation runs in KServe's default mode
(Serverless), Knative scales it on 100 requests in flight per replica, Kubernetes gives a
container with a limit and no request a request equal to the limit. The expectations in
tests/upstream/NAME.expect.yaml are written in this same vocabulary, from reading the
upstream manifests; `meaning_of` reads a rendered manifest into it.

What is left out on purpose: labels, annotations and security contexts that modelgate adds
to every manifest (they change no behaviour the samples define), the bounds it gives every
pod likewise (ephemeral-storage requests and limits, the size of the volume its own storage
initializer fetches into, its default spread of each component's replicas over nodes and
zones), the namespace (an environment's), and container ports of the runtimes (theirs,
unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

# KServe names its Kubernetes Deployment mode "Standard" since 0.15 and "RawDeployment"
# before; "Knative" and "Serverless" likewise name one mode.
MODES = {
    "Serverless": "Serverless",
    "Knative": "Serverless",
    "RawDeployment": "RawDeployment",
    "Standard": "RawDeployment",
    "ModelMesh": "ModelMesh",
}
DEFAULT_MODE = "Serverless"  # inferenceservice-config defaultDeploymentMode of an install
# Who scales a component when serving.kserve.io/autoscalerClass is not set
DEFAULT_AUTOSCALER = {"Serverless": "knative", "RawDeployment": "hpa"}
# Knative's autoscaler class in Serverless mode: its own (KPA) or Kubernetes' HPA
KNATIVE_CLASSES = {"kpa.autoscaling.knative.dev": "knative", "hpa.autoscaling.knative.dev": "hpa"}
# Knative's autoscaler without a target: container-concurrency-target-default (100), or
# requests-per-second-target-default (200) when it scales on rps
KNATIVE_TARGETS = {"concurrency": 100, "rps": 200}
HPA_DEFAULT = ("cpu", 80)  # KServe's HorizontalPodAutoscaler without scaleMetric/scaleTarget
UNBOUNDED = "unbounded"  # Knative's max-scale 0: as many replicas as the load asks for
VISIBILITY_LABELS = ("networking.kserve.io/visibility", "networking.knative.dev/visibility")
COMPONENTS = ("predictor", "transformer", "explainer")
POD_FIELDS = {
    "nodeSelector": "nodeSelector",
    "tolerations": "tolerations",
    "affinity": "affinity",
    "topologySpreadConstraints": "topologySpread",
    "serviceAccountName": "serviceAccountName",
}
PROBES = {"readinessProbe": "readiness", "livenessProbe": "liveness", "startupProbe": "startup"}
QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
SUFFIXES = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}

Path = tuple[str, ...]
DISK = "ephemeral-storage"
FETCH_VOLUME = "kserve-provision-location"  # modelgate's storage initializer fetches into it
# modelgate's spread of a component's replicas where the spec names none
DEFAULT_SPREAD = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")


# -- normal forms -------------------------------------------------------------------------------


def quantity(value: Any) -> str | None:
    """A Kubernetes quantity in one spelling: "100m", 0.1 and "0.1" are all "0.1"."""
    if value is None:
        return None
    match = QUANTITY.match(str(value))
    if match is None:
        return str(value)
    amount = Decimal(match.group(1)) * SUFFIXES[match.group(2)]
    return format(amount.normalize(), "f")


def resources(block: dict[str, Any] | None) -> dict[str, Any]:
    """requests and limits with every quantity normalised; a resource with a limit and no
    request gets the limit as its request, as the API server defaults it."""
    block = block or {}
    limits = {name: quantity(value) for name, value in (block.get("limits") or {}).items()}
    requests = {name: quantity(value) for name, value in (block.get("requests") or {}).items()}
    requests = {**limits, **requests}
    for bounds in (requests, limits):
        bounds.pop(DISK, None)
    return prune({"requests": requests, "limits": limits})


def storage(uri: str | None) -> str | None:
    """A folder's storage URI with or without its closing '/' names the same objects."""
    return uri.rstrip("/") if uri else uri


def prune(value: Any) -> Any:
    """Leave out what is not there: None, empty maps and empty lists."""
    if isinstance(value, dict):
        kept = {key: prune(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    return value


def normalise(meaning: dict[str, Any]) -> dict[str, Any]:
    """An expectation written by hand, in the form `meaning_of` gives: quantities in one
    spelling, requests defaulted from limits, storage URIs without a closing '/'."""
    return prune(_normalise(meaning, ()))


def _normalise(node: Any, path: Path) -> Any:
    if isinstance(node, dict):
        if path and path[-1] == "resources":
            return resources(node)
        return {key: _normalise(item, (*path, key)) for key, item in node.items()}
    return leaf(path, node)


def leaf(path: Path, value: Any) -> Any:
    """One value at `path`, in normal form (how deviations name a rendered value too)."""
    if (path and path[-1] == "memory") or "resources" in path:
        return quantity(value)
    if path and path[-1] == "storageUri":
        return storage(value)
    return value


# -- reading rendered manifests ----------------------------------------------------------------


def meaning_of(manifests: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The meaning of the manifests one spec renders, by kind. Kinds the samples do not
    define (Services, mesh policies) have no entry; a KEDA ScaledObject is folded into the
    component it scales, where KServe itself would have made it from the InferenceService."""
    manifests = list(manifests)
    result: dict[str, Any] = {}
    for manifest in manifests:
        reader = READERS.get(manifest.get("kind", ""))
        if reader is not None:
            kind = MEANING_KIND.get(manifest["kind"], manifest["kind"])
            result[kind] = prune(reader(manifest))
    for manifest in manifests:
        if manifest.get("kind") == "ScaledObject":
            _fold_scaled_object(result, manifest)
    return result


def inference_service(manifest: dict[str, Any]) -> dict[str, Any]:
    metadata, spec = manifest["metadata"], manifest["spec"]
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    mode = MODES[annotations.get("serving.kserve.io/deploymentMode", DEFAULT_MODE)]
    if mode == "Serverless":
        autoscaler = KNATIVE_CLASSES.get(annotations.get("autoscaling.knative.dev/class", ""))
    else:
        autoscaler = annotations.get("serving.kserve.io/autoscalerClass")
    meaning: dict[str, Any] = {
        "name": metadata["name"],
        "deploymentMode": mode,
        # ModelMesh serves every model through the Service its runtimes share, in the cluster
        "visibility": "internal" if mode == "ModelMesh" else _visibility(labels),
        # ModelMesh: the entry of its storage-config Secret the model is fetched with
        "storageKey": annotations.get("serving.kserve.io/secretKey"),
    }
    autoscaler = autoscaler or DEFAULT_AUTOSCALER.get(mode)
    for name in COMPONENTS:
        if name in spec:
            meaning[name] = component(spec[name], mode, autoscaler)
    return meaning


def _visibility(labels: dict[str, str]) -> str:
    local = any(labels.get(label) == "cluster-local" for label in VISIBILITY_LABELS)
    return "internal" if local else "public"


def component(block: dict[str, Any], mode: str, autoscaler: str | None) -> dict[str, Any]:
    """A predictor, transformer or explainer: what runs, on what, scaled how."""
    if "model" in block:
        model = block["model"]
        container = model
        meaning: dict[str, Any] = {
            "modelFormat": model["modelFormat"]["name"],
            "runtime": model.get("runtime"),
            "runtimeVersion": model.get("runtimeVersion"),
            "protocol": model.get("protocolVersion", "v1"),
            "storageUri": storage(model.get("storageUri")),
            "storage": model.get("storage"),  # ModelMesh: a key of its storage config + path
        }
    else:
        [container] = block["containers"][:1]
        meaning = {"image": container["image"], "command": container.get("command")}
    meaning["args"] = container.get("args")
    meaning["env"] = {item["name"]: _env_value(item) for item in container.get("env") or []}
    meaning["resources"] = resources(container.get("resources"))
    meaning["probes"] = {
        name: _probe(container[field]) for field, name in PROBES.items() if field in container
    }
    meaning["volumes"] = {
        volume["name"]: volume.get("emptyDir")
        for volume in block.get("volumes") or []
        if volume["name"] != FETCH_VOLUME
    }
    for field, name in POD_FIELDS.items():
        meaning[name] = block.get(field)
    if _default_spread(meaning["topologySpread"]):
        meaning["topologySpread"] = None
    if mode != "ModelMesh":  # ModelMesh places models on its own runtime pods
        meaning["scaling"] = _scaling(block, mode, autoscaler)
    meaning["canaryTrafficPercent"] = block.get("canaryTrafficPercent")
    return meaning


def _default_spread(constraints: Any) -> bool:
    return isinstance(constraints, list) and [
        (c.get("topologyKey"), c.get("maxSkew"), c.get("whenUnsatisfiable")) for c in constraints
    ] == [(key, 1, "ScheduleAnyway") for key in DEFAULT_SPREAD]


def _env_value(item: dict[str, Any]) -> Any:
    if "value" in item:
        return item["value"]
    reference = item.get("valueFrom", {}).get("secretKeyRef", {})
    return {"secret": reference.get("name"), "key": reference.get("key")}


def _probe(probe: dict[str, Any]) -> dict[str, Any]:
    timing = {
        key: probe[key]
        for key in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
        if key in probe
    }
    return {"path": probe.get("httpGet", {}).get("path"), **timing}


def _scaling(block: dict[str, Any], mode: str, autoscaler: str | None) -> dict[str, Any]:
    low = block.get("minReplicas", 1)
    high = block.get("maxReplicas") or 0
    if autoscaler == "knative":  # Knative's own autoscaler
        metric = block.get("scaleMetric", "concurrency")
        target = block.get("scaleTarget", KNATIVE_TARGETS.get(metric))
        return {
            "autoscaler": autoscaler,
            "minReplicas": low,
            "maxReplicas": high or UNBOUNDED,
            "metric": metric,
            "target": target,
        }
    # KServe's HPA (and KEDA's): never fewer than minReplicas, at most max(min, max)
    metric, target = _hpa_metric(block)
    return {
        "autoscaler": autoscaler,
        "minReplicas": low,
        "maxReplicas": max(high, low),
        "metric": metric,
        "target": target,
    }


def _hpa_metric(block: dict[str, Any]) -> tuple[str, Any]:
    """scaleMetric/scaleTarget, or the first resource metric of autoScaling."""
    for metric in (block.get("autoScaling") or {}).get("metrics") or []:
        if metric.get("type") == "Resource":
            target = metric["resource"]["target"]
            return metric["resource"]["name"], target.get("averageUtilization")
        if metric.get("type") == "External":  # KEDA: a query of a metrics backend
            external = metric["external"]
            return external["metric"]["query"], _number(external["target"].get("value"))
    return block.get("scaleMetric", HPA_DEFAULT[0]), block.get("scaleTarget", HPA_DEFAULT[1])


def _fold_scaled_object(result: dict[str, Any], scaled: dict[str, Any]) -> None:
    """A ScaledObject beside an InferenceService scales one of its components' Deployments
    (NAME-predictor, NAME-transformer): it becomes that component's scaling."""
    service = result.get("InferenceService")
    if service is None:
        return
    target = scaled["spec"]["scaleTargetRef"]["name"]
    for name in COMPONENTS:
        if target == f"{service['name']}-{name}" and name in service:
            spec = scaled["spec"]
            [trigger] = spec["triggers"][:1]
            service[name]["scaling"] = prune(
                {
                    "autoscaler": "keda",
                    "minReplicas": spec.get("minReplicaCount", 0),
                    "maxReplicas": spec.get("maxReplicaCount", 100),
                    "metric": trigger.get("metadata", {}).get("query") or trigger["type"],
                    "target": _number(trigger.get("metadata", {}).get("value")),
                }
            )


def _number(text: Any) -> Any:
    try:
        value = Decimal(str(text))
    except ArithmeticError:
        return text
    return int(value) if value == value.to_integral_value() else float(value)


def serving_runtime(manifest: dict[str, Any]) -> dict[str, Any]:
    """A ServingRuntime or ClusterServingRuntime: the server a predictor's model runs on."""
    spec = manifest["spec"]
    [container] = spec["containers"][:1]
    return {
        "name": manifest["metadata"]["name"],
        "scope": "cluster" if manifest["kind"] == "ClusterServingRuntime" else "namespace",
        "annotations": spec.get("annotations"),  # KServe copies them to the runtime's pods
        "formats": [
            prune(
                {
                    "name": item["name"],
                    "version": item.get("version"),
                    "autoSelect": item.get("autoSelect", False),
                    "priority": item.get("priority"),
                }
            )
            for item in spec.get("supportedModelFormats") or []
        ],
        "protocols": spec.get("protocolVersions") or ["v1"],
        "multiModel": spec.get("multiModel", False),
        "image": container["image"],
        "command": container.get("command"),
        "args": container.get("args"),
        "env": {item["name"]: _env_value(item) for item in container.get("env") or []},
        "resources": resources(container.get("resources")),
    }


def seldon_model(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Seldon Core v2 Model: where its artifact is, what a server must offer to load it,
    how much memory it claims there, and how many copies it keeps."""
    spec = manifest["spec"]
    replicas = spec.get("replicas", 1)
    return {
        "name": manifest["metadata"]["name"],
        "storageUri": storage(spec["storageUri"]),
        "requirements": sorted(spec.get("requirements") or []),
        "memory": quantity(spec.get("memory")),
        "server": spec.get("server"),
        "scaling": {
            "replicas": replicas,
            "minReplicas": spec.get("minReplicas", replicas),
            "maxReplicas": spec.get("maxReplicas", replicas),
        },
    }


# One meaning for kinds that differ only in scope
MEANING_KIND = {"ClusterServingRuntime": "ServingRuntime"}
READERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "InferenceService": inference_service,
    "ServingRuntime": serving_runtime,
    "ClusterServingRuntime": serving_runtime,
    "Model": seldon_model,
}


# -- comparing ---------------------------------------------------------------------------------


def leaves(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every value that is not a map, with its path; a list is one value (order counts)."""
    if isinstance(node, dict) and node:
        for key, item in node.items():
            yield from leaves(item, (*path, str(key)))
    else:
        yield path, node


def at(node: Any, path: Path) -> Any:
    """The value under `path`, None where there is none."""
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def differences(
    expected: dict[str, Any], rendered: dict[str, Any], deviations: list[dict[str, Any]]
) -> list[str]:
    """Every field where the rendered meaning differs from the expected one, except where a
    deviation says what modelgate renders there instead (and that is what it renders); and
    every deviation that no longer deviates (the rendered value is the upstream one)."""
    problems = []
    declared = {tuple(str(key) for key in item["at"]): item for item in deviations}
    for path, item in declared.items():
        instead = _normal(path, item["modelgate"])
        if at(rendered, path) != instead:
            problems.append(
                f"{'.'.join(path)}: deviation says modelgate renders {instead!r}, "
                f"it renders {at(rendered, path)!r}"
            )
        if at(expected, path) == instead:
            problems.append(f"{'.'.join(path)}: declared as a deviation, but it is the same")
    seen = set()
    for path, _ in [*leaves(expected), *leaves(rendered)]:
        if path in seen or any(path[: len(other)] == other for other in declared):
            continue
        seen.add(path)
        want, got = at(expected, path), at(rendered, path)
        if want != got:
            problems.append(f"{'.'.join(path)}: upstream means {want!r}, rendered {got!r}")
    return problems


def _normal(path: Path, value: Any) -> Any:
    """A deviation's value in normal form, as if it stood at `path` of an expectation."""
    if isinstance(value, dict):
        nested: dict[str, Any] = value
        for key in reversed(path):
            nested = {key: nested}
        return at(normalise(nested), path)
    return leaf(path, value)

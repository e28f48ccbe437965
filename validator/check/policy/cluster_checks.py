"""Output checks on what a cluster does with one spec's objects, read together the way a
platform engineer reads them: whether each pod reaches what it calls and is let in there,
fits on the nodes it needs, keeps its disk within bounds, fetches its model with credentials,
and runs in the mesh its Istio policies rely on.

Each check sees the objects of one spec rendered for one environment (or one ApplicationSet);
the mesh checks also read the platform templates/values.yaml declares (context.values).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...engines import ACCELERATORS, COMPONENTS, tolerates
from ...engines.kserve import COMPONENT_LABEL
from ...quantities import to_bytes
from .. import stores
from ..platform import from_values
from .output_checks import (
    KSERVE_POD_LABEL,
    OUTPUT_CHECKS,
    OutputCheck,
    _namespace,
    _spec,
    pod_labels,
    policy_types,
    selects,
)
from .placement import PLACEMENT_CHECKS
from .rendered import (
    DEPLOYMENT_MODE,
    JsonPath,
    OutputContext,
    OutputObject,
    containers,
    serving_container,
)
from .rules import Rule

Finding = tuple[OutputObject, JsonPath, str]
PREDICTOR = "predictor"
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # the label every namespace carries
# A cluster address a component's args or env name: SERVICE.NAMESPACE.svc[.cluster.local]:PORT
SERVICE_ADDRESS = re.compile(r"\b[a-z0-9-]+\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d{1,5})\b")
ISTIOD = {"app": "istiod"}
ISTIOD_PORT = 15012
ISTIO_KINDS = ("PeerAuthentication", "RequestAuthentication", "AuthorizationPolicy")
# Stores whose downloads need credentials (hf:// serves public models without any)
CREDENTIAL_SCHEMES = ("s3://", "gs://")
FETCH_CONTAINER = "storage-initializer"  # KServe injects none into a pod that has one
KNATIVE_QUEUE_PORT = 8012  # where a Serverless pod's queue-proxy takes its requests
# and Knative's activator, which answers for a Serverless predictor scaled to zero
KNATIVE_NAMESPACE = "knative-serving"
ACTIVATOR = {"app": "activator"}
DISK = "ephemeral-storage"
GPU_RESOURCES = tuple(accelerator.resource for accelerator in ACCELERATORS.values())


@dataclass(frozen=True)
class Pods:
    """The pods one pod spec of a workload makes: an InferenceService component's, or a
    Deployment's."""

    workload: OutputObject
    path: JsonPath  # of the pod spec in the workload
    spec: dict[str, Any]
    labels: dict[str, Any]
    namespace: Any
    component: str  # predictor, transformer or explainer; "" for a Deployment's

    @property
    def named(self) -> str:
        of = f"{self.workload.kind} {self.workload.name}"
        return f"the {self.component} pods of {of}" if self.component else f"the pods of {of}"


@dataclass(frozen=True)
class Peer:
    """Something pods call: pods of a namespace (those with `labels`, or any) on a port."""

    namespace: Any
    labels: Mapping[str, Any] | None
    port: int
    named: str


def pod_sets(objects: Sequence[OutputObject]) -> list[Pods]:
    found = []
    for workload in objects:
        if workload.kind not in ("Deployment", "StatefulSet", "DaemonSet", "InferenceService"):
            continue
        namespace = _namespace(workload)
        for path, pod in workload.pod_specs:
            if workload.kind == "InferenceService":
                component = str(path[-1])
                extra = pod.get("labels") if isinstance(pod.get("labels"), dict) else {}
                labels = {
                    **extra,
                    KSERVE_POD_LABEL: workload.name,
                    COMPONENT_LABEL: component,
                }
            else:
                component, labels = "", pod_labels(workload)
            found.append(Pods(workload, path, pod, labels, namespace, component))
    return found


# -- the network: every call a pod makes is let out of it and into its peer ------------------


def network_peers(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """Each pod's peers are admitted by the NetworkPolicies rendered with it: egress of the
    caller and, where the peer's pods are rendered too, ingress of the peer. The peers: the
    predictor of a transformer and an explainer, what spec.COMPONENT.peers declares and the
    cluster addresses their args and env name, and istiod for sidecars."""
    policies = [obj for obj in objects if obj.kind == "NetworkPolicy"]
    groups = pod_sets(objects)
    for caller in groups:
        for peer in _peers(caller, groups, context):
            yield from _admitted(caller, peer, policies, groups)


def _peers(caller: Pods, groups: list[Pods], context: OutputContext) -> Iterator[Peer]:
    if caller.component in COMPONENTS:
        for callee in groups:
            if callee.workload is caller.workload and callee.component == PREDICTOR:
                serverless = _serverless(callee.workload)
                port = KNATIVE_QUEUE_PORT if serverless else _serving_port(callee)
                yield Peer(callee.namespace, callee.labels, port, f"the predictor (port {port})")
                if serverless:
                    yield Peer(KNATIVE_NAMESPACE, ACTIVATOR, port, f"Knative's activator ({port})")
        yield from _declared(caller, context)
    mesh = from_values(context.values)
    if mesh.istio and mesh.istio_mode == "sidecar-cni":
        yield Peer(mesh.istio_namespace, ISTIOD, ISTIOD_PORT, f"istiod (port {ISTIOD_PORT})")


def _declared(caller: Pods, context: OutputContext) -> Iterator[Peer]:
    spec = (context.spec or {}).get("spec", {})
    component = spec.get(caller.component) if isinstance(spec, dict) else None
    for peer in (component or {}).get("peers", []):
        where = f"{peer['namespace']} (port {peer['port']}, spec.{caller.component}.peers)"
        yield Peer(peer["namespace"], peer.get("podLabels"), peer["port"], where)
    for _, container in containers(caller.workload, caller.path, caller.spec):
        for namespace, port in SERVICE_ADDRESS.findall(" ".join(_strings(container))):
            named = f"{namespace} (port {port}, named in its args or env)"
            yield Peer(namespace, None, int(port), named)


def _serverless(workload: OutputObject) -> bool:
    """A Serverless InferenceService: requests reach its pods through Knative's queue-proxy."""
    metadata = workload.data.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    mode = annotations.get(DEPLOYMENT_MODE) if isinstance(annotations, dict) else None
    return mode in (None, "Serverless")  # KServe's default mode


def _strings(container: dict[str, Any]) -> list[str]:
    """The container's args and literal environment values."""
    args = container.get("args") if isinstance(container.get("args"), list) else []
    env = container.get("env") if isinstance(container.get("env"), list) else []
    values = [item.get("value") for item in env if isinstance(item, dict)]
    return [text for text in [*args, *values] if isinstance(text, str)]


def _serving_port(pods: Pods) -> int:
    found = serving_container(pods.workload, pods.path, pods.spec)
    container = found[1] if found else {}
    for probe in ("readinessProbe", "livenessProbe"):
        port = _mapping(_mapping(container.get(probe)).get("httpGet")).get("port")
        if isinstance(port, int):
            return port
    ports = container.get("ports") if isinstance(container.get("ports"), list) else []
    numbers = [p.get("containerPort") for p in ports if isinstance(p, dict)]
    return next((n for n in numbers if isinstance(n, int)), 8080)


def _admitted(
    caller: Pods, peer: Peer, policies: list[OutputObject], groups: list[Pods]
) -> Iterator[Finding]:
    out = _restricting(policies, caller.namespace, caller.labels, "Egress")
    if out and not any(
        _rule_admits(rule, "to", peer.namespace, peer.labels, peer.port, caller.namespace)
        for policy in out
        for rule in _rules(policy, "egress")
    ):
        yield (
            out[0],
            ["spec", "egress"],
            f"NetworkPolicy {out[0].name} lets {caller.named} reach nothing of {peer.named}",
        )
    if peer.labels is None:
        return
    for callee in groups:
        if callee.namespace != peer.namespace or not selects(
            {"matchLabels": peer.labels}, callee.labels
        ):
            continue
        into = _restricting(policies, callee.namespace, callee.labels, "Ingress")
        if into and not any(
            _rule_admits(rule, "from", caller.namespace, caller.labels, peer.port, callee.namespace)
            for policy in into
            for rule in _rules(policy, "ingress")
        ):
            yield (
                into[0],
                ["spec", "ingress"],
                f"NetworkPolicy {into[0].name} keeps {caller.named} out of {peer.named}",
            )


def _restricting(
    policies: list[OutputObject], namespace: Any, labels: dict[str, Any], kind: str
) -> list[OutputObject]:
    """The NetworkPolicies that restrict `kind` traffic of the pods with `labels`."""
    return [
        policy
        for policy in policies
        if _namespace(policy) == namespace
        and selects(_spec(policy).get("podSelector"), labels)
        and kind in policy_types(policy)
    ]


def _rules(policy: OutputObject, direction: str) -> list[dict[str, Any]]:
    listed = _spec(policy).get(direction)
    return [rule for rule in listed if isinstance(rule, dict)] if isinstance(listed, list) else []


def _rule_admits(
    rule: dict[str, Any],
    side: str,
    namespace: Any,
    labels: Mapping[str, Any] | None,
    port: int,
    own_namespace: Any,
) -> bool:
    """A NetworkPolicy rule lets traffic on `port` to (`to`) or from (`from`) the pods with
    `labels` in `namespace`. Where the pods' labels are unknown, only a selector that asks
    for none admits them; an ipBlock admits no pod (pod addresses are not for ipBlocks)."""
    ports = rule.get("ports")
    if ports and not any(_port_admits(entry, port) for entry in ports if isinstance(entry, dict)):
        return False
    peers = rule.get(side)
    if not peers:
        return True
    return any(
        _peer_admits(entry, namespace, labels or {}, own_namespace)
        for entry in peers
        if isinstance(entry, dict)
    )


def _port_admits(entry: dict[str, Any], port: int) -> bool:
    if entry.get("protocol", "TCP") != "TCP":
        return False
    given = entry.get("port")
    if given is None:
        return True
    if not isinstance(given, int):
        return False  # a named port: only the peer's pods could say which number it is
    end = entry.get("endPort")
    return given <= port <= end if isinstance(end, int) else given == port


def _peer_admits(
    entry: dict[str, Any], namespace: Any, labels: Mapping[str, Any], own_namespace: Any
) -> bool:
    if "ipBlock" in entry:
        return False
    pods = entry.get("podSelector")
    if pods is not None and not selects(pods, labels):
        return False
    if "namespaceSelector" not in entry:
        return namespace == own_namespace and pods is not None
    return selects(entry["namespaceSelector"], {NAMESPACE_NAME: namespace})


# -- the node disk: every container bounded, every volume on disk sized and paid for ----------


def ephemeral_storage(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """Every container requests and is limited in ephemeral-storage, every emptyDir on the
    node's disk has a sizeLimit, and the containers' limits cover those volumes (the kubelet
    counts them against the pod's limit and evicts a pod beyond it)."""
    for pods in pod_sets(objects):
        limits = 0
        for where, container in containers(pods.workload, pods.path, pods.spec):
            resources = _mapping(container.get("resources"))
            missing = [
                kind for kind in ("requests", "limits") if DISK not in _mapping(resources.get(kind))
            ]
            if missing:
                yield (
                    pods.workload,
                    [*where, "resources"] if resources else where,
                    f"container {container.get('name', where[-1])} of {pods.named} has no "
                    f"{DISK} {' or '.join(missing)}",
                )
            elif where[-2] != "initContainers":
                limits += to_bytes(resources["limits"][DISK]) or 0
        sized = 0
        volumes = pods.spec.get("volumes") if isinstance(pods.spec.get("volumes"), list) else []
        for index, volume in enumerate(volumes):
            empty = volume.get("emptyDir") if isinstance(volume, dict) else None
            if not isinstance(empty, dict) or empty.get("medium") == "Memory":
                continue
            size = to_bytes(empty.get("sizeLimit"))
            if size is None:
                yield (
                    pods.workload,
                    [*pods.path, "volumes", index, "emptyDir"],
                    f"emptyDir {volume.get('name')} of {pods.named} has no sizeLimit: it may fill "
                    "the node's disk",
                )
            else:
                sized += size
        if limits and limits < sized:
            yield (
                pods.workload,
                [*pods.path, "volumes"],
                f"the {DISK} limits of {pods.named} ({limits >> 20}Mi) do not cover their volumes "
                f"on disk ({sized >> 20}Mi): the kubelet evicts them before the volumes are full",
            )


# -- scheduling ----------------------------------------------------------------------------


def topology_spread(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """The replicas of every workload's pods (each InferenceService component's too) are
    spread over nodes: topology spread constraints whose selector picks the pods' own."""
    for pods in pod_sets(objects):
        constraints = pods.spec.get("topologySpreadConstraints")
        if not isinstance(constraints, list) or not constraints:
            yield pods.workload, pods.path, f"{pods.named} have no topology spread constraints"
            continue
        for index, constraint in enumerate(constraints):
            selector = constraint.get("labelSelector") if isinstance(constraint, dict) else None
            if not selects(selector, pods.labels):
                yield (
                    pods.workload,
                    [*pods.path, "topologySpreadConstraints", index, "labelSelector"],
                    f"topology spread constraint {index} of {pods.named} does not select them",
                )


def gpu_tolerations(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """A pod that asks for GPUs tolerates the taint GPU nodes carry (its resource's key,
    NoSchedule): without it the pod stays Pending on tainted GPU nodes."""
    for obj in objects:
        for path, pod in obj.pod_specs:
            wanted = sorted(
                {
                    resource
                    for _, container in containers(obj, path, pod)
                    for kind in ("requests", "limits")
                    for resource in _mapping(_mapping(container.get("resources")).get(kind))
                    if resource in GPU_RESOURCES
                }
            )
            tolerations = pod.get("tolerations") if isinstance(pod.get("tolerations"), list) else []
            for resource in wanted:
                if not any(tolerates(toleration, resource) for toleration in tolerations):
                    yield (
                        obj,
                        path,
                        f"{obj.kind} {obj.name} asks for {resource} but does not tolerate the "
                        f"{resource}:NoSchedule taint of GPU nodes",
                    )


# -- the model's download -------------------------------------------------------------------


def artifact_credentials(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """A pod that downloads from a store needing credentials (s3://, gs://) has a way to
    them: a Secret mounted into its fetching container (or in its environment), or a service
    account of its own (IRSA, or the one whose secrets KServe's credential builder reads).
    The default service account has none, and the cloud metadata address is blocked. A store
    the values declare public (publicArtifactStores) needs none."""
    for obj in objects:
        for path, pod in obj.pod_specs:
            if pod.get("serviceAccountName"):
                continue
            own = _fetches_itself(pod)
            for where, container in containers(obj, path, pod):
                uri = _store_uri(container, own)
                if (
                    uri
                    and not stores.is_public(uri, context.values)
                    and not _secret_env(container)
                    and not _secret_mount(container, pod)
                ):
                    yield (
                        obj,
                        where,
                        f"container {container.get('name', where[-1])} of {obj.kind} {obj.name} "
                        f"downloads {uri} with no credentials (no Secret mounted or in its "
                        "environment, the default service account)",
                    )


def _fetches_itself(pod: dict[str, Any]) -> bool:
    """The pod has its own storage initializer: KServe then injects none."""
    listed = pod.get("initContainers") if isinstance(pod.get("initContainers"), list) else []
    return any(isinstance(c, dict) and c.get("name") == FETCH_CONTAINER for c in listed)


def _store_uri(container: dict[str, Any], own_fetch: bool) -> str:
    """The store URI a container fetches: in its args, or a KServe runtime's storageUri where
    KServe's own storage initializer fetches it (no init container of the pod's does)."""
    candidates = [*_strings(container), None if own_fetch else container.get("storageUri")]
    return next(
        (
            text
            for text in candidates
            if isinstance(text, str) and text.startswith(CREDENTIAL_SCHEMES)
        ),
        "",
    )


def _secret_mount(container: dict[str, Any], pod: dict[str, Any]) -> bool:
    """A Secret (or a projected volume holding one) is mounted into the container."""
    volumes = pod.get("volumes") if isinstance(pod.get("volumes"), list) else []
    secrets = {
        volume.get("name")
        for volume in volumes
        if isinstance(volume, dict)
        and (
            "secret" in volume
            or any("secret" in source for source in _sources(volume.get("projected")))
        )
    }
    mounts = (
        container.get("volumeMounts") if isinstance(container.get("volumeMounts"), list) else []
    )
    return any(isinstance(mount, dict) and mount.get("name") in secrets for mount in mounts)


def _sources(projected: Any) -> list[dict[str, Any]]:
    listed = projected.get("sources") if isinstance(projected, dict) else None
    return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []


def _secret_env(container: dict[str, Any]) -> bool:
    sources = container.get("envFrom") if isinstance(container.get("envFrom"), list) else []
    if any(isinstance(source, dict) and "secretRef" in source for source in sources):
        return True
    env = container.get("env") if isinstance(container.get("env"), list) else []
    return any(
        isinstance(item, dict) and "secretKeyRef" in (item.get("valueFrom") or {}) for item in env
    )


# -- the mesh ---------------------------------------------------------------------------------


def mesh_enrollment(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """Istio's PeerAuthentication, RequestAuthentication and AuthorizationPolicy are enforced
    only on pods in the mesh: the namespaces Argo CD creates carry the label of the data
    plane mode the values declare, and no Istio policy is rendered without one."""
    platform = from_values(context.values)
    wanted = platform.namespace_labels
    for obj in objects:
        if obj.kind in ISTIO_KINDS and not wanted:
            yield (
                obj,
                ["metadata", "name"],
                f"{obj.kind} {obj.name} is enforced only in the mesh, and the platform declares "
                "no way the namespace joins it (exposure.istio.mode)",
            )
        if obj.kind != "ApplicationSet" or not wanted:
            continue
        where = ["spec", "template", "spec", "syncPolicy", "managedNamespaceMetadata", "labels"]
        labels = _at(obj.data, where)
        missing = {
            k: v for k, v in wanted.items() if not isinstance(labels, dict) or labels.get(k) != v
        }
        if missing:
            shown = ", ".join(f"{k}={v}" for k, v in missing.items())
            yield (
                obj,
                _deepest(obj.data, where),
                f"ApplicationSet {obj.name} creates namespaces without {shown}: pods start "
                f"outside the {platform.istio_mode} mesh and its Istio policies fail open",
            )


def _at(data: Any, path: JsonPath) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _deepest(data: Any, path: JsonPath) -> JsonPath:
    """The longest prefix of `path` present in `data`, for a finding's position."""
    found: JsonPath = []
    for part in path:
        if not isinstance(data, dict) or part not in data:
            break
        found.append(part)
        data = data[part]
    return found


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


NAMED_CHECKS: dict[str, OutputCheck] = {
    **OUTPUT_CHECKS,
    **PLACEMENT_CHECKS,
    "network_peers": network_peers,
    "ephemeral_storage": ephemeral_storage,
    "topology_spread": topology_spread,
    "gpu_tolerations": gpu_tolerations,
    "artifact_credentials": artifact_credentials,
    "mesh_enrollment": mesh_enrollment,
}

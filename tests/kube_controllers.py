"""The controllers the tests' API server does not run, played by the tests: the Deployment
controller, KServe and Seldon Core v2 write each workload's status the way they do, through the
status subresource, for every generation they have not reported on yet.

What each generation comes to (ready, failed, or nothing reported at all) is the test's
choice: `decide(object)` returns READY, FAILED or None."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import kube_env

READY, FAILED = "ready", "failed"
NOW = "2026-11-20T10:00:00Z"
WORKLOADS = {  # kind -> where its objects are listed in a namespace
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "InferenceService": "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices",
    "Model": "/apis/mlops.seldon.io/v1alpha1/namespaces/{namespace}/models",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
    "HorizontalPodAutoscaler": (
        "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
    ),
}
# what the disruption and autoscaling controllers report whatever the test decides for the
# workloads: the budget is met, the autoscaler can scale (Argo CD counts either with no status
# as still progressing)
ALWAYS_READY = ("PodDisruptionBudget", "HorizontalPodAutoscaler")
MANAGERS = {  # the field manager each controller's status updates carry
    "Deployment": "kube-controller-manager",
    "InferenceService": "kserve-controller-manager",
    "Model": "seldon-manager",
    "PodDisruptionBudget": "kube-controller-manager",
    "HorizontalPodAutoscaler": "kube-controller-manager",
}

Decide = Callable[[dict[str, Any]], str | None]


@dataclass
class Controllers:
    kube: kube_env.KubeEnv
    namespace: str
    decide: Decide
    reported: list[tuple[str, str, int, str]] = field(default_factory=list)  # kind, name, gen
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            for kind, path in WORKLOADS.items():
                status, listed = self.kube.request("GET", path.format(namespace=self.namespace))
                for item in listed.get("items", []) if status == 200 else []:
                    item.setdefault("kind", kind)
                    self._reconcile(kind, item)
            self._stop.wait(0.1)

    def _reconcile(self, kind: str, item: dict[str, Any]) -> None:
        generation = item["metadata"]["generation"]
        if (item.get("status") or {}).get("observedGeneration") == generation:
            return
        verdict = READY if kind in ALWAYS_READY else self.decide(item)
        if verdict is None:
            return
        item["status"] = STATUS[kind](item, verdict == READY)
        path = WORKLOADS[kind].format(namespace=self.namespace)
        manager = MANAGERS[kind]
        status, _ = self.kube.request(
            "PUT", f"{path}/{item['metadata']['name']}/status?fieldManager={manager}", item
        )
        if status == 200:  # 409: changed meanwhile; the next round sees the new generation
            self.reported.append((kind, item["metadata"]["name"], generation, verdict))


@contextmanager
def playing(kube: kube_env.KubeEnv, namespace: str, decide: Decide) -> Iterator[Controllers]:
    controllers = Controllers(kube, namespace, decide)
    thread = threading.Thread(target=controllers.run, daemon=True)
    thread.start()
    try:
        yield controllers
    finally:
        controllers._stop.set()
        thread.join(timeout=10)


def _condition(kind: str, ready: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition = {"type": kind, "status": "True" if ready else "False", "lastTransitionTime": NOW}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _template_hash(deployment: dict[str, Any]) -> str:
    """Like pod-template-hash: names the ReplicaSet of this pod template."""
    template = json.dumps(deployment["spec"]["template"], sort_keys=True).encode()
    return hashlib.sha256(template).hexdigest()[:10]


def deployment_status(deployment: dict[str, Any], ready: bool) -> dict[str, Any]:
    """As the Deployment controller writes it: a rollout that completed, or one whose new
    ReplicaSet never became available and passed spec.progressDeadlineSeconds."""
    name, replicas = deployment["metadata"]["name"], deployment["spec"].get("replicas", 1)
    replica_set = f"{name}-{_template_hash(deployment)}"
    base = {"observedGeneration": deployment["metadata"]["generation"]}
    if ready:
        return {
            **base,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                _condition("Available", True, "MinimumReplicasAvailable",
                           "Deployment has minimum availability."),
                _condition("Progressing", True, "NewReplicaSetAvailable",
                           f'ReplicaSet "{replica_set}" has successfully progressed.'),
            ],
        }  # fmt: skip
    return {
        **base,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "unavailableReplicas": replicas,
        "conditions": [
            _condition("Available", False, "MinimumReplicasUnavailable",
                       "Deployment does not have minimum availability."),
            _condition("Progressing", False, "ProgressDeadlineExceeded",
                       f'ReplicaSet "{replica_set}" has timed out progressing.'),
        ],
    }  # fmt: skip


def inference_service_status(service: dict[str, Any], ready: bool) -> dict[str, Any]:
    """As KServe writes it: Ready with the model loaded, or the model failed to load and
    KServe stopped trying (BlockedByFailedLoad)."""
    name = service["metadata"]["name"]
    revision = f"{name}-predictor-{service['metadata']['generation']:05d}"
    base = {"observedGeneration": service["metadata"]["generation"]}
    if ready:
        return {
            **base,
            "conditions": [
                _condition("IngressReady", True),
                _condition("PredictorReady", True),
                _condition("Ready", True),
            ],
            "modelStatus": {
                "copies": {"failedCopies": 0, "totalCopies": 1},
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                "transitionStatus": "UpToDate",
            },
        }
    message = f'Revision "{revision}" failed with message: .'
    return {
        **base,
        "conditions": [
            _condition("PredictorReady", False, "RevisionFailed", message),
            _condition("Ready", False, "RevisionFailed", message),
        ],
        "modelStatus": {
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "message": "Failed to load model: pickle data was truncated",
                "exitCode": 1,
            },
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "transitionStatus": "BlockedByFailedLoad",
        },
    }


def seldon_model_status(model: dict[str, Any], ready: bool) -> dict[str, Any]:
    """As Seldon Core v2 writes it: loaded on a server, or no server can take it."""
    replicas = model["spec"].get("replicas", 1)
    base = {"observedGeneration": model["metadata"]["generation"], "replicas": replicas}
    if ready:
        return {
            **base,
            "availableReplicas": replicas,
            "conditions": [_condition("ModelReady", True), _condition("Ready", True)],
        }
    reason = "Failed to schedule model as no matching servers are available"
    return {
        **base,
        "conditions": [
            _condition("ModelReady", False, reason, "ScheduleFailed"),
            _condition("Ready", False, reason, "ScheduleFailed"),
        ],
    }


def disruption_budget_status(budget: dict[str, Any], ready: bool) -> dict[str, Any]:
    """As the disruption controller writes it for a budget its pods meet."""
    return {
        "observedGeneration": budget["metadata"]["generation"],
        "currentHealthy": 2,
        "desiredHealthy": 1,
        "disruptionsAllowed": 1,
        "expectedPods": 2,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True" if ready else "False",
                "reason": "SufficientPods" if ready else "InsufficientPods",
                "message": "",
                "lastTransitionTime": NOW,
                "observedGeneration": budget["metadata"]["generation"],
            }
        ],
    }


def autoscaler_status(autoscaler: dict[str, Any], ready: bool) -> dict[str, Any]:
    """As the autoscaling controller writes it for an autoscaler whose metrics it reads."""
    replicas = autoscaler["spec"].get("minReplicas", 1)
    return {
        "observedGeneration": autoscaler["metadata"]["generation"],
        "currentReplicas": replicas,
        "desiredReplicas": replicas,
        "conditions": [
            _condition("AbleToScale", True, "ReadyForNewScale", "recommended size matches"),
            _condition("ScalingActive", True, "ValidMetricFound", "the HPA computes replicas"),
        ],
    }


STATUS = {
    "Deployment": deployment_status,
    "HorizontalPodAutoscaler": autoscaler_status,
    "PodDisruptionBudget": disruption_budget_status,
    "InferenceService": inference_service_status,
    "Model": seldon_model_status,
}


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)

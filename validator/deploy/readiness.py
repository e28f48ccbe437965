"""Is a workload ready? Read from its own status, as its controller writes it.

- Deployment: as `kubectl rollout status` judges it: the controller has seen the latest
  generation, every desired replica is updated and available, no old replica is left, and the
  rollout has not passed its progress deadline (Progressing=False ProgressDeadlineExceeded,
  which is final: waiting longer cannot help).
- InferenceService (KServe): its Ready condition for the latest generation; a model KServe gave
  up loading (modelStatus.transitionStatus BlockedByFailedLoad or InvalidSpec) is final.
- Model (Seldon Core v2): its Ready condition for the latest generation.

A status written for an older generation says nothing about what was just applied: until the
controller reports observedGeneration >= metadata.generation the workload is not ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WORKLOAD_KINDS = ("InferenceService", "Deployment", "Model")
# KServe's modelStatus.transitionStatus values after which it stops trying
KSERVE_FINAL = ("BlockedByFailedLoad", "InvalidSpec")


@dataclass(frozen=True)
class Verdict:
    ready: bool
    final: bool = False  # not ready, and waiting longer cannot help
    reason: str = ""  # why not ready: "Deployment NAME: ..."


READY = Verdict(True)


def judge(resource: dict[str, Any]) -> Verdict:
    kind = resource.get("kind", "?")
    name = (resource.get("metadata") or {}).get("name", "?")
    status = resource.get("status") or {}
    if not status:
        return Verdict(False, reason=f"{kind} {name}: no status reported yet")
    stale = _stale(resource, status)
    if stale:
        return Verdict(False, reason=f"{kind} {name}: {stale}")
    verdict = _deployment(resource, status) if kind == "Deployment" else _conditions(status)
    if verdict.ready:
        return verdict
    return Verdict(False, verdict.final, f"{kind} {name}: {verdict.reason}")


def not_ready(resource: dict[str, Any]) -> str | None:
    """None when a workload is ready, else why not."""
    verdict = judge(resource)
    return None if verdict.ready else verdict.reason


def _stale(resource: dict[str, Any], status: dict[str, Any]) -> str:
    generation = (resource.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return (
            f"its controller has not reported on generation {generation} yet "
            f"(status is of generation {observed})"
        )
    return ""


def _deployment(resource: dict[str, Any], status: dict[str, Any]) -> Verdict:
    conditions = _by_type(status)
    progressing = conditions.get("Progressing")
    if _is(progressing, "False") and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict(False, final=True, reason=_describe(progressing))
    desired = (resource.get("spec") or {}).get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        waiting = f"{updated} of {desired} replicas updated"
    elif total > updated:
        waiting = f"{total - updated} old replicas pending termination"
    elif available < updated:
        waiting = f"{available} of {updated} updated replicas available"
    else:
        return READY
    trouble = next((c for c in conditions.values() if _troubled(c)), None)
    return Verdict(False, reason=waiting + (f"; {_describe(trouble)}" if trouble else ""))


def _conditions(status: dict[str, Any]) -> Verdict:
    conditions = _by_type(status)
    if _is(conditions.get("Ready"), "True"):
        return READY
    failing = conditions.get("Ready") or next(
        (c for c in conditions.values() if not _is(c, "True")), None
    )
    reason = _describe(failing) if failing else "no Ready condition reported yet"
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo")
    if failure:
        reason += f"; model: {failure.get('reason', '')}: {failure.get('message', '')}".rstrip(": ")
    return Verdict(False, final=model.get("transitionStatus") in KSERVE_FINAL, reason=reason)


def _troubled(condition: dict[str, Any]) -> bool:
    """ReplicaFailure is bad news when True; Available and Progressing when not."""
    if condition.get("type") == "ReplicaFailure":
        return _is(condition, "True")
    return not _is(condition, "True")


def _by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def _is(condition: dict[str, Any] | None, value: str) -> bool:
    return bool(condition) and condition.get("status") == value


def _describe(condition: dict[str, Any]) -> str:
    parts = [str(condition[key]) for key in ("reason", "message") if condition.get(key)]
    head = f"{condition.get('type')}={condition.get('status')}"
    return head + (f" ({': '.join(parts)})" if parts else "")


# A container waiting for one of these is only on its way.
STARTING = ("ContainerCreating", "PodInitializing")


def pod_trouble(pods: list[dict[str, Any]]) -> str:
    """Why a Deployment's pods hold its rollout up, from the kubelet's and the scheduler's
    status: the first container waiting for a reason other than starting (ErrImagePull,
    CrashLoopBackOff...), or a pod no node takes. "" when none says."""
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        containers = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        for container in containers:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in STARTING:
                said = (
                    f"{waiting['reason']}: {waiting['message']}"
                    if waiting.get("message")
                    else waiting["reason"]
                )
                return f"pod {name}: container {container.get('name')}: {said}"
        scheduled = _by_type(status).get("PodScheduled")
        if _is(scheduled, "False"):
            return f"pod {name}: {_describe(scheduled)}"
    return ""

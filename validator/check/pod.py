"""Pod settings that contradict each other, and labels or annotations modelgate writes itself.

What an engine can honour is check/capabilities.py's business; these are refusals whatever the
engine: a memory-backed /dev/shm larger than the memory the container may use, a startup probe
that gives up while the deploy still waits for the model, a GPU vendor or model for a pod that
asks for no GPU, and a label or annotation whose value modelgate sets from other fields (the
spec's would be overwritten, or would overwrite what validation checked).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from ..diagnostics import Diagnostic
from ..engines import Engine, accelerator_of, engine_for
from .capabilities import JsonPath, Refusal
from .exposure import CLUSTER_ISSUER_ANNOTATION, CLUSTER_LOCAL
from .load import Document, Key

CONTRADICTION = "MG230"
RESERVED_KEY = "MG231"

# Every label and annotation under this prefix is modelgate's (owner, team, spec hash, source)
RESERVED_PREFIX = "modelgate.dev/"
# Labels render/view.py sets on every object, and the visibility labels an internal
# InferenceService gets from spec.endpoint (check/exposure.py)
RESERVED_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/managed-by",
        *CLUSTER_LOCAL.values(),
    }
)
# Annotations written from other fields: KServe's deployment mode (spec.engine.deploymentMode)
# and the certificate issuer of a public endpoint's Ingress (spec.endpoint.tls)
RESERVED_ANNOTATIONS = frozenset({"serving.kserve.io/deploymentMode", CLUSTER_ISSUER_ANNOTATION})

DEFAULT_READINESS_TIMEOUT = 60  # seconds, as deploy waits when spec.smoke does not say
STARTUP_PERIOD = 5  # seconds between startup probes when spec.probes.startup does not say
STARTUP_WINDOW = 600  # the least time a server is given to start: large models load slowly

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_FACTORS = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def check(document: Document) -> list[Diagnostic]:
    """Refusals for a spec that passed the schema."""
    spec = document.data["spec"]
    engine = engine_for(spec)  # as it is in the spec's deployment mode
    found = [*reserved_keys(document.data["metadata"])]
    if engine.pod:  # else every pod setting is refused already (MG227)
        found += [*shared_memory(spec), *startup_window(spec, engine), *gpu_choice(spec)]
    return [document.finding(r.path, r.rule, r.message, r.hint) for r in found]


def quantity(value: Any) -> float:
    """A Kubernetes quantity (the schema's subset: a number, or digits with a suffix)."""
    if isinstance(value, (int, float)):
        return float(value)
    matched = _QUANTITY.match(str(value))
    if matched is None:  # the schema refused it already
        return math.nan
    return float(matched.group(1)) * _FACTORS[matched.group(2) or ""]


def readiness_timeout(spec: dict[str, Any]) -> float:
    """How long a deploy waits for the model to get ready (spec.smoke)."""
    smoke = spec.get("smoke") or {}
    return float(smoke.get("readinessTimeoutSeconds", DEFAULT_READINESS_TIMEOUT))


def startup_failures(spec: dict[str, Any]) -> int:
    """The startup probe's failureThreshold when the spec does not give one: enough periods to
    cover the start window, or the smoke readiness timeout if that is longer."""
    startup = spec.get("probes", {}).get("startup", {})
    window = max(STARTUP_WINDOW, readiness_timeout(spec)) - startup.get("initialDelaySeconds", 0)
    return max(1, math.ceil(window / startup.get("periodSeconds", STARTUP_PERIOD)))


def shared_memory(spec: dict[str, Any]) -> Iterator[Refusal]:
    shm = spec.get("volumes", {}).get("shm")
    limit = spec.get("resources", {}).get("limits", {}).get("memory")
    if shm is None or limit is None or quantity(shm["sizeLimit"]) <= quantity(limit):
        return
    yield Refusal(
        ["spec", "volumes", "shm", "sizeLimit"],
        CONTRADICTION,
        f"/dev/shm of {shm['sizeLimit']} is larger than the memory limit of {limit}: a "
        "memory-backed volume counts against the container's memory, and the server would be "
        "killed for running out of it before the volume is full",
        f"keep spec.volumes.shm.sizeLimit at most {limit}, or raise spec.resources.limits.memory",
    )


def startup_window(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    """The kubelet restarts a server whose startup probe gives up; a deploy that still waits
    for it would only see restarts, then time out. Deployments always have a startup probe;
    an InferenceService has one where the spec asks for it."""
    startup = spec.get("probes", {}).get("startup", {})
    if "failureThreshold" not in startup:
        return  # computed to cover the timeout (startup_failures)
    period = startup.get("periodSeconds", STARTUP_PERIOD)
    window = startup.get("initialDelaySeconds", 0) + period * startup["failureThreshold"]
    timeout = readiness_timeout(spec)
    if window >= timeout:
        return
    enough = math.ceil((timeout - startup.get("initialDelaySeconds", 0)) / period)
    yield Refusal(
        ["spec", "probes", "startup", "failureThreshold"],
        CONTRADICTION,
        f"the startup probe gives up after {window:g} s, but the deploy waits up to "
        f"{timeout:g} s (smoke.readinessTimeoutSeconds) for {engine.name} to get ready: the "
        "kubelet would restart a server that is still loading its model",
        f"set failureThreshold to {enough} or more, or lower spec.smoke.readinessTimeoutSeconds",
    )


def gpu_choice(spec: dict[str, Any]) -> Iterator[Refusal]:
    resources = spec.get("resources", {})
    if resources.get("gpu"):
        yield from _product_label(spec)
        return
    for field in ("accelerator", "acceleratorProduct"):
        if field in resources:
            yield Refusal(
                ["spec", "resources", field],
                CONTRADICTION,
                f"spec.resources.{field} has no effect: spec.resources.gpu asks for no GPU",
                f"set spec.resources.gpu to the number of GPUs, or remove spec.resources.{field}",
            )


def _product_label(spec: dict[str, Any]) -> Iterator[Refusal]:
    """acceleratorProduct becomes a nodeSelector entry: one the spec also writes by hand must
    agree with it, or no node could match both."""
    product = spec["resources"].get("acceleratorProduct")
    label = accelerator_of(spec).product_label
    selected = spec.get("scheduling", {}).get("nodeSelector", {}).get(label)
    if product is None or selected is None or selected == product:
        return
    yield Refusal(
        ["spec", "resources", "acceleratorProduct"],
        CONTRADICTION,
        f"acceleratorProduct {product} selects nodes with {label}={product}, but "
        f"spec.scheduling.nodeSelector asks for {label}={selected}: no node has both",
        f"keep one of them: acceleratorProduct alone writes the {label} selector",
    )


def reserved_keys(metadata: dict[str, Any]) -> Iterator[Refusal]:
    for kind, reserved in (("labels", RESERVED_LABELS), ("annotations", RESERVED_ANNOTATIONS)):
        for key in metadata.get(kind, {}):
            if key.startswith(RESERVED_PREFIX) or key in reserved:
                path: JsonPath = ["metadata", kind, Key(key)]
                yield Refusal(
                    path,
                    RESERVED_KEY,
                    f"metadata.{kind} sets {key}, which modelgate writes itself: one of the two "
                    "values would be lost",
                    f"remove it; modelgate sets it from the spec ({_source(key)})",
                )


def _source(key: str) -> str:
    if key in CLUSTER_LOCAL.values():
        return "spec.endpoint.visibility"
    if key == CLUSTER_ISSUER_ANNOTATION:
        return "spec.endpoint.tls and templates/values.yaml exposure.ingress"
    if key == "serving.kserve.io/deploymentMode":
        return "spec.engine.deploymentMode"
    return "metadata and spec.model.version"

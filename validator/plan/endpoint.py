"""What one endpoint is in one environment, as a reviewer reads it: the facts of its spec and
of the objects rendered for it (rendered/ENV/NAME/), flat and comparable field by field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..quantities import to_bytes
from ..render.images import named_images
from .prices import Replica

SPEC_HASH = "modelgate.dev/spec-hash"
SECTIONS = ("model", "engine", "capacity", "exposure")
SECURITY = "exposure"  # the section whose every change is security-relevant
POLICY_KINDS = (
    "NetworkPolicy",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "RequestAuthentication",
)


@dataclass(frozen=True)
class RenderedObject:
    kind: str
    name: str
    file: str  # rendered/ENV/NAME/FILE
    body: str  # canonical JSON: equal objects, equal text

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


@dataclass
class Endpoint:
    """One side (REF's or the change's) of an endpoint in an environment."""

    name: str
    environment: str
    spec: dict[str, Any]
    objects: dict[tuple[str, str], RenderedObject] = field(default_factory=dict)
    team: str | None = None

    def replica(self) -> Replica:
        resources = self.spec.get("resources") or {}
        requests = resources.get("requests") or {}
        return Replica(
            cpu=cores(requests.get("cpu")),
            memory=to_bytes(requests.get("memory")) or 0,
            gpus=int(resources.get("gpu") or 0),
            product=resources.get("acceleratorProduct"),
        )

    def replicas(self) -> tuple[int, int]:
        """(min, max) replicas; a ModelMesh runtime's pods where the spec defines them."""
        runtime = self.spec.get("runtime") or {}
        if not self.spec.get("scaling") and "replicas" in runtime:
            return runtime["replicas"], runtime["replicas"]
        scaling = self.spec.get("scaling") or {}
        low = scaling.get("minReplicas", 1)
        return low, max(scaling.get("maxReplicas", low), low)

    def facts(self) -> dict[str, Any]:
        """section.field -> a value shown as it is."""
        spec = self.spec
        model, engine = spec.get("model") or {}, spec.get("engine") or {}
        endpoint = spec.get("endpoint") or {}
        replica = self.replica()
        low, high = self.replicas()
        return {
            "model.version": model.get("version"),
            "model.digest": digest(model),
            "model.revision": model.get("revision"),
            "engine.engine": _joined(engine.get("name"), engine.get("version")),
            "engine.runtime": engine.get("runtime") or (spec.get("runtime") or {}).get("name"),
            "engine.images": sorted(set(images(self.objects.values()))),
            "capacity.minReplicas": low,
            "capacity.maxReplicas": high,
            "capacity.cpu": replica.cpu,
            "capacity.memory": replica.memory,
            "capacity.gpus": replica.gpus,
            "capacity.gpuProduct": replica.product if replica.gpus else None,
            "capacity.totalAtMax.cpu": round(replica.cpu * high, 3),
            "capacity.totalAtMax.memory": replica.memory * high,
            "capacity.totalAtMax.gpus": replica.gpus * high,
            "exposure.visibility": endpoint.get("visibility", "internal"),
            "exposure.hosts": hosts(self.objects.values()) or _listed(endpoint.get("host")),
            "exposure.tls": bool(endpoint.get("tls", False)),
            "exposure.auth": (endpoint.get("auth") or {}).get("type", "none"),
            "exposure.networkPolicy": network_policy(self.objects.values()),
        }


def cores(quantity: object) -> float:
    """CPU cores of a quantity ("500m", "2", 1.5); 0 where it is none."""
    if isinstance(quantity, bool) or quantity is None:
        return 0.0
    text = str(quantity)
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 0.0


def digest(model: dict[str, Any]) -> str | None:
    image = model.get("image")
    if isinstance(image, str) and "@" in image:
        return image.rpartition("@")[2]
    for key in ("sha256", "treeSha256"):
        if model.get(key):
            return f"sha256:{model[key]}"
    return None


def images(objects: Any) -> Iterator[str]:
    """Every container image the objects name (pods, ServingRuntimes, InferenceServices)."""
    for item in objects:
        yield from named_images(json.loads(item.body))


def hosts(objects: Any) -> list[str]:
    """The hosts Ingresses (and Istio gateways' routes) claim."""
    found = set()
    for item in objects:
        body = json.loads(item.body)
        spec = body.get("spec") or {}
        if item.kind == "Ingress":
            found.update(r["host"] for r in spec.get("rules") or [] if r.get("host"))
        elif item.kind == "VirtualService":
            found.update(spec.get("hosts") or [])
    return sorted(found)


def network_policy(objects: Any) -> str:
    """The network and mesh policies, as a count and a fingerprint that changes with them."""
    chosen = sorted((o for o in objects if o.kind in POLICY_KINDS), key=lambda o: o.key)
    if not chosen:
        return "none"
    specs = (json.dumps(json.loads(o.body).get("spec"), sort_keys=True) for o in chosen)
    fingerprint = hashlib.sha256("\n".join(specs).encode()).hexdigest()[:12]
    kinds = ", ".join(f"{o.kind}/{o.name}" for o in chosen)
    return f"{kinds} ({fingerprint})"


def _joined(name: object, version: object) -> str | None:
    if not name:
        return None
    return f"{name} {version}" if version else str(name)


def _listed(value: object) -> list[str]:
    return [value] if isinstance(value, str) else []


def rendered_object(file: str, data: Any) -> RenderedObject:
    """A rendered file's object; a file that is not one (a Triton configuration) by its name.
    The spec-hash label is left out: every object of an edited spec carries a new one, and
    an object whose only change it is does not change what the cluster does."""
    labels = (data.get("metadata") or {}).get("labels") if isinstance(data, dict) else None
    if isinstance(labels, dict) and SPEC_HASH in labels:
        data = {
            **data,
            "metadata": {
                **data["metadata"],
                "labels": {key: value for key, value in labels.items() if key != SPEC_HASH},
            },
        }
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(data, dict) and isinstance(data.get("kind"), str):
        name = (data.get("metadata") or {}).get("name")
        if isinstance(name, str):
            return RenderedObject(data["kind"], name, file, canonical)
    return RenderedObject("File", file.rpartition("/")[2], file, canonical)

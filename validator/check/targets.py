"""Which targets can run a spec, from the spec alone (validation needs it without importing
the deploy stage).

The local target runs an engine it can start here on an artifact kept in the repository (or
the stand-in a spec names for it); the docker target runs a model image. Both run on this
machine and share its ports. Kubernetes runs every spec, each pod on an address of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engines import ENGINES
from . import stand_ins

LOCAL, DOCKER, KUBERNETES = "local", "docker", "kubernetes"
ON_THIS_MACHINE = (LOCAL, DOCKER)


def targets_of(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The targets that can run `spec` (a ModelDeployment's `spec`), kubernetes last."""
    found = []
    if serves_locally(spec):
        found.append(LOCAL)
    if spec["model"].get("image"):
        found.append(DOCKER)
    return (*found, KUBERNETES)


def serves_locally(spec: Mapping[str, Any]) -> bool:
    """The local target can run `spec`: its engine starts here for its format, on an
    artifact in the repository; or the spec names a stand-in that does (stand_ins.py)."""
    served = stand_ins.served_spec(spec)  # type: ignore[arg-type]
    model = served["model"]
    artifact = model.get("artifact", "")
    engine = ENGINES[served["engine"]["name"]]
    return engine.serves_locally(model["format"]) and bool(artifact) and "://" not in artifact


def runs_on_this_machine(spec: Mapping[str, Any]) -> bool:
    """True when a target that shares this machine's ports can run `spec`."""
    return any(target in ON_THIS_MACHINE for target in targets_of(spec))

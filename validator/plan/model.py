"""The plan's plain data: what changes for each endpoint in each environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Diagnostic

CREATED, CHANGED, DELETED, UNCHANGED = "created", "changed", "deleted", "unchanged"


COST = "cost"  # the section of the cost changes: reports give them a line of their own


@dataclass(frozen=True)
class FieldChange:
    section: str  # model | engine | capacity | exposure | fit | cost
    field: str  # e.g. maxReplicas, totalAtMax.gpus
    before: Any
    after: Any
    security: bool = False  # exposure: a reviewer of security looks at it


@dataclass(frozen=True)
class ObjectChange:
    action: str  # created | changed | deleted
    kind: str
    name: str
    file: str


@dataclass(frozen=True)
class WaiverChange:
    action: str  # added | removed | expiring
    rule: str
    spec: str
    expires: str
    approver: str


@dataclass(frozen=True)
class Cost:
    """Per hour at min and at max replicas; None where a GPU has no price."""

    at_min: float | None
    at_max: float | None


@dataclass
class EndpointPlan:
    name: str
    environment: str
    spec: str  # the spec file, as shown (REF's for a deleted spec)
    status: str
    team: str | None
    changes: list[FieldChange] = field(default_factory=list)
    objects: list[ObjectChange] = field(default_factory=list)
    waivers: list[WaiverChange] = field(default_factory=list)
    cost_before: Cost | None = None
    cost_after: Cost | None = None
    fit: dict[str, Any] | None = None  # the GPU fit of the change's spec, where computed
    facts: dict[str, Any] = field(default_factory=dict)  # the change's (REF's when deleted)

    @property
    def security_relevant(self) -> bool:
        return any(change.security for change in self.changes)

    def section(self, name: str) -> list[FieldChange]:
        return [change for change in self.changes if change.section == name]


@dataclass
class Plan:
    ref: str
    commit: str
    currency: str
    endpoints: list[EndpointPlan] = field(default_factory=list)
    weakened: list[Any] = field(default_factory=list)  # policy Weakenings the change adds
    findings: list[Diagnostic] = field(default_factory=list)
    live: list[Any] = field(default_factory=list)  # live.LiveDiff, with --live

    @property
    def changed(self) -> list[EndpointPlan]:
        return [e for e in self.endpoints if e.status != UNCHANGED]

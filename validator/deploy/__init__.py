"""Put a validated spec up on a target, smoke-test it, and report an Outcome.

A deploy only counts when every smoke request passed; anything else is a Diagnostic and
nothing is left running. The two named failures:

- MG501 "model not deployed": the engine never loaded the model (bad artifact, crash).
- MG502 "endpoint not available": no readiness within the timeout, or a smoke request failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import Diagnostic
from ..smoke import Endpoint, SmokeResult

MODEL_NOT_DEPLOYED = "MG501"
ENDPOINT_NOT_AVAILABLE = "MG502"
TARGET_UNSUPPORTED = "MG503"
ENGINE_MISSING = "MG504"
PORT_TAKEN = "MG505"
NOT_RUNNING = "MG506"

TARGETS = ("local",)


@dataclass
class Outcome:
    name: str
    endpoint: Endpoint | None = None
    smoke: list[SmokeResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    kept: bool = False
    seconds: float = 0.0
    previous: str | None = None  # endpoint that kept serving when this deploy failed

    @property
    def ok(self) -> bool:
        return self.endpoint is not None and not self.diagnostics

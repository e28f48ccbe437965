"""Stand-ins: the small model a spec names (spec.smoke.standIn) for the local target to
smoke-test in place of the real one, where the real weights cannot run on a CPU runner
(GPU-sized LLMs, weights on a hub).

A stand-in has the real model's architecture and format where an engine here can serve them,
is made reproducibly by a script in the repository, and is pinned by its digest like any
repository artifact. The local target (and so the pull-request workflow) serves it under the
spec's name, on its own engine when it names one, and sends the spec's own smoke requests
in the spec's protocol: what is tested is the protocol, the served name and the smoke
expectations, not the real weights. Every report of such a deploy says so.

`served_spec(spec)` is the spec as the local target runs it; check/stand_in.py's
`served(document)` places its findings at the stand-in's fields: an artifact that does not
match its digest is reported at spec.smoke.standIn.sha256, not at spec.model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAND_IN: list[str | int] = ["spec", "smoke", "standIn"]
DIGESTS = ("sha256", "treeSha256")
# the real model's source and its pins, which the stand-in's replace
_SOURCE = ("image", "artifact", "revision", "format", *DIGESTS)


def of(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stand-in a spec (a ModelDeployment's `spec`) names, if any."""
    return (spec.get("smoke") or {}).get("standIn")


def engine_name(spec: Mapping[str, Any]) -> str:
    """The engine that serves the stand-in: the one it names, else the spec's own."""
    stand_in = of(spec) or {}
    return stand_in.get("engine") or spec["engine"]["name"]


def model_format(spec: Mapping[str, Any]) -> str:
    """The stand-in's format: the one it names, else the real model's."""
    stand_in = of(spec) or {}
    return stand_in.get("format") or spec["model"]["format"]


def served_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the local target runs it: the stand-in's artifact, digest, format and
    engine in place of the real model's. On an engine of its own the stand-in runs with
    that engine's defaults: the spec's engine settings (version, args, env, runtime) are
    the real engine's."""
    stand_in = of(spec)
    if stand_in is None:
        return spec
    kept = {key: value for key, value in spec["model"].items() if key not in _SOURCE}
    model = {
        **kept,  # version, and the signature a Triton stand-in is configured from
        "artifact": stand_in["artifact"],
        "format": model_format(spec),
        **{field: stand_in[field] for field in DIGESTS if field in stand_in},
    }
    name = engine_name(spec)
    engine = (
        spec["engine"]
        if name == spec["engine"]["name"]
        else {"name": name, "protocol": spec["engine"]["protocol"]}
    )
    return {**spec, "model": model, "engine": engine}


def description(spec: Mapping[str, Any]) -> str:
    """One line for reports: what ran in place of what; "" when the real model ran."""
    stand_in = of(spec)
    if stand_in is None:
        return ""
    model = spec["model"]
    real = model.get("artifact") or model.get("image", "")
    return (
        f"{stand_in['artifact']} ({model_format(spec)} on {engine_name(spec)}, made by "
        f"{stand_in['script']}) in place of {real} ({model['format']} on "
        f"{spec['engine']['name']})"
    )

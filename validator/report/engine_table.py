"""docs/spec.md's engine tables, made from the engine records.

    python -m validator.report.engine_table                # the engines, between their markers
    python -m validator.report.engine_table capabilities   # what each engine can honour

tests/test_engines.py fails when the page and the records disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..engines import ALWAYS, COMPONENTS, ENGINES, STORES, TO_VERIFY, Engine, Mode, Scaling


def markdown_table() -> str:
    rows = [
        "| Engine | Serves | Protocols | Default version | Health (live, ready) | API key "
        "(auth apiKey) | Renders |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine in ENGINES.values():
        rendered = ", ".join(f"`{template}`" for template in engine.templates)
        health = f"`{engine.live}`, `{engine.ready}`" if engine.image else "the runtime's"
        api_key = (
            f"`{engine.api_key_env}`, from {engine.api_key_since}" if engine.api_key_env else "no"
        )
        rows.append(
            f"| `{engine.name}` | {engine.summary}; formats: {', '.join(engine.formats)} "
            f"| {', '.join(engine.protocols)} | {engine.default_version or '-'} | {health} "
            f"| {api_key} | {rendered} |"
        )
    return "\n".join(rows) + "\n"


Cell = Callable[[Engine, Mode], str]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _each(mode: Mode, cell: Callable[[Scaling], str]) -> str:
    """One value, or one per autoscaler the mode can use where they differ."""
    values = [cell(scaler) for scaler in mode.autoscalers]
    if len(set(values)) == 1:
        return values[0]
    return "; ".join(
        f"{scaler.name}: {value}" for scaler, value in zip(mode.autoscalers, values, strict=True)
    )


def _targets(scaler: Scaling) -> str:
    if not scaler.metrics:
        return "no"
    whole = f"whole numbers for {', '.join(scaler.whole_targets)}" if scaler.whole_targets else ""
    most = f"at most {scaler.target_max}" if scaler.target_max is not None else ""
    return "; ".join(part for part in (whole, most) if part) or "any"


def _scalers(mode: Mode) -> str:
    return "; ".join(
        f"{scaler.name}: {scaler.autoscaler}" if scaler.name else scaler.autoscaler
        for scaler in mode.autoscalers
    )


def _named(mode: Mode) -> str:
    return ", ".join(scaler.name for scaler in mode.autoscalers if scaler.name) or "no"


# Each setting validator/check/capabilities.py judges, and what every engine (in each of its
# deployment modes; per autoscaler where they differ) does with it; "no" is refused, with the
# code shown.
CAPABILITIES: tuple[tuple[str, Cell], ...] = (
    ("`scaling.autoscaler`, the default first (MG234)", lambda e, m: _named(m)),
    (
        "`scaling.minReplicas`, `.maxReplicas` (MG226)",
        lambda e, m: _each(m, lambda s: _yes(s.replicas)),
    ),
    (
        "`scaling.minReplicas: 0`, scale to zero (MG220)",
        lambda e, m: _each(m, lambda s: _yes(s.to_zero)),
    ),
    (
        "`scaling.metric`, the default first (MG222)",
        lambda e, m: _each(m, lambda s: ", ".join(s.metrics) or "no: scaled on its own signal"),
    ),
    ("`scaling.target` (MG223)", lambda e, m: _each(m, _targets)),
    (
        "`rollout.canaryTrafficPercent` (MG221)",
        lambda e, m: _each(m, lambda s: _yes(s.canary)),
    ),
    ("`engine.protocol` (MG224)", lambda e, m: ", ".join(e.protocols)),
    ("`model.artifact` or `model.image` (MG225)", lambda e, m: ", ".join(e.packaging)),
    ("`engine.version` (MG226)", lambda e, m: _yes(e.takes_version)),
    ("`engine.image`, never with `model.image` (MG226)", lambda e, m: _yes(bool(e.image))),
    (
        "`engine.runtime`, never with `model.image` (MG226)",
        lambda e, m: e.runtime if e.runtime else "no",
    ),
    (
        "`engine.runtimeVersion`, never with `model.image` (MG226)",
        lambda e, m: _yes(e.runtime_version),
    ),
    (
        "`runtime`, never with `model.image` (MG226, MG235)",
        lambda e, m: (
            f"{e.runtime_definition}, {'multi-model' if e.multi_model else 'single-model'}"
            if e.runtime_definition
            else "no"
        ),
    ),
    (
        f"{', '.join(f'`{c}`' for c in COMPONENTS)} (MG226)",
        lambda e, m: ", ".join(e.components) or "no",
    ),
    ("`engine.deploymentMode` (MG226)", lambda e, m: _yes(len(e.modes) > 1)),
    ("`engine.maxBatchSize` (MG226)", lambda e, m: _yes(e.batching)),
    ("`model.signature` (MG226)", lambda e, m: _yes(e.takes_signature)),
    (
        "`engine.args`, `engine.env`, `security`, `serviceAccountName`, `resources.gpu`, "
        "`resources.accelerator`, `resources.acceleratorProduct`, `scheduling`, `probes`, "
        "`volumes` (MG227)",
        lambda e, m: _yes(e.pod),
    ),
    (
        "`volumes.cache`, where the engine keeps the model (MG226)",
        lambda e, m: f"`{e.cache}`" if e.cache else "no",
    ),
    (
        "`resources.gpu` and `.accelerator` with the engine's own image (MG229, MG256)",
        lambda e, m: _gpus(e) if e.pod else "no",
    ),
    ("`security.hostNetwork`, `.hostPorts`, `.hostPaths` (MG228)", lambda e, m: "no"),
    ("`model.revision` of an hf:// artifact (MG240)", lambda e, m: e.revision or "no"),
    (
        "`model.sha256` / `.treeSha256` checked in the pod before the server starts",
        lambda e, m: _checked_in_pod(e),
    ),
)


def _gpus(engine: Engine) -> str:
    if not engine.gpus.vendors:
        return "no GPU (CPU only)"
    vendors = ", ".join(engine.gpus.vendors)
    return f"{vendors} (required)" if engine.gpus.required else vendors


def _checked_in_pod(engine: Engine) -> str:
    """Where the engine's pods check the artifact's digest (validator/render/verify.py)."""
    if engine.fetch == ALWAYS:
        return "yes"
    if engine.fetch == STORES:
        return "yes, for artifacts from a store"
    if engine.fetch == TO_VERIFY:
        return "yes: its own storage initializer then fetches the model"
    if not engine.pod:
        return "no: the cluster's servers fetch the model"
    return "no: the model image is pinned by digest" if engine.image_only else "no"


def capability_table() -> str:
    columns = [
        (engine.in_mode(name), name, mode)
        for engine in ENGINES.values()
        for name, mode in engine.modes.items()
    ]
    heads = [
        f"`{engine.name}` {name}" if len(engine.modes) > 1 else f"`{engine.name}`"
        for engine, name, _ in columns
    ]
    rows = [
        f"| Setting | {' | '.join(heads)} |",
        "|---|" + "---|" * len(columns),
        f"| scaled by | {' | '.join(_scalers(mode) for _, _, mode in columns)} |",
    ]
    for setting, cell in CAPABILITIES:
        cells = " | ".join(cell(engine, mode) for engine, _, mode in columns)
        rows.append(f"| {setting} | {cells} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    from .output import Output

    wanted = sys.argv[1:] == ["capabilities"]
    Output().block(capability_table() if wanted else markdown_table())

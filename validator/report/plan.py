"""A plan as text (a terminal), Markdown (the pull request's summary comment: one section per
endpoint, collapsed when unchanged) or JSON (validator/schemas/plan.v1alpha1.json). Commands
print these through output.Output, which masks secrets and escapes control characters."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ..plan.model import COST
from .formats.text import format_diagnostic
from .output import one_line, safe_diagnostic

if TYPE_CHECKING:
    from ..plan.model import Cost, EndpointPlan, FieldChange, Plan

PLAN_FORMATS = ("text", "markdown", "json")
API_VERSION = "modelgate.dev/v1alpha1"
GIB = 2**30


def format_plan(name: str, plan: Plan) -> str:
    return {"text": text, "markdown": markdown, "json": as_json}[name](plan)


def shown(field: str, value: Any, currency: str = "") -> str:
    """A field's value as a reviewer reads it: memory in GiB, costs with their currency."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field.endswith("memory") and isinstance(value, int):
        return f"{value / GIB:g} GiB"
    if field.startswith("perHour") and isinstance(value, float | int):
        return f"{value:.2f} {currency}/h".strip()
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)


def _headline(plan: Plan) -> str:
    changed = plan.changed
    security = sum(e.security_relevant for e in changed)
    return (
        f"plan against {plan.ref} ({plan.commit[:12]}): {len(changed)} of "
        f"{len(plan.endpoints)} endpoint(s) change"
        + (f", {security} security-relevant" if security else "")
    )


def _cost_line(endpoint: EndpointPlan, currency: str) -> str:
    def pair(cost: Cost | None) -> str:
        if cost is None:
            return "-"
        low, high = (shown("perHour", v, currency) for v in (cost.at_min, cost.at_max))
        return f"{low} at min, {high} at max"

    after = pair(endpoint.cost_after)
    if endpoint.cost_before == endpoint.cost_after:
        return after
    return f"{pair(endpoint.cost_before)} -> {after}"


def _worded(changes: list[FieldChange]) -> list[FieldChange]:
    """The changes a reader is shown one by one: the cost's have their own line."""
    return [change for change in changes if change.section != COST]


def text(plan: Plan) -> str:
    lines = [_headline(plan)]
    for endpoint in plan.endpoints:
        lines.append(
            f"{endpoint.name} in {endpoint.environment}: {endpoint.status} ({endpoint.spec})"
        )
        if endpoint.status == "unchanged":
            continue
        for change in _worded(endpoint.changes):
            mark = "  [security]" if change.security else ""
            before = shown(change.field, change.before, plan.currency)
            after = shown(change.field, change.after, plan.currency)
            lines.append(f"  {change.section:<9} {change.field}: {before} -> {after}{mark}")
        if plan.currency:
            lines.append(f"  {'cost':<9} {_cost_line(endpoint, plan.currency)}")
        for item in endpoint.objects:
            lines.append(f"  {'objects':<9} {item.action} {item.kind}/{item.name}")
        for waiver in endpoint.waivers:
            lines.append(
                f"  {'policy':<9} waiver {waiver.action}: {waiver.rule} until "
                f"{waiver.expires} (approved by {waiver.approver})"
            )
        if endpoint.fit:
            lines.append(f"  {'fit':<9} {fit_line(endpoint.fit)}")
    for weakening in plan.weakened:
        lines.append(f"policy weakened: {weakening}")
    for diff in plan.live:
        lines.append(f"live {diff.environment}: {diff.summary()}")
        lines.extend(f"  {line}" for line in diff.lines)
    lines = [one_line(line) for line in lines]
    lines += [format_diagnostic(safe_diagnostic(finding)) for finding in plan.findings]
    return "\n".join(lines) + "\n"


def fit_line(fit: dict[str, Any]) -> str:
    """The GPU fit in a reviewer's words: needed of available, on what, the headroom, and
    what would fit where it does not."""
    gib = {key: (fit.get(key) or 0) / GIB for key in ("needed_bytes", "available_bytes",
           "weights_bytes", "kv_cache_bytes", "reserve_bytes")}  # fmt: skip
    headroom = fit.get("headroom") or 0.0
    line = (
        f"needs {gib['needed_bytes']:.1f} GiB (weights {gib['weights_bytes']:.1f}, KV cache "
        f"{gib['kv_cache_bytes']:.1f}, reserve {gib['reserve_bytes']:.1f}) of "
        f"{gib['available_bytes']:.1f} GiB on {fit.get('gpus', 1)} x {fit.get('product')}: "
        + (f"fits, {headroom:.0%} headroom" if headroom >= 0 else "does NOT fit")
    )
    if headroom < 0:
        line += (
            f"; largest context that fits: {fit.get('largest_context')}, smallest product "
            f"that fits: {fit.get('smallest_product') or 'none'}"
        )
    return line


def _cell(value: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, tags or code spans of its own. Made
    one safe line first: a secret is masked before escaping splits it (ghp\\_...)."""
    value = one_line(value)
    for raw, escaped in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("`", "\\`"),
        ("*", "\\*"),
        ("_", "\\_"),
        ("[", "\\["),
        ("]", "\\]"),
    ):
        value = value.replace(raw, escaped)
    return value


def markdown(plan: Plan) -> str:
    out = [f"## {_cell(_headline(plan))}", ""]
    if plan.findings:
        out += ["**Findings** (the change is refused until they are resolved):", ""]
        out += [
            f"- {_cell(format_diagnostic(safe_diagnostic(d)).splitlines()[0])}"
            for d in plan.findings
        ]
        out.append("")
    for endpoint in plan.endpoints:
        title = f"{endpoint.name} · {endpoint.environment}: {endpoint.status}"
        if endpoint.security_relevant:
            title += " (security-relevant)"
        if endpoint.status == "unchanged":
            out += [f"<details><summary>{_cell(title)}</summary>", ""]
            out += _facts_table(endpoint, plan.currency)
            out += ["", "</details>", ""]
            continue
        out += [f"### {_cell(title)}", "", f"Spec: `{_cell(endpoint.spec)}`", ""]
        if _worded(endpoint.changes):
            out += ["| section | field | before | after |", "|---|---|---|---|"]
            for change in _worded(endpoint.changes):
                section = f"**{change.section}** (security)" if change.security else change.section
                before = _cell(shown(change.field, change.before, plan.currency))
                after = _cell(shown(change.field, change.after, plan.currency))
                out.append(f"| {section} | {_cell(change.field)} | {before} | {after} |")
            out.append("")
        if plan.currency:
            out += [f"Cost: {_cell(_cost_line(endpoint, plan.currency))}", ""]
        if endpoint.objects:
            out += [
                "Objects: "
                + ", ".join(
                    f"{item.action} `{_cell(item.kind)}/{_cell(item.name)}`"
                    for item in endpoint.objects
                ),
                "",
            ]
        for waiver in endpoint.waivers:
            out.append(
                f"- waiver {waiver.action}: {_cell(waiver.rule)} until "
                f"{_cell(waiver.expires)} (approved by {_cell(waiver.approver)})"
            )
        if endpoint.fit:
            out += [f"GPU fit: {_cell(fit_line(endpoint.fit))}", ""]
    if plan.weakened:
        out += ["### Policy weakened", ""]
        out += [f"- {_cell(str(w))}" for w in plan.weakened]
        out.append("")
    for diff in plan.live:
        out += [f"### Live: {_cell(diff.environment)}", "", _cell(diff.summary()), ""]
        if diff.lines:
            out += [
                "```diff",
                *(one_line(line).replace("```", "'''") for line in diff.lines),
                "```",
                "",
            ]
    return "\n".join(out).rstrip("\n") + "\n"


def _facts_table(endpoint: EndpointPlan, currency: str) -> list[str]:
    rows = ["| field | value |", "|---|---|"]
    for key, value in endpoint.facts.items():
        rows.append(f"| {_cell(key)} | {_cell(shown(key, value, currency))} |")
    if currency:
        rows.append(f"| cost | {_cell(_cost_line(endpoint, currency))} |")
    return rows


def _cost(cost: Cost | None) -> dict[str, Any] | None:
    return None if cost is None else {"atMin": cost.at_min, "atMax": cost.at_max}


def as_json(plan: Plan) -> str:
    document = {
        "apiVersion": API_VERSION,
        "kind": "Plan",
        "ref": plan.ref,
        "commit": plan.commit,
        "currency": plan.currency,
        "summary": {
            "endpoints": len(plan.endpoints),
            "changed": len(plan.changed),
            "securityRelevant": sum(e.security_relevant for e in plan.changed),
            "findings": len(plan.findings),
        },
        "endpoints": [_endpoint(e) for e in plan.endpoints],
        "policy": {"weakened": [dataclasses.asdict(w) for w in plan.weakened]},
        "live": [diff.to_dict() for diff in plan.live],
        "diagnostics": [safe_diagnostic(d).to_dict() for d in plan.findings],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _endpoint(endpoint: EndpointPlan) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "environment": endpoint.environment,
        "spec": endpoint.spec,
        "status": endpoint.status,
        "team": endpoint.team,
        "securityRelevant": endpoint.security_relevant,
        "changes": [dataclasses.asdict(c) for c in endpoint.changes],
        "objects": [dataclasses.asdict(o) for o in endpoint.objects],
        "waivers": [dataclasses.asdict(w) for w in endpoint.waivers],
        "cost": {"before": _cost(endpoint.cost_before), "after": _cost(endpoint.cost_after)},
        "fit": endpoint.fit,
        "facts": endpoint.facts,
    }

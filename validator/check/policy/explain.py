"""`modelgate policies explain ID`: a rule in words, with the examples it is tested on."""

from __future__ import annotations

from .examples import to_yaml
from .rules import Rule


def explain(rule: Rule) -> str:
    scope = ", ".join(rule.environments) if rule.environments else "all environments"
    reference = "output, validator/check/policy/reference_output.yaml" if rule.output else "spec"
    examples = (
        "a change of the project's chat-assistant spec, its `after`, planned against it"
        if rule.change
        else f"changes to the reference {reference}"
    )
    lines = [
        f"{rule.id}: {rule.title}",
        f"severity: {rule.severity}"
        + "".join(
            f", {env}: {level}" for env, level in sorted(rule.severity_by_environment.items())
        ),
        f"applies to: {scope}",
        *_judged(rule),
        f"defined in: {rule.source}",
        "",
        "Why:",
        f"  {rule.rationale}",
        "",
        "What to do:",
        f"  {rule.remediation}",
        "",
        f"Passes ({examples}):",
        _indent(to_yaml(rule.passing[0].patch)),
        f"Fails (the finding points at {rule.failing[0].at}):",
        _indent(to_yaml(rule.failing[0].patch)),
    ]
    return "\n".join(lines)


def _judged(rule: Rule) -> list[str]:
    """What an output rule looks at; nothing for a spec rule."""
    if not rule.output:
        return []
    kinds = f" of kind {', '.join(rule.kinds)}" if rule.kinds else ""
    return [f"judges: the rendered output, each {' and each '.join(rule.subjects)}{kinds}"]


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())

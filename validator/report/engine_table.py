"""docs/spec.md's engine table, made from the engine records.

    python -m validator.report.engine_table      # the table to paste between its markers

tests/test_engines.py fails when the page and the records disagree.
"""

from __future__ import annotations

from ..engines import ENGINES


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


if __name__ == "__main__":
    from .output import Output

    Output().block(markdown_table())

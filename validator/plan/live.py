"""`plan --live ENV=KUBECONFIG`: the change's rendered objects against what ENV's cluster
serves, field by field. Read access only: `kubectl get` of the rendered objects. A
server-side dry-run apply would also show the fields admission adds, but the API server
authorizes a dry run as the write itself (patch rights), which a reviewer's plan must not
need; the fields modelgate renders are the ones compared."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sides import Side

MAX_LINES = 40  # per environment; the rest is counted


@dataclass
class LiveDiff:
    environment: str
    missing: int = 0  # rendered, not in the cluster
    differing: int = 0  # in the cluster with other values
    same: int = 0
    error: str = ""
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.error:
            return f"cannot read the cluster: {self.error}"
        return (
            f"{self.missing} object(s) not in the cluster, {self.differing} differ, "
            f"{self.same} as rendered"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "missing": self.missing,
            "differing": self.differing,
            "same": self.same,
            "error": self.error,
            "lines": self.lines,
        }


def compare(root: Path, live: dict[str, str], side: Side) -> list[LiveDiff]:
    return [_environment(env, Path(path), side) for env, path in sorted(live.items())]


def _environment(environment: str, kubeconfig: Path, side: Side) -> LiveDiff:
    diff = LiveDiff(environment)
    rendered = [
        json.loads(item.body)
        for (_, env), endpoint in sorted(side.endpoints.items())
        if env == environment
        for item in endpoint.objects.values()
        if item.kind != "File"
    ]
    if not rendered:
        return diff
    found, error = _get(kubeconfig, rendered)
    if error:
        diff.error = error
        return diff
    for wanted in rendered:
        key = (wanted["kind"], wanted["metadata"].get("namespace"), wanted["metadata"]["name"])
        name = f"{wanted['kind']}/{wanted['metadata']['name']}"
        current = found.get(key)
        if current is None:
            diff.missing += 1
            diff.lines.append(f"+ {name}: not in the cluster")
            continue
        differences = list(_differences(wanted, current, ""))
        if differences:
            diff.differing += 1
            diff.lines += [f"~ {name}: {where}: {was} -> {now}" for where, was, now in differences]
        else:
            diff.same += 1
    if len(diff.lines) > MAX_LINES:
        diff.lines = [*diff.lines[:MAX_LINES], f"... and {len(diff.lines) - MAX_LINES} more"]
    return diff


def _get(kubeconfig: Path, objects: list[dict]) -> tuple[dict, str]:
    """The cluster's copy of each object (by kind, namespace, name), read with `kubectl get
    -f` of the rendered objects themselves."""
    with tempfile.TemporaryDirectory(prefix="modelgate-live-") as scratch:
        listed = Path(scratch, "objects.json")
        listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        try:
            done = subprocess.run(
                [
                    "kubectl",
                    f"--kubeconfig={kubeconfig}",
                    "get",
                    "-f",
                    str(listed),
                    "--ignore-not-found",
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return {}, str(exc)
    if done.returncode != 0:
        return {}, (done.stderr.strip().splitlines() or ["kubectl get failed"])[-1]
    try:
        data = json.loads(done.stdout) if done.stdout.strip() else {"items": []}
    except json.JSONDecodeError:
        return {}, "kubectl printed no JSON"
    items = data.get("items", [data]) if data.get("kind") == "List" else [data]
    return {
        (item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]): item
        for item in items
        if isinstance(item, dict) and "metadata" in item
    }, ""


def _differences(wanted: Any, current: Any, where: str):
    """(path, live value, rendered value) where the cluster's object differs from a field
    the rendered object sets; fields it leaves out (defaults, status) are not compared."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        for key, value in wanted.items():
            yield from _differences(value, current.get(key), f"{where}.{key}" if where else key)
    elif isinstance(wanted, list) and isinstance(current, list) and len(wanted) == len(current):
        for index, (value, live) in enumerate(zip(wanted, current, strict=True)):
            yield from _differences(value, live, f"{where}[{index}]")
    elif not _same(wanted, current):
        yield where, _short(current), _short(wanted)


def _same(wanted: Any, current: Any) -> bool:
    """Equal, as the API server stores it: "1" and 1 are one quantity, "500m" stays."""
    return wanted == current or str(wanted) == str(current)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."

"""What serves where, kept in the cluster itself: a ConfigMap per model in the environment's
namespace, written by the deployer after each rollout and read by every later run (`rollout`,
`revert`, `modelgate status --env`, the catalog). A file on a CI runner is gone with the
runner; the cluster is what serves, so it holds the account of what serves.

    ConfigMap modelgate-record-NAME (labels modelgate.dev/record: NAME)
      data.current   the latest rollout of the model, as JSON
      data.history   the latest rollouts, newest first, as a JSON list (HISTORY_KEPT of them)

An entry holds the commit, the digest of the manifests applied, the model's digest and
revision, the verdict (serving, failed, reverted) with the smoke results, and the times. The
labels are not modelgate's workload labels: neither the kubernetes target's prune nor Argo
CD (which tracks only what it applied) ever deletes a record.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import kubectl

PREFIX = "modelgate-record-"
LABEL = "modelgate.dev/record"
FIELD_MANAGER = "modelgate-record"
HISTORY_KEPT = 20
SERVING, FAILED, REVERTED = "serving", "failed", "reverted"


@dataclass
class Entry:
    environment: str
    model: str
    commit: str
    result: str  # SERVING, FAILED or REVERTED (failed, then the last good put back)
    manifests: str = ""  # sha256 over the rendered files applied (manifests_digest)
    model_digest: str = ""  # the spec's sha256/treeSha256, or the image digest
    revision: str = ""  # spec.model.revision, for sources pinned by revision
    version: str = ""
    delivery: str = ""
    smoke: str = ""  # "passed 3/3", "failed 1/3", "readiness only"
    message: str = ""  # why it failed, or what the revert did
    endpoint: str = ""
    started: str = ""  # UTC, ISO 8601
    finished: str = ""
    reverts: str = ""  # the commit this one put back the last good version over
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Entry:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def name_of(model: str) -> str:
    return f"{PREFIX}{model}"


def manifests_digest(files: Mapping[str, bytes]) -> str:
    """sha256 over `NAME\\0CONTENT\\0` of the files, sorted by name: what was applied."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return f"sha256:{digest.hexdigest()}"


def history(namespace: str, model: str) -> list[Entry]:
    """The model's rollouts in the environment, newest first; [] when it has none."""
    done = kubectl.run("get", "configmap", name_of(model), "-n", namespace, "-o", "json")
    if done.returncode != 0:
        if "NotFound" in done.stderr:
            return []
        raise kubectl.KubectlError(done.stderr.strip())
    data = json.loads(done.stdout).get("data") or {}
    try:
        entries = json.loads(data.get("history") or "[]")
    except ValueError as exc:
        raise kubectl.KubectlError(f"the record {name_of(model)} is not readable: {exc}") from exc
    return [Entry.of(entry) for entry in entries if isinstance(entry, dict)]


def last_good(namespace: str, model: str) -> Entry | None:
    return next((e for e in history(namespace, model) if e.result == SERVING), None)


def every_model(namespace: str, kubeconfig: str = "") -> dict[str, Entry]:
    """The latest entry of every model recorded in the namespace (of the cluster `kubeconfig`
    names, else KUBECONFIG's)."""
    chosen = ("--kubeconfig", kubeconfig) if kubeconfig else ()
    done = kubectl.run(*chosen, "get", "configmaps", "-n", namespace, "-l", LABEL, "-o", "json")
    if done.returncode != 0:
        raise kubectl.KubectlError(done.stderr.strip())
    latest: dict[str, Entry] = {}
    for item in kubectl.items(done.stdout):
        current = (item.get("data") or {}).get("current")
        try:
            entry = Entry.of(json.loads(current or "{}"))
        except (TypeError, ValueError):
            continue
        latest[entry.model] = entry
    return latest


def write(namespace: str, entry: Entry, earlier: list[Entry] | None = None) -> None:
    """Add the entry to the model's record (server-side apply by modelgate's record manager).
    `earlier`: its history as read before (a rollout reads it while Argo CD syncs), else it
    is read now."""
    if earlier is None:
        earlier = history(namespace, entry.model)
    entries = [entry, *earlier][:HISTORY_KEPT]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name_of(entry.model),
            "namespace": namespace,
            "labels": {LABEL: entry.model, "modelgate.dev/environment": entry.environment},
        },
        "data": {
            "current": json.dumps(asdict(entry), sort_keys=True),
            "history": json.dumps([asdict(e) for e in entries], sort_keys=True),
        },
    }
    with tempfile.TemporaryDirectory(prefix="modelgate-record-") as folder:
        path = Path(folder) / "record.yaml"
        path.write_text(yaml.safe_dump(config_map), encoding="utf-8")
        done = kubectl.run(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts",
            f"--filename={path}",
        )  # fmt: skip
    if done.returncode != 0:
        raise kubectl.KubectlError(f"the record could not be written: {done.stderr.strip()}")

"""The kubernetes target: apply rendered/ENV/NAME with kubectl, wait for readiness, smoke-test
through a port-forward, and put the last good manifests back when the new ones fail.

This is deliberately thin: Kubernetes (and KServe, Seldon, Argo CD) do the orchestration;
modelgate applies what was reviewed, waits, verifies, and reports the conditions' reasons.
Deployments stay up: `--keep` changes nothing here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import render, smoke
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..smoke import Endpoint
from . import (
    ENDPOINT_NOT_AVAILABLE,
    ENGINE_MISSING,
    MODEL_NOT_DEPLOYED,
    NOT_RUNNING,
    Outcome,
    RunState,
    interrupt,
    readiness_timeout,
)
from .net import free_port, listening

LAST_GOOD = Path(".modelgate") / "kubernetes-last-good"
WORKLOAD_KINDS = ("InferenceService", "Deployment", "Model")
FIELD_MANAGER = "modelgate"


class KubectlError(Exception):
    pass


def can_serve(document: Document) -> bool:
    return True  # every engine renders cluster manifests


def deploy(
    document: Document, root: Path, keep: bool = False, environment: str | None = None
) -> Outcome:
    name = document.data["metadata"]["name"]
    environment = environment or document.data["spec"]["environments"][0]
    outcome = Outcome(name)
    started = time.monotonic()
    try:
        outcome.diagnostics.extend(_deploy(document, root, environment, outcome))
    except KubectlError as exc:
        outcome.diagnostics.append(
            document.finding(
                ["spec", "engine"],
                MODEL_NOT_DEPLOYED,
                f"model not deployed: {exc}",
                _hint(str(exc), environment),
            )
        )
    outcome.seconds = time.monotonic() - started
    return outcome


def _hint(refusal: str, environment: str) -> str:
    if "(Forbidden)" in refusal:
        return (
            f"the identity KUBECONFIG names lacks rights in the namespace: a cluster admin "
            f"applies rendered/{environment}/{render.RBAC}/ (the Role a deploy needs, bound to "
            "templates/values.yaml's deployerGroup)"
        )
    return "check KUBECONFIG and that the cluster answers"


def stop(root: Path, name: str) -> list[Diagnostic]:
    return [
        error(
            name,
            0,
            0,
            NOT_RUNNING,
            "kubernetes deployments are removed through Git",
            "delete the spec and let Argo CD prune rendered/ENV/NAME",
        )
    ]


def running(root: Path) -> list[RunState]:
    """Nothing: what runs in a cluster is what rendered/ says, and Argo CD keeps it so."""
    return []


def _deploy(document: Document, root: Path, environment: str, outcome: Outcome) -> list[Diagnostic]:
    if shutil.which("kubectl") is None:
        return [
            document.finding(
                ["spec", "engine"],
                ENGINE_MISSING,
                "model not deployed: kubectl is not installed",
                "install kubectl",
            )
        ]
    rendering = _rendered(document, root)
    if rendering.failed():
        return rendering.diagnostics
    render.write(rendering.files, root)
    name = document.data["metadata"]["name"]
    folder = root / render.rendered_dir(environment, name)
    manifests = [_read(path) for path in sorted(folder.glob("*.yaml"))]
    kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(folder))
    timeout = readiness_timeout(document)
    problems = _wait(manifests, timeout)
    if not problems:
        problems = _smoke(document, manifests, outcome)
    if problems:
        restored = _restore_last_good(root, environment, name)
        note = (
            "the last good manifests were applied again" if restored else "no earlier good version"
        )
        return [
            document.finding(
                ["spec"],
                ENDPOINT_NOT_AVAILABLE,
                f"endpoint not available: {problem}",
                f"{note}",
            )
            for problem in problems
        ]
    _save_last_good(root, environment, name, folder)
    return []


def _rendered(document: Document, root: Path) -> render.Rendering:
    """The spec's manifests as `modelgate render` makes them, judged by the policy's output
    rules: nothing reaches the cluster that render would refuse to write."""
    from ..check.policy import load_policy

    policy, problems = load_policy(root)
    if problems:
        return render.Rendering(diagnostics=problems)
    return render.render_document(document, root, policy=policy)


def kubectl(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise KubectlError(done.stderr.strip() or f"kubectl {args[0]} failed")
    return done.stdout


def _read(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _wait(manifests: list[dict[str, Any]], timeout: float) -> list[str]:
    workloads = [m for m in manifests if m["kind"] in WORKLOAD_KINDS]
    deadline = time.monotonic() + timeout
    while True:
        states = [_live(m) for m in workloads]
        problems = [p for p in (not_ready(state) for state in states) if p]
        if not problems or time.monotonic() >= deadline:
            return [f"not ready within {timeout:g} s: {p}" for p in problems]
        interrupt.pause(2)


def _live(manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    out = kubectl(
        "get", manifest["kind"].lower(), meta["name"], "-n", meta["namespace"], "-o", "json"
    )
    return json.loads(out)


def not_ready(resource: dict[str, Any]) -> str | None:
    """None when a workload is ready, else why not, from its own status conditions."""
    kind, name = resource.get("kind", "?"), resource.get("metadata", {}).get("name", "?")
    status = resource.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    if kind == "Deployment":
        ready = _true(conditions.get("Available")) and (
            status.get("updatedReplicas", 0)
            == status.get("replicas", 0)
            == status.get("availableReplicas", 0)
            > 0
        )
        if ready:
            return None
        failing = (
            conditions.get("Progressing")
            if not _true(conditions.get("Progressing"))
            else (conditions.get("Available"))
        )
    else:
        if _true(conditions.get("Ready")):
            return None
        failing = conditions.get("Ready") or next(
            (c for c in conditions.values() if not _true(c)), None
        )
    reason = _describe(failing) if failing else "no status reported yet"
    failure = (status.get("modelStatus") or {}).get("lastFailureInfo")
    if failure:
        reason += f"; model: {failure.get('reason', '')}: {failure.get('message', '')}".rstrip(": ")
    return f"{kind} {name}: {reason}"


def _true(condition: dict[str, Any] | None) -> bool:
    return bool(condition) and condition.get("status") == "True"


def _describe(condition: dict[str, Any]) -> str:
    parts = [f"{condition.get('type')}={condition.get('status')}"]
    parts += [str(condition[key]) for key in ("reason", "message") if condition.get(key)]
    return " ".join(parts[:1]) + (f" ({': '.join(parts[1:])})" if parts[1:] else "")


def _smoke(document: Document, manifests: list[dict[str, Any]], outcome: Outcome) -> list[str]:
    service = _service(document, manifests)
    headers = api_key_headers(document, service[0])
    with _port_forward(*service) as port:
        endpoint = Endpoint(
            document.data["metadata"]["name"],
            f"http://127.0.0.1:{port}",
            document.data["spec"]["engine"]["protocol"],
            "kubernetes",
        )
        outcome.smoke = smoke.run(document, endpoint, headers)
        failed = [r for r in outcome.smoke if not r.passed]
        if not failed:
            outcome.endpoint = endpoint
        return [d.message for r in failed for d in r.diagnostics]


def api_key_headers(document: Document, namespace: str) -> dict[str, str]:
    """An apiKey endpoint's engine refuses requests without the key, port-forward or not:
    smoke requests send the key from the Secret auth.secretRef names, held only in memory."""
    auth = document.data["spec"].get("endpoint", {}).get("auth", {})
    ref = auth.get("secretRef")
    if auth.get("type") != "apiKey" or not ref:
        return {}
    secret = json.loads(kubectl("get", "secret", ref["name"], "-n", namespace, "-o", "json"))
    encoded = (secret.get("data") or {}).get(ref["key"])
    if encoded is None:
        raise KubectlError(f"secret {ref['name']} has no key {ref['key']} (auth.secretRef)")
    return {"Authorization": f"Bearer {base64.b64decode(encoded).decode('utf-8').strip()}"}


def _service(document: Document, manifests: list[dict[str, Any]]) -> tuple[str, str, int]:
    """(namespace, service, port) to forward: the rendered Service, or the KServe component
    that receives an InferenceService's requests first (its transformer, when it has one)."""
    for manifest in manifests:
        if manifest["kind"] == "Service":
            meta = manifest["metadata"]
            return meta["namespace"], f"svc/{meta['name']}", manifest["spec"]["ports"][0]["port"]
    meta = manifests[0]["metadata"]
    if any(m.get("kind") == "InferenceService" and _shared_pods(m) for m in manifests):
        return meta["namespace"], f"svc/{MODELMESH_SERVICE}", MODELMESH_REST_PORT
    first = next(
        (
            component
            for m in manifests
            if m["kind"] == "InferenceService"
            for component in ("transformer", "predictor")
            if component in m["spec"]
        ),
        "predictor",
    )
    return meta["namespace"], f"svc/{meta['name']}-{first}", 80


# ModelMesh serves every model of a namespace through one Service, its REST proxy on 8008
MODELMESH_SERVICE, MODELMESH_REST_PORT = "modelmesh-serving", 8008


def _shared_pods(manifest: dict[str, Any]) -> bool:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return annotations.get("serving.kserve.io/deploymentMode") == "ModelMesh"


@contextlib.contextmanager
def _port_forward(namespace: str, target: str, port: int) -> Iterator[int]:
    """A local port forwarded to the service, for as long as the smoke tests run."""
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, target, f"{local}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(local)
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not listening(port):
        interrupt.pause(0.2)


def _save_last_good(root: Path, environment: str, name: str, folder: Path) -> None:
    target = root / LAST_GOOD / environment / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)


def _restore_last_good(root: Path, environment: str, name: str) -> bool:
    saved = root / LAST_GOOD / environment / name
    if not saved.is_dir():
        return False
    kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--force-conflicts",
        "-f",
        str(saved),
    )
    return True

"""The kubernetes target: apply rendered/ENV/NAME to the cluster KUBECONFIG names, wait for
readiness, smoke-test through a port-forward, and leave the cluster as it was when that fails.

1. Render the spec as `modelgate render` does (output rules, the CRDs of crds/): nothing
   reaches the cluster that render would refuse to write.
2. Note which of its objects the cluster already has.
3. Server-side apply with the field manager `modelgate`, every object dry-run first: a refusal
   or a field another manager holds (a human's `kubectl edit`) changes nothing and is reported
   (MG510 for conflicts), never forced over.
4. Readiness from each workload's own status (readiness.py), then the smoke requests through a
   port-forward.
5. Passed: the manifests become the last good ones (last_good.py; their digest goes into the
   ledger) and objects modelgate applied for this model before that the spec no longer renders
   are pruned (found by modelgate's labels, deleted only when modelgate's field manager applied
   them). Failed: the last good manifests are applied again and what only the failed version
   added is removed, or, when nothing good was deployed before, what this deploy created is
   removed. The outcome says exactly what is left in the cluster, and why.

Kubernetes (and KServe, Seldon, Argo CD) do the orchestration; modelgate applies what was
reviewed, waits, verifies, and reports the conditions' reasons. `--keep` changes nothing here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import paths, render
from ..check.load import Document, SafeLoader
from ..diagnostics import Diagnostic, error
from . import (
    ENDPOINT_NOT_AVAILABLE,
    ENGINE_MISSING,
    INTERRUPTED,
    MODEL_NOT_DEPLOYED,
    NOT_RUNNING,
    Outcome,
    RunState,
    interrupt,
    kubectl,
    last_good,
    readiness_timeout,
    smoke,
)
from .kubectl import FIELD_MANAGER, KubectlError, Ref, Refusal
from .last_good import LastGood
from .net import free_port, listening
from .readiness import WORKLOAD_KINDS, Verdict, judge, not_ready, pod_trouble
from .smoke import Endpoint

__all__ = ["FIELD_MANAGER", "WORKLOAD_KINDS", "deploy", "not_ready", "running", "stop"]

CONFLICT = "MG510"
NO_CLUSTER = "MG512"
NAMESPACE_DIFFERS = "MG513"
MANAGED_BY, NAME_LABEL = "app.kubernetes.io/managed-by", "app.kubernetes.io/name"
ROLLBACK_FAILED = "MG511"
POLL_SECONDS = 2.0
FIRST_POLLS = (0.25, 0.5, 1.0)
PORT_FORWARD_SECONDS = 30.0


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
    except KubectlError as exc:  # before anything was applied
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
    if "(Forbidden)" in refusal or " is forbidden: " in refusal:
        return (
            f"the identity KUBECONFIG names lacks rights in the namespace: a cluster admin "
            f"applies rendered/{environment}/{render.RBAC}/ (the Role a deploy needs, bound to "
            "templates/values.yaml's deployerGroup)"
        )
    context = kubectl.selected().context
    where = f"the context {context}" if context else "the kubeconfig's current context"
    return f"check that {where} (KUBECONFIG) names your cluster, and that it answers"


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


@dataclass(frozen=True)
class Manifest:
    path: Path  # in rendered/, as just written
    shown: str  # rendered/ENV/NAME/FILE
    content: bytes
    data: dict[str, Any]
    ref: Ref


def _deploy(document: Document, root: Path, environment: str, outcome: Outcome) -> list[Diagnostic]:
    rendering = _rendered(document, root)
    if rendering.failed():
        return rendering.diagnostics
    unconfigured = kubectl.configuration_problem()
    if unconfigured:
        return [
            document.finding(
                ["spec", "engine"],
                NO_CLUSTER,
                f"model not deployed: no cluster to deploy to: {unconfigured}",
                "set KUBECONFIG to your cluster's kubeconfig file, and --context to one of its "
                "contexts if the current one is not the cluster (docs/kubernetes.md)",
            )
        ]
    if shutil.which("kubectl") is None:
        return [
            document.finding(
                ["spec", "engine"],
                ENGINE_MISSING,
                "model not deployed: kubectl is not installed",
                "install kubectl (your cluster's version, or one minor version apart) where PATH "
                "finds it",
            )
        ]
    render.write(rendering.files, root)
    name = document.data["metadata"]["name"]
    folder = render.rendered_dir(environment, name)
    manifests = [
        Manifest(root / item.path, item.path.as_posix(), item.content.encode(), data, Ref.of(data))
        for item in sorted(rendering.files, key=lambda f: f.path.name)
        # the manifests: not application.json, which only Argo CD's generator reads
        if item.path.parent == folder and item.path.suffix == ".yaml"
        for data in [yaml.safe_load(item.content)]
    ]
    elsewhere = _namespace_differs(document, manifests, folder)
    if elsewhere:
        return [elsewhere]
    previous, no_previous = last_good.find(root, environment, name)
    return Rollout(document, root, environment, manifests, outcome).run(previous, no_previous)


def manifests_in(root: Path, folder: Path) -> list[Manifest]:
    """The manifests of a rendered/ENV/NAME folder as they are in the checkout, by file name."""
    return [
        Manifest(path, path.relative_to(root).as_posix(), content, data, Ref.of(data))
        for path in sorted(folder.iterdir(), key=lambda p: p.name)
        if path.suffix == ".yaml" and path.is_file()
        for content in [paths.read_bytes(path, root)]
        for data in [yaml.load(content, Loader=SafeLoader)]  # libyaml's safe loader
        if isinstance(data, dict)
    ]


def _namespace_differs(
    document: Document, manifests: list[Manifest], folder: Any
) -> Diagnostic | None:
    """--namespace names where the user expects the model; rendered/ (what Argo CD syncs too)
    decides where it goes. A difference is said before anything is applied."""
    expected = kubectl.selected().namespace
    rendered = sorted({m.ref.namespace for m in manifests})
    if expected is None or rendered == [expected]:
        return None
    return document.finding(
        ["metadata", "name"],
        NAMESPACE_DIFFERS,
        f"model not deployed: {folder.as_posix()} puts it in namespace "
        f"{', '.join(rendered)}, not {expected} (--namespace)",
        "the namespace comes from `namespace` in templates/values.yaml (per environment): "
        "change it there and run `modelgate render`, or pass the namespace rendered/ names",
    )


def _rendered(document: Document, root: Path) -> render.Rendering:
    """The spec's manifests as `modelgate render` makes them, judged by the policy's output
    rules and the repository's CRDs: nothing reaches the cluster that render would refuse."""
    from ..check.policy import load_policy
    from ..render import crds

    policy, problems = load_policy(root)
    schemas = crds.repository_schemas(root)
    if problems or schemas.problems:
        return render.Rendering(diagnostics=[*problems, *schemas.problems])
    return render.render_document(document, root, schemas, policy=policy)


class Rollout:
    """One deploy of one spec to one environment, and what it leaves behind."""

    def __init__(
        self,
        document: Document,
        root: Path,
        environment: str,
        manifests: list[Manifest],
        outcome: Outcome,
    ) -> None:
        self.document = document
        self.root = root
        self.environment = environment
        self.manifests = manifests
        self.outcome = outcome
        self.name = document.data["metadata"]["name"]
        self.namespace = manifests[0].ref.namespace
        self.timeout = readiness_timeout(document)

    def run(self, previous: LastGood | None, no_previous: str) -> list[Diagnostic]:
        existed = set(kubectl.get([m.ref for m in self.manifests]))
        problems = self._dry_run()
        if problems:
            self.outcome.left = "nothing was applied: the cluster is as it was"
            return problems
        applied = [m.ref for m in self.manifests]  # all of them, or some of them on a refusal
        wait = True
        try:
            problems = self._apply() or self.ready() or self.smoke()
        except interrupt.Interrupted:
            self.outcome.interrupted = True
            wait = False
            problems = [
                self.document.finding(
                    ["metadata", "name"],
                    INTERRUPTED,
                    "model not deployed: interrupted",
                    "run the deploy again",
                )
            ]
        except KubectlError as exc:
            problems = [
                self.document.finding(
                    ["spec", "engine"],
                    MODEL_NOT_DEPLOYED,
                    f"model not deployed: {exc}",
                    _hint(str(exc), self.environment),
                )
            ]
        if problems:
            return problems + self._recover(previous, no_previous, existed, applied, wait)
        files = {m.path.name: m.content for m in self.manifests}  # as applied
        self.outcome.manifests = last_good.save(self.root, self.environment, self.name, files)
        self.outcome.endpoint = self.endpoint()
        self.outcome.notes += self._prune(previous)
        return []

    # --- applying -----------------------------------------------------------------------------

    def _dry_run(self) -> list[Diagnostic]:
        """Every object as a server-side dry run, together: what the cluster would refuse
        (a conflict among them) is found before anything changes."""
        if kubectl.apply([m.path for m in self.manifests], dry_run=True) is None:
            return []
        return [
            self._refused(manifest, refused)
            for manifest in self.manifests
            for refused in [kubectl.apply([manifest.path], dry_run=True)]
            if refused is not None
        ]

    def _apply(self) -> list[Diagnostic]:
        refused = kubectl.apply([m.path for m in self.manifests])
        if refused is None:
            return []
        return [  # taken by the dry run a moment ago: someone changed the objects meanwhile
            error(
                self.manifests[0].shown.rpartition("/")[0],
                0,
                0,
                CONFLICT if refused.conflict else MODEL_NOT_DEPLOYED,
                f"model not deployed: the cluster refused the manifests: {refused.message}",
                _hint(refused.message, self.environment),
            )
        ]

    def _refused(self, manifest: Manifest, refused: Refusal) -> Diagnostic:
        if not refused.conflict:
            return error(
                manifest.shown,
                0,
                0,
                MODEL_NOT_DEPLOYED,
                f"model not deployed: the cluster refused {manifest.ref}: {refused.message}",
                _hint(refused.message, self.environment),
            )
        managers = ", ".join(f'"{m}"' for m in refused.managers)
        fields = ", ".join(refused.fields) or "fields"
        return error(
            manifest.shown,
            0,
            0,
            CONFLICT,
            f"model not deployed: {manifest.ref}: {fields} changed in the cluster by "
            f"{managers}; modelgate does not take fields over from another field manager",
            "the change was made outside Git (kubectl edit, another tool): put it into the "
            "spec, or undo it in the cluster; to let the spec win, run `kubectl apply "
            f"--server-side --field-manager={FIELD_MANAGER} --force-conflicts -f "
            f"{manifest.shown}`, then deploy again",
        )

    # --- readiness and smoke ------------------------------------------------------------------

    def ready(self) -> list[Diagnostic]:
        return [
            self.document.finding(
                ["spec", "smoke", "readinessTimeoutSeconds"],
                ENDPOINT_NOT_AVAILABLE,
                f"endpoint not available: {problem}",
                "the reason is the workload's own status as its controller wrote it, and its "
                "pods'; raise spec.smoke.readinessTimeoutSeconds if it is only slow",
            )
            for problem in self._wait([m.ref for m in self.manifests])
        ]

    def _wait(self, refs: Sequence[Ref]) -> list[str]:
        """Why the workloads among `refs` are not ready: [] once they all are; a final
        failure at once; whatever still waits after the readiness timeout."""
        workloads = [ref for ref in refs if ref.kind in WORKLOAD_KINDS]
        deadline = time.monotonic() + self.timeout
        pauses = iter(FIRST_POLLS)  # soon after an apply, then less often
        while True:
            live = kubectl.get(workloads)
            verdicts = {
                ref: judge(live[ref])
                if ref in live
                else Verdict(False, True, f"{ref.kind} {ref.name}: not in the cluster")
                for ref in workloads
            }
            waiting = {ref: verdict for ref, verdict in verdicts.items() if not verdict.ready}
            final = {ref: verdict for ref, verdict in waiting.items() if verdict.final}
            if not waiting:
                return []
            if final:
                return [self._why(verdict, live.get(ref)) for ref, verdict in final.items()]
            if time.monotonic() >= deadline:
                return [
                    f"not ready within {self.timeout:g} s: {self._why(verdict, live.get(ref))}"
                    for ref, verdict in waiting.items()
                ]
            interrupt.pause(next(pauses, POLL_SECONDS))

    def _why(self, verdict: Verdict, resource: dict[str, Any] | None) -> str:
        """The workload's reason, and for a Deployment what its pods say (an image that
        cannot be pulled, a crashing container, no node to run on)."""
        if resource is None or resource.get("kind") != "Deployment":
            return verdict.reason
        labels = ((resource.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            return verdict.reason
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        done = kubectl.run("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")
        trouble = pod_trouble(kubectl.items(done.stdout)) if done.returncode == 0 else ""
        return f"{verdict.reason}; {trouble}" if trouble else verdict.reason

    def smoke(self) -> list[Diagnostic]:
        if not (self.document.data["spec"].get("smoke") or {}).get("requests"):
            return []  # readiness is the verdict
        namespace, target, port = _service(self.document, [m.data for m in self.manifests])
        headers = api_key_headers(self.document, namespace)
        try:
            with _port_forward(namespace, target, port) as local:
                endpoint = Endpoint(
                    self.name,
                    f"http://127.0.0.1:{local}",
                    self.document.data["spec"]["engine"]["protocol"],
                    "kubernetes",
                )
                self.outcome.smoke = smoke.run(self.document, endpoint, headers)
        except ForwardFailed as exc:
            return [
                self.document.finding(
                    ["spec", "smoke", "requests"],
                    ENDPOINT_NOT_AVAILABLE,
                    f"endpoint not available: no smoke request could be sent: {exc}",
                    f"`kubectl port-forward -n {namespace} {target}` must reach a running pod "
                    "of the workload; check its pods and the identity's pods/portforward right",
                )
            ]
        failed = [result for result in self.outcome.smoke if not result.passed]
        if not failed:
            return []
        return [
            *(diagnostic for result in failed for diagnostic in result.diagnostics),
            self.document.finding(
                ["spec", "smoke", "requests"],
                ENDPOINT_NOT_AVAILABLE,
                "endpoint not available: smoke request(s) failed: "
                + ", ".join(result.name for result in failed),
                "see the findings at each request's expectations above",
            ),
        ]

    def endpoint(self) -> Endpoint:
        """Where the model answers inside the cluster (the port-forward is gone by now)."""
        namespace, target, port = _service(self.document, [m.data for m in self.manifests])
        service = target.removeprefix("svc/")
        return Endpoint(
            self.name,
            f"http://{service}.{namespace}.svc:{port}",
            self.document.data["spec"]["engine"]["protocol"],
            "kubernetes",
        )

    # --- what a failed deploy leaves --------------------------------------------------------

    def _recover(
        self,
        previous: LastGood | None,
        no_previous: str,
        existed: set[Ref],
        applied: list[Ref],
        wait: bool,
    ) -> list[Diagnostic]:
        """Put the cluster back: the last good manifests again, or no trace of this deploy.
        Sets the outcome's account of what is left; returns MG511 when the rollback failed."""
        created = [ref for ref in applied if ref not in existed]
        problems: list[Diagnostic] = []
        parts: list[str] = []
        kept: list[str] = []
        if previous is None:
            kept += [
                f"{ref} (it was in the cluster before this deploy, and {no_previous}: there "
                "is no good version of it to put back)"
                for ref in applied
                if ref in existed
            ]
            doomed = created
        else:
            old = {Ref.of(document, self.namespace) for document in _documents(previous)}
            restored, problems = self._restore(previous, wait)
            parts.append(restored)
            doomed = [ref for ref in created if ref not in old]
        removed, refused = self._remove(doomed)
        kept += refused
        if removed:
            what = "what this deploy created" if previous is None else "what only it added"
            parts.append(f"removed {what}: {', '.join(map(str, removed))}")
        if kept:
            parts.append(f"left in the cluster: {'; '.join(kept)}")
        self.outcome.left = "; ".join(parts) or "nothing was created: the cluster is as it was"
        return problems

    def _restore(self, previous: LastGood, wait: bool) -> tuple[str, list[Diagnostic]]:
        """Apply the last good manifests again; (what was done, MG511 when it did not work)."""
        what = f"the last good manifests ({previous.describe()})"
        with tempfile.TemporaryDirectory(prefix="modelgate-last-good-") as folder:
            # the files as read and checked against the ledger's digest, nothing else
            for name, content in previous.files.items():
                (Path(folder) / name).write_bytes(content)
            refused = kubectl.apply(sorted(Path(folder).iterdir()))
        if refused is not None:
            return f"{what} could not be applied again (MG511)", [
                self._rollback_failed(f"the cluster refused {what}: {refused.message}")
            ]
        if not wait:
            return f"rolled back: {what} were applied again (readiness not awaited)", []
        try:
            problems = self._wait(
                [Ref.of(document, self.namespace) for document in _documents(previous)]
            )
        except interrupt.Interrupted:
            return f"rolled back: {what} were applied again (interrupted: not awaited)", []
        except KubectlError as exc:
            problems = [str(exc)]
        if problems:
            return f"{what} were applied again but are not ready (MG511)", [
                self._rollback_failed(f"{what} were applied again: {'; '.join(problems)}")
            ]
        return f"rolled back: {what} were applied again and are ready", []

    def _rollback_failed(self, message: str) -> Diagnostic:
        return self.document.finding(
            ["metadata", "name"],
            ROLLBACK_FAILED,
            f"rollback incomplete: {message}",
            "the model may not be served: look at its workloads in the cluster "
            f"(kubectl get -n {self.namespace} -l app.kubernetes.io/name={self.name} all)",
        )

    def _remove(self, refs: Sequence[Ref]) -> tuple[list[Ref], list[str]]:
        removed: list[Ref] = []
        refused: list[str] = []
        for ref in refs:
            why = kubectl.delete(ref)
            if why:
                refused.append(f"{ref} (the cluster refused to delete it: {why})")
            else:
                removed.append(ref)
        return removed, refused

    # --- pruning --------------------------------------------------------------------------------

    def _prune(self, previous: LastGood | None) -> list[str]:
        """Delete what modelgate applied for this model before and the spec no longer renders:
        objects with its labels, among the kinds it renders or rendered, that its field
        manager applied. Others that carry the labels are left alone and named."""
        types = {m.ref.resource_type for m in self.manifests}
        if previous is not None:
            types |= {Ref.of(d, self.namespace).resource_type for d in _documents(previous)}
        types |= _granted_types(self.root, self.environment)
        selector = f"{MANAGED_BY}={FIELD_MANAGER},{NAME_LABEL}={self.name}"
        objects, problems = kubectl.labelled(self.namespace, types, selector)
        notes = [f"could not look for objects to prune: {problem}" for problem in problems]
        current = {m.ref for m in self.manifests}
        for resource in objects:
            ref = Ref.of(resource, self.namespace)
            if ref in current:
                continue
            if not kubectl.applied_by_modelgate(resource):
                notes.append(f"not pruned: {ref} has modelgate's labels but was not applied by it")
                continue
            why = kubectl.delete(ref)
            notes.append(f"could not prune {ref}: {why}" if why else f"pruned {ref}: not rendered")
        return notes


def _documents(previous: LastGood) -> list[dict[str, Any]]:
    return [
        document
        for content in previous.files.values()
        for document in [yaml.safe_load(content)]
        if isinstance(document, dict)
    ]


def _granted_types(root: Path, environment: str) -> set[str]:
    """The types the environment's deployer Role lets modelgate delete: everything any model of
    the environment renders (rendered/ENV/_rbac/role.yaml), as kubectl names them."""
    path = root / render.RENDERED_DIR / environment / render.RBAC / "role.yaml"
    try:
        role = yaml.safe_load(paths.read_text(path, root))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return set()
    rules = role.get("rules") if isinstance(role, dict) else None
    return {
        kubectl.resource_type(group, resource)
        for rule in rules or []
        if isinstance(rule, dict) and "delete" in (rule.get("verbs") or [])
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        if isinstance(group, str) and isinstance(resource, str) and "/" not in resource
    }


def api_key_headers(document: Document, namespace: str) -> dict[str, str]:
    """An apiKey endpoint's engine refuses requests without the key, port-forward or not:
    smoke requests send the key from the Secret auth.secretRef names, held only in memory."""
    auth = document.data["spec"].get("endpoint", {}).get("auth", {})
    ref = auth.get("secretRef")
    if auth.get("type") != "apiKey" or not ref:
        return {}
    answer = kubectl.kubectl("get", "secret", ref["name"], "-n", namespace, "-o", "json")
    secret = json.loads(answer)
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


class ForwardFailed(Exception):
    pass


@contextlib.contextmanager
def _port_forward(namespace: str, target: str, port: int) -> Iterator[int]:
    """A local port forwarded to the service, for as long as the smoke tests run."""
    local = free_port()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            kubectl.command("port-forward", "-n", namespace, "--pod-running-timeout=10s",
                            target, f"{local}:{port}"),
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )  # fmt: skip
        try:
            _wait_for_port(local, process, errors)
            yield local
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen, errors: Any) -> None:
    deadline = time.monotonic() + PORT_FORWARD_SECONDS
    while not listening(port):
        if process.poll() is not None:
            errors.seek(0)
            said = " ".join(errors.read().split())[-600:]
            raise ForwardFailed(f"kubectl port-forward exited: {said or process.returncode}")
        if time.monotonic() >= deadline:
            raise ForwardFailed(
                f"kubectl port-forward opened no port in {PORT_FORWARD_SECONDS:g} s"
            )
        interrupt.pause(0.2)

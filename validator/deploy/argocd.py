"""Asking Argo CD to sync one Application at one commit, through the Kubernetes API alone.

An Application's `operation` field is how Argo CD's own CLI and UI start a sync: the
application controller picks it up, syncs, and reports in `status.operationState`. Patching it
with kubectl needs no Argo CD token, CLI or server, only the rights rendered/ENV/_rbac/ grants
on the environment's Applications (get, patch and watch, by name).

Waiting ends when the sync operation Succeeded at the commit and the Application reports
Synced and Healthy, or with the reason it cannot: the Application does not exist, the sync
failed, the health is Degraded, Argo CD reports a newer commit that changed the model, or the
timeout passed. The wait watches the Application (one `kubectl get --watch`), so it sees each
report as Argo CD writes it; a kubectl started for every look costs a process start each time
(a large part of a second on a busy runner) on top of the pause between looks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..render.view import ARGOCD_NAMESPACE
from . import interrupt, kubectl

POLL_SECONDS = 1.0
FIRST_POLLS = (0.2, 0.3, 0.5)
APPEAR_SECONDS = 120.0  # for the ApplicationSet controller to make a new model's Application
SYNC_INITIATOR = "modelgate"
RUNNING = ("Running", "Terminating")
DEGRADED = "the Application is Degraded"
DEGRADED_HOLDS = 5.0  # seconds Degraded must last after the sync to be the verdict
WATCH_SLICE = 0.1  # a wait on the watch looks for an interrupt this often
FIRST_EVENT_SECONDS = 10.0  # for the watch's first report, before reading by `get` instead
REFRESH = "argocd.argoproj.io/refresh"


class SyncFailed(Exception):
    """The sync cannot end well; the message says why in Argo CD's words."""


@dataclass(frozen=True)
class State:
    """What the Application says now."""

    exists: bool
    operation_pending: bool = False  # an operation is set and not finished
    phase: str = ""  # of the last operation: Running, Succeeded, Failed, Error, Terminating
    synced_revision: str = ""  # the revision the last operation synced
    message: str = ""
    sync_status: str = ""  # Synced, OutOfSync, Unknown
    sync_revision: str = ""  # the revision the comparison was made at
    health: str = ""  # Healthy, Progressing, Degraded, Suspended, Missing, Unknown
    health_message: str = ""
    failed_resources: tuple[str, ...] = ()
    sync_options: tuple[str, ...] = ()  # the Application's spec.syncPolicy.syncOptions

    @classmethod
    def of(cls, application: dict[str, Any] | None) -> State:
        if application is None:
            return cls(False)
        status = application.get("status") or {}
        operation = status.get("operationState") or {}
        result = operation.get("syncResult") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        policy = (application.get("spec") or {}).get("syncPolicy") or {}
        return cls(
            True,
            operation_pending="operation" in application,
            phase=str(operation.get("phase") or ""),
            synced_revision=str(result.get("revision") or ""),
            message=str(operation.get("message") or ""),
            sync_status=str(sync.get("status") or ""),
            sync_revision=str(sync.get("revision") or ""),
            health=str(health.get("status") or ""),
            health_message=str(health.get("message") or ""),
            failed_resources=tuple(
                f"{r.get('kind')} {r.get('name')}: {r.get('message', '')}".strip()
                for r in result.get("resources") or []
                if r.get("status") == "SyncFailed" or r.get("hookPhase") == "Failed"
            ),
            sync_options=tuple(str(option) for option in policy.get("syncOptions") or ()),
        )


def get(name: str) -> dict[str, Any] | None:
    done = kubectl.run(
        "get", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE, "-o", "json"
    )
    if done.returncode == 0:
        return json.loads(done.stdout)
    if "NotFound" in done.stderr:
        return None
    if "the server doesn't have a resource type" in done.stderr:
        raise kubectl.KubectlError(
            "Argo CD is not installed in this cluster (no Application kind): deliver the "
            "environment by push, or install Argo CD"
        )
    raise kubectl.KubectlError(done.stderr.strip())


def appeared(name: str, applicationset: str, seconds: float = APPEAR_SECONDS) -> State:
    """The Application, once it exists. The ApplicationSet makes a new model's when it reads
    the commit; it is asked to read the repository again now rather than at its next poll.
    SyncFailed when the Application does not come."""
    deadline = time.monotonic() + seconds
    pauses = iter(FIRST_POLLS)
    asked = False
    while True:
        state = State.of(get(name))
        if state.exists:
            return state
        if not asked:
            kubectl.run(
                "annotate", "applicationsets.argoproj.io", applicationset, "-n",
                ARGOCD_NAMESPACE, "argocd.argoproj.io/application-set-refresh=true", "--overwrite",
            )  # fmt: skip
            asked = True
        if time.monotonic() >= deadline:
            said = _applicationset_error(applicationset)
            raise SyncFailed(
                f"Argo CD has no Application {name} in namespace {ARGOCD_NAMESPACE} after "
                f"{seconds:g} s: "
                + (
                    f"ApplicationSet {applicationset} says: {said} (a cluster admin applies "
                    "the team's project, rendered/ENV/_rbac/argocd-appproject-TEAM.yaml)"
                    if said
                    else "is the environment's ApplicationSet (rendered/argocd/) applied, with "
                    "the team's project (rendered/ENV/_rbac/), and does Argo CD reach the "
                    "repository?"
                )
            )
        interrupt.pause(next(pauses, POLL_SECONDS))


def _applicationset_error(applicationset: str) -> str:
    """Why the ApplicationSet made no Application, in its own words (an Application of a
    project that does not exist, a repository it cannot read); "" when it says nothing."""
    done = kubectl.run(
        "get", "applicationsets.argoproj.io", applicationset, "-n", ARGOCD_NAMESPACE, "-o", "json"
    )
    if done.returncode != 0:
        return ""
    try:
        conditions = json.loads(done.stdout).get("status", {}).get("conditions") or []
    except (ValueError, AttributeError):
        return ""
    return "; ".join(
        str(condition.get("message"))
        for condition in conditions
        if isinstance(condition, dict)
        and condition.get("type") == "ErrorOccurred"
        and condition.get("status") == "True"
    )


def sync(name: str, revision: str, prune: bool, options: tuple[str, ...]) -> None:
    """Start a sync of the Application at `revision` (a full commit id), with the sync options
    its spec names (State.sync_options: server-side apply, the namespace made with its labels):
    an operation carries its own, as `argocd app sync` copies them, or the controller ignores
    them. The same patch asks Argo CD to look at the repository again: it compares against
    the branch head it cached."""
    patch = {
        "metadata": {"annotations": {REFRESH: "normal"}},
        "operation": {
            "initiatedBy": {"username": SYNC_INITIATOR},
            "sync": {"revision": revision, "prune": prune, "syncOptions": list(options)},
            "info": [{"name": "reason", "value": f"modelgate rollout of {revision[:12]}"}],
        },
    }
    kubectl.kubectl(
        "patch", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE, "--type", "merge",
        "-p", json.dumps(patch),
    )  # fmt: skip


def settled(state: State, revision: str) -> bool:
    """The last operation synced `revision` and nothing more is under way."""
    return (
        not state.operation_pending
        and state.phase == "Succeeded"
        and state.synced_revision == revision
    )


def wait(
    name: str,
    revision: str,
    timeout: float,
    same_manifests: Callable[[str], bool],
) -> State:
    """Until the Application synced `revision` and is Synced and Healthy; SyncFailed with
    Argo CD's reason otherwise. `same_manifests(other)` says whether a commit Argo CD reports
    instead renders the model as `revision` does (a later commit that left it alone)."""
    deadline = time.monotonic() + timeout
    pauses = iter(FIRST_POLLS)
    degraded_since: float | None = None
    with watching(name) as watch:
        while True:
            state = State.of(watch.current())
            problem = _final_problem(name, state, revision, same_manifests)
            # Argo CD may still show the health it had before the sync for a moment (a
            # workload whose controller has not seen the new generation yet): Degraded ends
            # the wait only when it holds
            degraded = problem.startswith(DEGRADED)
            if degraded and degraded_since is None:
                degraded_since = time.monotonic()
            if not degraded:
                degraded_since = None
            if problem and (not degraded or time.monotonic() - degraded_since >= DEGRADED_HOLDS):
                raise SyncFailed(problem)
            if _done(state, revision, same_manifests):
                return state
            if time.monotonic() >= deadline:
                raise SyncFailed(f"not Synced and Healthy within {timeout:g} s: {describe(state)}")
            watch.pause(next(pauses, POLL_SECONDS))


class Watch:
    """One Application as Argo CD reports it, from `kubectl get --watch`: every change arrives
    as it is written, with no kubectl started per look. Where the stream cannot be had or
    ends (a Role applied before it granted `watch`, a watch the server closed), each look is a
    `get`, and pauses are polls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._latest: dict[str, Any] | None = None
        self._seen = threading.Event()  # the first report arrived
        self._changed = threading.Event()
        self._ended = threading.Event()
        self._process = subprocess.Popen(
            kubectl.command(
                "get", "applications.argoproj.io", name, "-n", ARGOCD_NAMESPACE, "-o", "json",
                "--watch", "--output-watch-events",
            ),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,  # its own group: close() ends a kubectl shim's child too
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """kubectl prints each event as a JSON document, {"type": ..., "object": ...}."""
        decoder = json.JSONDecoder()
        text = ""
        try:
            for line in self._process.stdout or ():
                text += line
                if not line.rstrip().endswith("}"):
                    continue
                try:
                    event, _ = decoder.raw_decode(text.strip())
                except ValueError:
                    continue  # a document printed over several lines, not ended yet
                text = ""
                if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
                    break  # ERROR: the server ended the watch
                self._latest = None if event["type"] == "DELETED" else event.get("object")
                self._seen.set()
                self._changed.set()
        finally:
            self._ended.set()
            self._changed.set()

    def streaming(self) -> bool:
        return self._seen.is_set() and not self._ended.is_set()

    def current(self) -> dict[str, Any] | None:
        """The Application as last reported (None: it does not exist)."""
        if not self._seen.is_set() and not self._ended.is_set():
            deadline = time.monotonic() + FIRST_EVENT_SECONDS
            while not self._changed.wait(WATCH_SLICE) and time.monotonic() < deadline:
                interrupt.check()
        self._changed.clear()
        return self._latest if self.streaming() else get(self.name)

    def pause(self, seconds: float) -> None:
        """Until the Application changes or `seconds` pass; raises Interrupted on a stop."""
        if not self.streaming():
            interrupt.pause(seconds)
            return
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            interrupt.check()
            if self._changed.wait(min(WATCH_SLICE, left)):
                return
        interrupt.check()

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        self._reader.join(timeout=10)  # the stream's end: every writer to it is gone


@contextlib.contextmanager
def watching(name: str) -> Iterator[Watch]:
    watch = Watch(name)
    try:
        yield watch
    finally:
        watch.close()


def _done(state: State, revision: str, same_manifests: Callable[[str], bool]) -> bool:
    def ours(other: str) -> bool:
        return other == revision or (bool(other) and same_manifests(other))

    return (
        not state.operation_pending
        and state.phase == "Succeeded"
        and ours(state.synced_revision)
        and state.sync_status == "Synced"
        and ours(state.sync_revision)
        and state.health == "Healthy"
    )


def _final_problem(
    name: str, state: State, revision: str, same_manifests: Callable[[str], bool]
) -> str:
    if not state.exists:
        return f"the Application {name} was deleted while the rollout waited for it"
    if state.operation_pending or state.phase in RUNNING:
        return ""
    if state.phase in ("Failed", "Error") and state.synced_revision in ("", revision):
        failed = "; ".join(state.failed_resources)
        return f"Argo CD's sync {state.phase.lower()}: {state.message}" + (
            f" ({failed})" if failed else ""
        )
    if state.synced_revision and state.synced_revision != revision:
        if same_manifests(state.synced_revision):
            return ""
        return (
            f"Argo CD synced {state.synced_revision[:12]}, not {revision[:12]}: a later commit "
            "changed this model and was synced over it; that commit's own rollout verifies it"
        )
    if state.phase == "Succeeded" and state.health == "Degraded":
        return f"{DEGRADED}: {state.health_message or 'see its resources'}"
    return ""


def describe(state: State) -> str:
    if not state.exists:
        return "no such Application"
    parts = [
        f"operation {state.phase or 'not started'}"
        + (f" at {state.synced_revision[:12]}" if state.synced_revision else ""),
        f"sync {state.sync_status or 'unknown'}"
        + (f" at {state.sync_revision[:12]}" if state.sync_revision else ""),
        f"health {state.health or 'unknown'}"
        + (f" ({state.health_message})" if state.health_message else ""),
    ]
    return ", ".join(parts)

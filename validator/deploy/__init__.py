"""Put a validated spec up on a target, smoke-test it, and report an Outcome.

A deploy only counts when every smoke request passed; anything else is a Diagnostic and
nothing is left running (the kubernetes target puts the last good manifests back, or removes
what the deploy created, and says what is left: Outcome.left). The two named failures:

- MG501 "model not deployed": the engine never loaded the model (bad artifact, crash).
- MG502 "endpoint not available": no readiness within the timeout, or a smoke request failed.
"""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..check import pod, stand_ins
from ..check.load import Document
from ..diagnostics import Diagnostic
from .smoke import Endpoint, SmokeResult

MODEL_NOT_DEPLOYED = "MG501"
ENDPOINT_NOT_AVAILABLE = "MG502"
TARGET_UNSUPPORTED = "MG503"
ENGINE_MISSING = "MG504"
PORT_TAKEN = "MG505"
NOT_RUNNING = "MG506"

DOCKER_UNAVAILABLE = "MG508"
TARGETS = ("local", "docker", "kubernetes")
NOT_RUN = "not run"  # a ledger result: the target cannot run the spec, no smoke test ran


@dataclass
class Outcome:
    name: str
    endpoint: Endpoint | None = None
    smoke: list[SmokeResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    kept: bool = False
    seconds: float = 0.0
    previous: str | None = None  # endpoint that kept serving when this deploy failed
    interrupted: bool = False
    left: str = ""  # what a failed deploy left behind, when it is not "nothing"
    notes: list[str] = field(default_factory=list)  # what else the deploy did, for the user
    manifests: str = ""  # kubernetes: digest of the manifests applied (deploy/last_good.py)
    # what ran in place of the real model, for every report to say (stand_ins.description);
    # "" when the real model ran
    stand_in: str = ""
    # the spec's engine arguments the local build left out, each with why (Engine.local_drops)
    left_out: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.endpoint is not None and not self.diagnostics


LOOPBACK_TARGETS = ("local", "docker")


def exposure_not_applied(document: Document) -> list[str]:
    """The spec.endpoint settings the local and docker targets leave out: they serve on
    127.0.0.1 over plain HTTP, without authentication, for tests (the rendered cluster
    manifests carry the settings)."""
    endpoint = document.data["spec"].get("endpoint", {})
    auth = endpoint.get("auth", {}).get("type", "none")
    left_out = [
        "visibility public" if endpoint.get("visibility") == "public" else "",
        "host" if endpoint.get("host") else "",
        "tls" if endpoint.get("tls") else "",
        f"auth {auth}" if auth != "none" else "",
    ]
    return [setting for setting in left_out if setting]


DEPLOY_BUSY = "MG507"
INTERRUPTED = "MG509"


def smoke_failures(
    document: Document, results: list[SmokeResult], crashed: bool, log: str
) -> list[Diagnostic]:
    """Each failed expectation, then one "endpoint not available" naming what failed."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return []
    names = ", ".join(r.name for r in failed)
    detail = "the engine crashed" if crashed else f"smoke request(s) failed: {names}"
    return [
        *(d for r in failed for d in r.diagnostics),
        document.finding(
            ["spec", "smoke", "requests"],
            ENDPOINT_NOT_AVAILABLE,
            f"endpoint not available: {detail}",
            f"last lines of the log:\n{log}",
        ),
    ]


def not_ready(document: Document, timeout: float, log: str) -> Diagnostic:
    return document.finding(
        ["spec", "smoke", "readinessTimeoutSeconds"],
        ENDPOINT_NOT_AVAILABLE,
        f"endpoint not available: the model was not ready within {timeout:g} s",
        "raise spec.smoke.readinessTimeoutSeconds if loading is slow; last lines of the "
        f"log:\n{log}",
    )


@dataclass(frozen=True)
class RunState:
    """A deployment left running by `deploy --keep`, on any target."""

    name: str
    target: str
    base_url: str
    where: str  # what `status` shows: a process id, a container id


class Target(Protocol):
    """Where a model runs. local.py, docker.py and kubernetes.py are the three targets."""

    def can_serve(self, document: Document) -> bool: ...

    def deploy(
        self, document: Document, root: Path, keep: bool = False, environment: str | None = None
    ) -> Outcome: ...

    def running(self, root: Path) -> list[RunState]: ...

    def stop(self, root: Path, name: str) -> list[Diagnostic]: ...


def target_named(name: str) -> Target:
    """The target called `name`; its module is imported only when used."""
    if name not in TARGETS:
        raise ValueError(f"no target {name!r}")
    return importlib.import_module(f"{__name__}.{name}")  # type: ignore[return-value]


def kept(root: Path, name: str) -> RunState | None:
    """The deployment of `name` left running on any target, if there is one."""
    for each in TARGETS:
        for state in target_named(each).running(root):
            if state.name == name:
                return state
    return None


def fixed_port_held_by(document: Document, kept_url: str | None) -> Diagnostic | None:
    """A kept deployment of this model listens on the spec's fixed port: blue/green starts
    the new version beside the old one and retires the old one only after the new one
    passed, which one fixed port cannot do. Say so instead of "port already in use"."""
    port = (document.data["spec"].get("endpoint") or {}).get("port")
    if port is None or not kept_url or not kept_url.endswith(f":{port}"):
        return None
    name = document.data["metadata"]["name"]
    return document.finding(
        ["spec", "endpoint", "port"],
        PORT_TAKEN,
        f"model not deployed: the kept deployment of {name} holds port {port}, and an upgrade "
        "runs the new version beside the old one until it passes its smoke tests",
        f"remove spec.endpoint.port (a free port is picked), or `modelgate stop {name}` "
        "first and accept that the endpoint is down until the new version passes",
    )


def readiness_timeout(document: Document) -> float:
    return pod.readiness_timeout(document.data["spec"])  # what startup probes must cover


def run(
    document: Document,
    root: Path,
    target: str = "local",
    keep: bool = False,
    lock_timeout: float = 30.0,
    environment: str | None = None,
) -> Outcome:
    """Deploy one spec under its lock and record the attempt in the ledger, whatever happens."""
    from ..render.view import spec_hash
    from . import interrupt, ledger
    from .lock import Busy, deploy_lock

    name = document.data["metadata"]["name"]
    started = time.monotonic()
    try:
        with deploy_lock(root, name, lock_timeout):
            interrupt.check()
            outcome = target_named(target).deploy(document, root, keep, environment)
    except interrupt.Interrupted:
        outcome = Outcome(
            name,
            diagnostics=[
                document.finding(
                    ["metadata", "name"],
                    INTERRUPTED,
                    "model not deployed: interrupted; what this deploy started was stopped",
                    "run the deploy again",
                )
            ],
            interrupted=True,
            seconds=time.monotonic() - started,
        )
    except Busy as busy:
        outcome = Outcome(
            name,
            diagnostics=[
                document.finding(
                    ["metadata", "name"],
                    DEPLOY_BUSY,
                    f"model not deployed: {busy}",
                    "wait for it to finish, or run the deploys one after the other",
                )
            ],
        )
    # what ran: the stand-in's pin where the smoke tests ran on it
    spec = document.data["spec"]
    model = stand_ins.served_spec(spec)["model"] if outcome.stand_in else spec["model"]
    ledger.record(
        root,
        name=name,
        spec_hash=spec_hash(document),
        artifact=_pin(model),
        target=target,
        environment=environment
        or (document.data["spec"]["environments"][0] if target == "kubernetes" else target),
        result="interrupted" if outcome.interrupted else "deployed" if outcome.ok else "failed",
        error="; ".join(d.message for d in outcome.diagnostics if d.severity.value == "error"),
        endpoint=outcome.endpoint.inference_url if outcome.endpoint else "",
        seconds=round(outcome.seconds, 3),
        manifests=outcome.manifests,
        stand_in=outcome.stand_in,
    )
    return outcome


def _pin(model: dict) -> str:
    """What the ledger records of the model that ran: its image, else its digest."""
    return (
        model.get("image")
        or model.get("sha256")
        or model.get("treeSha256")
        or model.get("artifact", "")
    )


def record_not_run(document: Document, root: Path, target: str, reason: str) -> None:
    """Note in the ledger that a spec a change touched was not deployed on `target`, and
    why: its smoke tests did not run, which a report must not show as passed."""
    from ..render.view import spec_hash
    from . import ledger

    model = document.data["spec"]["model"]
    ledger.record(
        root,
        name=document.data["metadata"]["name"],
        spec_hash=spec_hash(document),
        artifact=_pin(model),
        target=target,
        environment=target,
        result=NOT_RUN,
        error=reason,
        endpoint="",
        seconds=0.0,
    )


def run_many(
    documents: Sequence[Document],
    root: Path,
    target: str,
    *,
    keep: bool,
    lock_timeout: float,
    environment: str | None,
    jobs: int,
    each: Callable[[Outcome], None],
) -> list[Outcome]:
    """Deploy several specs, `jobs` at a time; `each` gets every outcome in the specs' order.

    On SIGINT or SIGTERM (KeyboardInterrupt in this, the main, thread) every running deploy
    is asked to stop what it started, further signals are ignored until they all have, the
    outcomes so far are handed to `each`, and the KeyboardInterrupt goes on up.
    """
    from concurrent.futures import ThreadPoolExecutor

    from . import interrupt

    def one(document: Document) -> Outcome:
        return run(document, root, target, keep, lock_timeout, environment)

    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, document) for document in documents]
        try:
            for future in futures:
                outcomes.append(_outcome_of(future))
                each(outcomes[-1])
        except KeyboardInterrupt:
            interrupt.request()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            pool.shutdown(wait=True, cancel_futures=True)
            for future in futures[len(outcomes) :]:
                if not future.cancelled():
                    each(future.result())
            raise
    return outcomes


def _outcome_of(future: Future[Outcome]) -> Outcome:
    """Wait with a timeout, so that a signal reaches the main thread while deploys run."""
    while True:
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            continue

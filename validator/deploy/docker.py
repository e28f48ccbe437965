"""The docker target: a model image, pinned by digest, run as a hardened container.

The container gets the settings rendered into rendered/docker/NAME/compose.yaml: read-only
root filesystem with a tmpfs /tmp, every capability dropped, no-new-privileges, a non-root
user, memory and CPU limits, and its port published on 127.0.0.1 only. It is labelled with
the spec's name and hash, so `status` and `stop` find it. Readiness is the model's own ready
endpoint; a container that exits first is "model not deployed". Redeploying a kept model is
blue/green, as on the local target.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from ..check import targets
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..render import view
from . import (
    DOCKER_UNAVAILABLE,
    MODEL_NOT_DEPLOYED,
    NOT_RUNNING,
    PORT_TAKEN,
    TARGET_UNSUPPORTED,
    Outcome,
    RunState,
    fixed_port_held_by,
    interrupt,
    not_ready,
    readiness_timeout,
    smoke,
    smoke_failures,
)
from .net import answers_200, free_port, port_free
from .smoke import Endpoint

NAME_LABEL = "modelgate.dev/name"
HASH_LABEL = "modelgate.dev/spec-hash"
URL_LABEL = "modelgate.dev/url"
CONTAINER_PORT = 8080
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 15


def can_serve(document: Document) -> bool:
    """The docker target runs model images."""
    return targets.DOCKER in targets.targets_of(document.data["spec"])


def deploy(
    document: Document, root: Path, keep: bool = False, environment: str | None = None
) -> Outcome:
    """`environment` is for cluster targets: a container here belongs to no environment."""
    name = document.data["metadata"]["name"]
    outcome = Outcome(name)
    started = time.monotonic()
    client, problem = _client(document)
    if problem:
        outcome.diagnostics.append(problem)
        return outcome
    problem = _refuse(document)
    if problem:
        outcome.diagnostics.append(problem)
        return outcome
    previous = _kept(client, name)
    held = fixed_port_held_by(document, previous[0].labels.get(URL_LABEL) if previous else None)
    if held:
        outcome.diagnostics.append(held)
        outcome.previous = previous[0].labels.get(URL_LABEL)
        return outcome
    container = None
    try:
        image, problem = _pull(client, document)
        if problem is None:
            container, endpoint, problem = _run(client, document, image)
        if problem:
            outcome.diagnostics.append(problem)
            return outcome
        outcome.diagnostics.extend(_wait_ready(document, container, endpoint))
        if not outcome.diagnostics:
            outcome.smoke = smoke.run(document, endpoint)
            outcome.diagnostics.extend(
                smoke_failures(document, outcome.smoke, False, _log_tail(container))
            )
        interrupt.check()
        if not outcome.diagnostics:
            outcome.endpoint = endpoint
            if keep:
                for old in previous:
                    _remove(old)
                outcome.kept, container = True, None
    finally:
        if container is not None:
            _remove(container)
        if previous and not outcome.ok:
            outcome.previous = previous[0].labels.get(URL_LABEL)
        outcome.seconds = time.monotonic() - started
    return outcome


def stop(root: Path, name: str) -> list[Diagnostic]:
    client, problem = _client(None)
    if problem:
        return [problem]
    kept = _kept(client, name)
    if not kept:
        return [
            error(
                name,
                0,
                0,
                NOT_RUNNING,
                f"no kept container named '{name}'",
                "`modelgate status` lists what is running",
            )
        ]
    for container in kept:
        _remove(container)
    return []


def running(root: Path) -> list[RunState]:
    """Kept containers; none when the Docker engine does not answer."""
    client, problem = _client(None)
    if problem:
        return []
    return [
        RunState(c.labels[NAME_LABEL], "docker", c.labels.get(URL_LABEL, ""), c.short_id)
        for c in client.containers.list(filters={"label": NAME_LABEL})
    ]


def _client(document: Document | None) -> tuple[Any, Diagnostic | None]:
    where = document.path if document else "docker"
    try:
        import docker
    except ImportError:
        return None, error(
            where,
            0,
            0,
            DOCKER_UNAVAILABLE,
            "model not deployed: the Docker SDK is not installed",
            "pip install 'modelgate[docker]'",
        )
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        where = document.path if document else "docker"
        return None, error(
            where,
            0,
            0,
            DOCKER_UNAVAILABLE,
            f"model not deployed: the Docker engine is not answering ({exc})",
            "start Docker, or point DOCKER_HOST at a running engine",
        )
    return client, None


def _refuse(document: Document) -> Diagnostic | None:
    image = document.data["spec"]["model"].get("image")
    if not image:
        return document.finding(
            ["spec", "model"],
            TARGET_UNSUPPORTED,
            "the docker target runs model images; this spec has an artifact",
            "package the model in an image, or deploy with --target local",
        )
    if "@sha256:" not in image:
        return document.finding(
            ["spec", "model", "image"],
            TARGET_UNSUPPORTED,
            "the docker target runs images pinned by digest only",
            "reference the image as registry/repository@sha256:<digest>",
        )
    return None


def _pull(client: Any, document: Document) -> tuple[Any, Diagnostic | None]:
    import docker

    reference = document.data["spec"]["model"]["image"]
    try:
        return client.images.pull(reference), None
    except (docker.errors.ImageNotFound, docker.errors.NotFound, docker.errors.APIError) as exc:
        return None, document.finding(
            ["spec", "model", "image"],
            MODEL_NOT_DEPLOYED,
            f"model not deployed: image {reference} not found ({_short(exc)})",
            "push the image to the registry, and check the digest",
        )


def _run(client: Any, document: Document, image: Any) -> tuple[Any, Endpoint, Diagnostic | None]:
    settings = view.docker(document)
    name = document.data["metadata"]["name"]
    fixed = document.data["spec"].get("endpoint", {}).get("port")
    if fixed is not None and not port_free(fixed):
        return (
            None,
            None,
            document.finding(  # type: ignore[return-value]
                ["spec", "endpoint", "port"],
                PORT_TAKEN,
                f"model not deployed: port {fixed} is already in use",
                "stop what listens there, or remove spec.endpoint.port to pick a free one",
            ),
        )
    port = fixed or free_port()
    protocol = document.data["spec"]["engine"]["protocol"]
    endpoint = Endpoint(name, f"http://127.0.0.1:{port}", protocol, "docker")
    environment = {
        **settings["environment"],
        "MLSERVER_HTTP_PORT": str(CONTAINER_PORT),
        "MLSERVER_METRICS_DIR": "/tmp",
        "MLSERVER_ENVIRONMENTS_DIR": "/tmp",
    }
    labels = {
        NAME_LABEL: name,
        HASH_LABEL: view.spec_hash(document),
        URL_LABEL: endpoint.base_url,
        "app.kubernetes.io/managed-by": "modelgate",
    }
    container = client.containers.run(
        image.id,
        command=document.data["spec"]["engine"].get("args") or None,  # else the image's CMD
        detach=True,
        read_only=settings["read_only"],
        tmpfs={"/tmp": ""},
        cap_drop=["ALL"],
        cap_add=settings["cap_add"] or None,
        security_opt=["no-new-privileges"],
        user=settings["user"],
        mem_limit=settings["memory"],
        nano_cpus=_nano_cpus(settings["cpus"]),
        ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)},
        environment=environment,
        labels=labels,
    )
    return container, endpoint, None


def _wait_ready(document: Document, container: Any, endpoint: Endpoint) -> list[Diagnostic]:
    timeout = readiness_timeout(document)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            return [
                document.finding(
                    ["spec", "model"],
                    MODEL_NOT_DEPLOYED,
                    f"model not deployed: the container exited (code {code}) before the model "
                    "was ready",
                    f"last lines of the container log:\n{_log_tail(container)}",
                )
            ]
        if answers_200(endpoint.ready_url):
            return []
        interrupt.pause(POLL_INTERVAL_S)
    return [not_ready(document, timeout, _log_tail(container))]


def _kept(client: Any, name: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{NAME_LABEL}={name}"})


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):
        container.remove(force=True)


def _log_tail(container: Any) -> str:
    try:
        text = container.logs(tail=LOG_TAIL_LINES).decode("utf-8", "replace")
    except Exception:
        return "      (no container log)"
    return "\n".join("      " + line for line in text.splitlines()) or "      (log is empty)"


def _nano_cpus(cpus: str | None) -> int | None:
    return int(float(cpus) * 1e9) if cpus else None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]

"""The local target: MLServer as a subprocess of this machine, no Docker, no cluster.

MLServer facts this module relies on (measured with 1.7.1):
- `/v2/health/ready` answers 200 before the model is loaded, so readiness is the model's own
  `/v2/models/NAME/ready`.
- A model that fails to load makes the server exit with code 0: any exit before the model is
  ready is "model not deployed", whatever the exit code.
- It always opens an HTTP and a gRPC port (both are picked free here) and writes into its
  working directory (a private temporary one here).

A kept deployment is recorded in .modelgate/run/NAME.json. Redeploying a kept model is
blue/green: the new server starts beside the old one on other ports, and the old one is
stopped only after the new one passed its smoke tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import render, smoke
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..engines import ENGINES, Engine
from ..smoke import Endpoint
from . import (
    ENGINE_MISSING,
    MODEL_NOT_DEPLOYED,
    NOT_RUNNING,
    PORT_TAKEN,
    TARGET_UNSUPPORTED,
    Outcome,
    RunState,
    interrupt,
    not_ready,
    readiness_timeout,
    smoke_failures,
)
from .net import answers_200, free_port, free_ports, port_free

STATE_DIR = Path(".modelgate") / "run"
LOG_TAIL_LINES = 15
POLL_INTERVAL_S = 0.05
STOP_GRACE_S = 10.0
# A server that crashed while answering has dropped the connection before its process has
# exited: how long a failed smoke test waits for the exit before calling the failure a crash.
CRASH_WAIT_S = 3.0
SHUTDOWN_CHATTER = re.compile(
    r"shutdown|Shutting down|Waiting for application|Finished server process", re.IGNORECASE
)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


@dataclass(frozen=True)
class KeptServer:
    """What `--keep` leaves in .modelgate/run/NAME.json so that `status`, `smoke` and `stop`
    find the server."""

    name: str
    pid: int
    base_url: str
    protocol: str
    workdir: str
    log: str


def deploy(
    document: Document, root: Path, keep: bool = False, environment: str | None = None
) -> Outcome:
    """`environment` is for cluster targets: a local server belongs to no environment."""
    name = document.data["metadata"]["name"]
    outcome = Outcome(name)
    started = time.monotonic()
    problem = _prepare(document, root)
    if problem:
        outcome.diagnostics.append(problem)
        return outcome
    previous = read_state(root, name)
    if previous and not _alive(previous.pid):
        _forget(root, previous)
        previous = None
    server = None
    try:
        server, problem = _start(document, root)
        if problem:
            outcome.diagnostics.append(problem)
            return outcome
        outcome.diagnostics.extend(_wait_ready(document, server))
        if not outcome.diagnostics:
            outcome.smoke = smoke.run(document, server.endpoint)
            outcome.diagnostics.extend(
                smoke_failures(
                    document,
                    outcome.smoke,
                    _crashed(server.process, outcome.smoke),
                    _indent(server.log_tail()),
                )
            )
        interrupt.check()
        if not outcome.diagnostics:
            outcome.endpoint = server.endpoint
            if keep:
                _promote(root, server, previous)
                outcome.kept, server = True, None
    finally:
        if server is not None:
            server.stop()
        outcome.seconds = time.monotonic() - started
        if previous and not outcome.ok:
            outcome.previous = previous.base_url
    return outcome


def stop(root: Path, name: str) -> list[Diagnostic]:
    state = read_state(root, name)
    if state is None:
        return [
            error(
                name,
                0,
                0,
                NOT_RUNNING,
                f"no kept deployment named '{name}'",
                "`modelgate status` lists what is running",
            )
        ]
    _terminate(state.pid)
    _forget(root, state)
    return []


def running(root: Path) -> list[RunState]:
    """Kept deployments whose server is still alive (stale records are dropped)."""
    return [
        RunState(server.name, "local", server.base_url, str(server.pid))
        for server in kept_servers(root)
    ]


def kept_servers(root: Path) -> list[KeptServer]:
    alive = []
    for path in sorted((root / STATE_DIR).glob("*.json")):
        state = read_state(root, path.stem)
        if state and _alive(state.pid):
            alive.append(state)
        elif state:
            _forget(root, state)
    return alive


def read_state(root: Path, name: str) -> KeptServer | None:
    try:
        return KeptServer(**json.loads((root / STATE_DIR / f"{name}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


class _Server:
    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, endpoint: Endpoint) -> None:
        self.process, self.workdir, self.endpoint = process, workdir, endpoint

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def log_lines(self) -> list[str]:
        """The server log without the shutdown chatter that buries the cause."""
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if not SHUTDOWN_CHATTER.search(line)]

    def log_tail(self) -> str:
        return "\n".join(self.log_lines()[-LOG_TAIL_LINES:]) or "(server log is empty)"

    def failure_reason(self) -> str:
        """The last exception line in the log, e.g. "KeyError: 110", if there is one."""
        for line in reversed(self.log_lines()):
            if EXCEPTION_LINE.match(line.strip()):
                return line.strip()
        return ""

    def stop(self) -> None:
        """A server that never served anyone but the smoke tests has nothing to drain: kill it
        outright (a graceful MLServer shutdown takes most of a second)."""
        _terminate(self.process.pid, self.process, graceful=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def can_serve(document: Document) -> bool:
    """The local target runs MLServer on artifacts kept in this repository."""
    spec = document.data["spec"]
    artifact = spec["model"].get("artifact", "")
    runs_here = bool(ENGINES[spec["engine"]["name"]].local_command)
    return runs_here and bool(artifact) and "://" not in artifact


def _prepare(document: Document, root: Path) -> Diagnostic | None:
    """Refuse what the local target cannot serve, and check the artifact before starting."""
    spec = document.data["spec"]
    model = spec["model"]
    if not ENGINES[spec["engine"]["name"]].local_command or "image" in model:
        return document.finding(
            ["spec", "engine", "name"],
            TARGET_UNSUPPORTED,
            "the local target serves repository artifacts with engines it can start here: "
            + ", ".join(name for name, engine in ENGINES.items() if engine.local_command),
            "deploy image-based or non-MLServer models with --target docker or kubernetes",
        )
    if "://" in model["artifact"]:
        return document.finding(
            ["spec", "model", "artifact"],
            TARGET_UNSUPPORTED,
            "the local target serves artifacts inside this repository, not remote URIs",
            "download the artifact into the repository, or use --target kubernetes",
        )
    rendering = render.render_document(document, root, local_only=True)
    problems = rendering.diagnostics or render.links(rendering.files, root)
    if problems:
        return problems[0]
    render.write(rendering.files, root)
    return _check_artifact(document, root)


def _check_artifact(document: Document, root: Path) -> Diagnostic | None:
    model = document.data["spec"]["model"]
    path = (root / model["artifact"]).resolve()
    if not path.is_relative_to(root.resolve()):
        return document.finding(
            ["spec", "model", "artifact"],
            MODEL_NOT_DEPLOYED,
            f"model not deployed: artifact {model['artifact']} lies outside the repository",
            "keep model artifacts inside the repository",
        )
    if not path.is_file():
        return document.finding(
            ["spec", "model", "artifact"],
            MODEL_NOT_DEPLOYED,
            f"model not deployed: artifact {model['artifact']} does not exist",
            "check the path (relative to the repository root) or create the artifact",
        )
    expected = model.get("sha256")
    if expected:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            return document.finding(
                ["spec", "model", "sha256"],
                MODEL_NOT_DEPLOYED,
                f"model not deployed: artifact sha256 is {actual}, the spec expects {expected}",
                "the artifact changed or is corrupt: restore it, or update sha256 after review",
            )
    return None


def _engine_binary(engine: Engine) -> str | None:
    """MODELGATE_<ENGINE> if set (an engine installed elsewhere), else the one installed
    beside this Python, else the first on PATH."""
    configured = os.environ.get(f"MODELGATE_{engine.name.upper()}")
    if configured is not None:
        return configured if Path(configured).is_file() else None
    executable = engine.local_command[0]
    beside_python = Path(sys.executable).with_name(executable)
    return str(beside_python) if beside_python.is_file() else shutil.which(executable)


def _start(document: Document, root: Path) -> tuple[_Server | None, Diagnostic | None]:
    engine = ENGINES[document.data["spec"]["engine"]["name"]]
    binary = _engine_binary(engine)
    if binary is None:
        return None, document.finding(
            ["spec", "engine", "name"],
            ENGINE_MISSING,
            f"model not deployed: the {engine.name} engine is not installed",
            "pip install 'modelgate[serve]' (or run `make demo`, which does)",
        )
    fixed = document.data["spec"].get("endpoint", {}).get("port")
    if fixed is not None and not port_free(fixed):
        return None, document.finding(
            ["spec", "endpoint", "port"],
            PORT_TAKEN,
            f"model not deployed: port {fixed} is already in use",
            "stop what listens there, or remove spec.endpoint.port to pick a free one",
        )
    http_port, grpc_port = (fixed, free_port()) if fixed else free_ports(2)
    name = document.data["metadata"]["name"]
    workdir = Path(tempfile.mkdtemp(prefix=f"modelgate-{name}-"))
    fill = {
        "model_dir": str(root / render.rendered_dir("local", name)),
        "http_port": str(http_port),
        "grpc_port": str(grpc_port),
        "workdir": str(workdir),
    }
    env = {**os.environ, **{key: value.format(**fill) for key, value in engine.local_env.items()}}
    arguments = [argument.format(**fill) for argument in engine.local_command[1:]]
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(
            [binary, *arguments],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    protocol = document.data["spec"]["engine"]["protocol"]
    endpoint = Endpoint(name, f"http://127.0.0.1:{http_port}", protocol, "local")
    return _Server(process, workdir, endpoint), None


def _wait_ready(document: Document, server: _Server) -> list[Diagnostic]:
    timeout = readiness_timeout(document)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return [
                document.finding(
                    ["spec", "model"],
                    MODEL_NOT_DEPLOYED,
                    f"model not deployed: the engine exited (code {code}) before the "
                    f"model was ready{_because(server.failure_reason())}",
                    f"last lines of the server log:\n{_indent(server.log_tail())}",
                )
            ]
        if answers_200(server.endpoint.ready_url):
            return []
        interrupt.pause(POLL_INTERVAL_S)
    return [not_ready(document, timeout, _indent(server.log_tail()))]


def _promote(root: Path, server: _Server, previous: KeptServer | None) -> None:
    """Record the new server as the kept one, then retire the one it replaces."""
    state = KeptServer(
        server.endpoint.name,
        server.process.pid,
        server.endpoint.base_url,
        server.endpoint.protocol,
        str(server.workdir),
        str(server.log),
    )
    path = root / STATE_DIR / f"{state.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
    if previous:
        _terminate(previous.pid)
        shutil.rmtree(previous.workdir, ignore_errors=True)


def _forget(root: Path, state: KeptServer) -> None:
    shutil.rmtree(state.workdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_DIR / f"{state.name}.json").unlink()


def _terminate(
    pid: int, process: subprocess.Popen[bytes] | None = None, graceful: bool = True
) -> None:
    """SIGTERM the server's process group, SIGKILL it after a grace period (at once when not
    `graceful`)."""
    steps = [(signal.SIGTERM, STOP_GRACE_S)] if graceful else []
    for sig, grace in [*steps, (signal.SIGKILL, STOP_GRACE_S)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                return
            if process is None and not _alive(pid):
                return
            time.sleep(0.05)


def _crashed(process: subprocess.Popen[bytes], results: list[smoke.SmokeResult]) -> bool:
    if all(result.passed for result in results):
        return False
    try:
        process.wait(timeout=CRASH_WAIT_S)
    except subprocess.TimeoutExpired:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())

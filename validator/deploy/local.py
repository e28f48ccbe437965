"""The local target: the spec's engine as a subprocess of this machine, no Docker, no cluster.

MLServer is embedded (modelgate's `serve` extra); the other engines, and MLServer's runtimes
that are too large to embed, run from environments of their own, installed from their lock
files on first use (environments.py). Readiness is always the model's own (the protocol's
model-ready path), never the server's.

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

A state file may come from a pull request, so it is checked before anything acts on it:
its work directory must be one modelgate created (its prefix, directly under the system
temporary directory, a real directory of this user) and its process must have the start time
and command line recorded when the server started. A state file that fails is reported and
left alone: no directory removed, no process signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import paths, render
from ..check import artifacts, stand_in, stand_ins, targets
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..engines import ENGINES, Engine
from . import (
    ENGINE_MISSING,
    MODEL_NOT_DEPLOYED,
    NOT_RUNNING,
    PORT_TAKEN,
    TARGET_UNSUPPORTED,
    Outcome,
    RunState,
    fixed_port_held_by,
    interrupt,
    ledger,
    not_ready,
    readiness_timeout,
    smoke,
    smoke_failures,
)
from .environments import PROGRESS_EVERY_S, Progress, Unavailable, ensure
from .net import answers_200, free_port, free_ports, port_free
from .smoke import Endpoint

STATE_DIR = Path(".modelgate") / "run"
STAND_IN_HINT = "name a stand-in the local target can serve (spec.smoke.standIn)"
# the model servers modelgate ships, run by engines' own environments ({servers})
SERVERS = Path(__file__).resolve().parents[1] / "engines" / "_servers"
KEEPER = Path(__file__).with_name("keeper.py")
KEEPER_MARK = "keeper.pid"
WORKDIR_PREFIX = "modelgate-"
STATE_MAX_BYTES = 64 * 1024
LOOPBACK_URL = re.compile(r"http://127\.0\.0\.1:[0-9]{1,5}")
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
PROGRESS_LOG_CHARS = 160
# Where an engine slow to be ready (vLLM: a minute and more) says how long it has waited,
# every PROGRESS_EVERY_S: the command's output (say_progress); nowhere by default.
_progress: list[Progress] = []


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
    started: int  # field 22 of /proc/PID/stat: when the process started, in clock ticks
    cmdline: list[str]  # /proc/PID/cmdline once the server was ready

    def is_running(self) -> bool:
        """The process this record describes still runs (not merely a process with its pid)."""
        return _identity(self.pid) == (self.started, self.cmdline)


@dataclass(frozen=True)
class Died:
    """A kept server found gone: it exited, or was killed, since `deploy --keep`."""

    name: str
    base_url: str
    pid: int
    last_log_line: str = ""

    @property
    def message(self) -> str:
        said = f"; its log ends: {self.last_log_line}" if self.last_log_line else ""
        return f"the kept server of {self.name} at {self.base_url} (process {self.pid}) died{said}"


@dataclass(frozen=True)
class Distrusted:
    """A state file modelgate does not act on, and why."""

    path: str
    reason: str
    claims: str = ""  # the address the file claims, quoted so the user sees what it said

    @property
    def message(self) -> str:
        claims = f" (it claims {self.claims})" if self.claims else ""
        return f"ignored {self.path}: {self.reason}{claims}"

    @property
    def hint(self) -> str:
        return "modelgate acts only on servers it started; delete the file unless you wrote it"


_STATE_TYPES: dict[str, type] = {
    "name": str,
    "pid": int,
    "base_url": str,
    "protocol": str,
    "workdir": str,
    "log": str,
    "started": int,
    "cmdline": list,
}


def deploy(
    document: Document, root: Path, keep: bool = False, environment: str | None = None
) -> Outcome:
    """`environment` is for cluster targets: a local server belongs to no environment.
    A spec that names a stand-in is served with it (check/stand_ins.py), and the outcome says so."""
    name = document.data["metadata"]["name"]
    outcome = Outcome(name, stand_in=stand_ins.description(document.data["spec"]))
    document = stand_in.served(document)
    outcome.left_out = _left_out(document)
    started = time.monotonic()
    problem = _prepare(document, root)
    if problem:
        outcome.diagnostics.append(problem)
        return outcome
    _sweep_leftovers()
    previous = _kept(root, name)
    problem = fixed_port_held_by(document, previous.base_url if previous else None)
    if problem:
        outcome.diagnostics.append(problem)
        outcome.previous = previous.base_url if previous else None
        return outcome
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
    path = root / STATE_DIR / f"{name}.json"
    if Path(name).name != name or name.startswith(".") or not os.path.lexists(path):
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
    judged = _judge(root, path)
    if isinstance(judged, Distrusted):
        return [error(judged.path, 0, 0, NOT_RUNNING, judged.message, judged.hint)]
    if isinstance(judged, Died):
        return [
            error(
                name,
                0,
                0,
                NOT_RUNNING,
                f"{judged.message}; there was nothing left to stop",
                "`modelgate history NAME` records it; deploy it again with --keep",
            )
        ]
    _terminate(judged.pid, judged.is_running)
    _forget(root, judged)
    return []


def running(root: Path) -> list[RunState]:
    """Kept deployments whose server is still alive (stale records are dropped)."""
    return as_run_states(survey(root).alive)


def as_run_states(servers: list[KeptServer]) -> list[RunState]:
    return [RunState(server.name, "local", server.base_url, str(server.pid)) for server in servers]


def distrusted(root: Path) -> list[Distrusted]:
    """The state files modelgate ignores, for the commands to report."""
    return survey(root).ignored


@dataclass
class Survey:
    """What .modelgate/run/ holds: servers still running, servers found dead (now recorded
    in the ledger and forgotten), and state files that cannot be trusted."""

    alive: list[KeptServer] = field(default_factory=list)
    died: list[Died] = field(default_factory=list)
    ignored: list[Distrusted] = field(default_factory=list)


def survey(root: Path) -> Survey:
    """Kept servers still running, those that died, and the state files that cannot be
    trusted. The record of a server that is gone is dropped, with its work directory, and
    its death goes into the ledger."""
    found = Survey()
    for path in sorted((root / STATE_DIR).glob("*.json")):
        judged = _judge(root, path)
        if isinstance(judged, Distrusted):
            found.ignored.append(judged)
        elif isinstance(judged, Died):
            found.died.append(judged)
        else:
            found.alive.append(judged)
    return found


def _kept(root: Path, name: str) -> KeptServer | None:
    path = root / STATE_DIR / f"{name}.json"
    if not os.path.lexists(path):
        return None
    judged = _judge(root, path)
    return judged if isinstance(judged, KeptServer) else None


def _judge(root: Path, path: Path) -> KeptServer | Died | Distrusted:
    """The server, when the record names a running server modelgate started; its death,
    when that server is gone (recorded in the ledger, and the record forgotten); why not,
    when the record is not one to act on."""
    shown = f"{STATE_DIR.as_posix()}/{path.name}"
    state = _read_state(root, path)
    if state is None:
        return Distrusted(shown, "not a state file modelgate writes")
    if state.name != path.stem:
        return Distrusted(shown, f"it describes '{state.name}', not '{path.stem}'")
    claims = state.base_url
    if not LOOPBACK_URL.fullmatch(state.base_url):
        return Distrusted(shown, "its address is not one a local server has", claims)
    if not _own_workdir(state.workdir):
        reason = f"its work directory {state.workdir} is not one modelgate created"
        return Distrusted(shown, reason, claims)
    if state.is_running():
        return state
    if _identity(state.pid) is None:
        died = _died(root, state)
        _forget(root, state)
        return died
    reason = f"process {state.pid} is not the server modelgate started"
    return Distrusted(shown, reason, claims)


def _died(root: Path, state: KeptServer) -> Died:
    """The death of a kept server, recorded in the ledger with what its last deploy ran (its
    log is read now: forgetting the server removes its work directory)."""
    died = Died(state.name, state.base_url, state.pid, _last_log_line(Path(state.log)))
    last = next(
        (
            entry
            for entry in reversed(ledger.history(root, state.name))
            if entry.get("target") == "local" and entry.get("result") == "deployed"
        ),
        {},
    )
    ledger.record(
        root,
        name=state.name,
        spec_hash=last.get("spec_hash", ""),
        artifact=last.get("artifact", ""),
        target="local",
        environment="local",
        result=ledger.DIED,
        error=died.message,
        endpoint=last.get("endpoint", state.base_url),
        seconds=0.0,
        stand_in=last.get("stand_in", ""),
    )
    return died


def _last_log_line(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    meaningful = [line.strip() for line in lines if line.strip()]
    return meaningful[-1][-300:] if meaningful else ""


def _read_state(root: Path, path: Path) -> KeptServer | None:
    """The record in `path` if it has exactly the fields modelgate writes, of their types."""
    try:
        if path.is_symlink() or path.stat().st_size > STATE_MAX_BYTES:
            return None
        data = json.loads(paths.read_text(path, root))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(_STATE_TYPES):
        return None
    if not all(_is(data[key], kind) for key, kind in _STATE_TYPES.items()):
        return None
    if data["pid"] < 2 or not all(isinstance(part, str) for part in data["cmdline"]):
        return None
    return KeptServer(**data)


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _own_workdir(workdir: str) -> bool:
    """A directory modelgate made with mkdtemp: its prefix, directly under the temporary
    directory, a real directory owned by this user (or gone already)."""
    path = Path(workdir)
    made_here = path.parent == Path(tempfile.gettempdir()) and path.name.startswith(WORKDIR_PREFIX)
    if not made_here or not path.is_absolute():
        return False
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _mark_keeper(workdir: Path, pid: int) -> None:
    """Note in the work directory which process keeps its engine, for `_sweep_leftovers`."""
    identity = _identity(pid)
    if identity:
        (workdir / KEEPER_MARK).write_text(f"{pid} {identity[0]}\n", encoding="ascii")


def _sweep_leftovers() -> None:
    """Remove work directories of engines that are gone without their deploy cleaning up
    (modelgate was killed): their keeper is dead, so nothing uses them any more."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        if not _own_workdir(str(workdir)):
            continue
        try:
            pid, started = map(int, (workdir / KEEPER_MARK).read_text("ascii").split())
        except (OSError, ValueError):
            continue  # not started yet, or not ours to judge
        identity = _identity(pid)
        if identity is None or identity[0] != started:
            shutil.rmtree(workdir, ignore_errors=True)


def _identity(pid: int) -> tuple[int, list[str]] | None:
    """(start time, command line) of a live process; None when there is none by that pid.
    Together they tell the process modelgate started from a later one given the same pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            after_name = stream.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            cmdline = stream.read()
        state, started = after_name[0], int(after_name[19])
    except (OSError, IndexError, ValueError):
        return None
    if state in ("Z", "X"):
        return None
    parts = cmdline.decode("utf-8", "replace").split("\0")
    return started, parts[:-1] if parts and not parts[-1] else parts


class _Server:
    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, endpoint: Endpoint) -> None:
        self.process, self.workdir, self.endpoint = process, workdir, endpoint

    def keep(self) -> None:
        """Tell the keeper this engine is kept: it then outlives the deploy."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"keep\n")
        self.process.stdin.close()

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
        process = self.process
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        _terminate(process.pid, lambda: process.poll() is None, graceful=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _left_out(document: Document) -> list[str]:
    """The spec's engine arguments the local build cannot take (Engine.local_drops)."""
    engine = document.data["spec"]["engine"]
    _, dropped = ENGINES[engine["name"]].local_args(list(engine.get("args", [])))
    return dropped


def can_serve(document: Document) -> bool:
    """The local target runs the engines it can start here on artifacts kept in this
    repository."""
    return targets.LOCAL in targets.targets_of(document.data["spec"])


def install_environments(documents: list[Document], progress: Progress) -> None:
    """Install, before the deploys start, the engine environments they need and do not have
    yet, saying so through `progress` (an install takes from seconds to minutes). A failure
    is left for the deploy itself to report, at its spec."""
    needed = {_environment_of(document) for document in documents if can_serve(document)}
    for name in sorted(needed - {""}):
        with contextlib.suppress(Unavailable):
            ensure(name, progress)


def _environment_of(document: Document) -> str:
    spec = stand_ins.served_spec(document.data["spec"])
    return ENGINES[spec["engine"]["name"]].local_environment(spec["model"]["format"])


def why_not_served(document: Document) -> tuple[list[str], str, str] | None:
    """Why the local target cannot serve the (served) spec, as (where, message, hint); None
    when it can."""
    spec = document.data["spec"]
    model = spec["model"]
    engine = ENGINES[spec["engine"]["name"]]
    if not engine.local_command or "image" in model:
        image = " on a model image" if "image" in model else ""
        return (
            ["spec", "engine", "name"],
            f"the local target cannot run engine {engine.name}{image}: it serves repository "
            "artifacts with the engines it starts here: "
            + ", ".join(name for name, engine in ENGINES.items() if engine.local_command),
            f"{STAND_IN_HINT}, or deploy with --target docker or kubernetes",
        )
    if not engine.serves_locally(model["format"]):
        formats = ", ".join(engine.local_formats)
        return (
            ["spec", "model", "format"],
            f"the local target serves {engine.name} models of format {formats} only",
            f"{STAND_IN_HINT}, or deploy this model with --target kubernetes",
        )
    if "://" in model["artifact"]:
        return (
            ["spec", "model", "artifact"],
            "the local target serves artifacts inside this repository, not remote URIs",
            f"{STAND_IN_HINT}, download the artifact into the repository, or use "
            "--target kubernetes",
        )
    return None


def _prepare(document: Document, root: Path) -> Diagnostic | None:
    """Refuse what the local target cannot serve, and check the artifact before starting."""
    refused = why_not_served(document)
    if refused:
        return document.finding(refused[0], TARGET_UNSUPPORTED, refused[1], refused[2])
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
    if not path.exists():
        return document.finding(
            ["spec", "model", "artifact"],
            MODEL_NOT_DEPLOYED,
            f"model not deployed: artifact {model['artifact']} does not exist",
            "check the path (relative to the repository root) or create the artifact",
        )
    # validation checked it too; this is what the engine will load, checked just before
    problem = artifacts.problem_of(document, root)
    if problem is not None:
        where, _, message, hint = problem
        return document.finding(where, MODEL_NOT_DEPLOYED, f"model not deployed: {message}", hint)
    return None


def _engine_binary(engine: Engine, environment: Path | None) -> str | None:
    """The executable in the engine's own environment when it has one; else
    MODELGATE_<ENGINE> if set (an engine installed elsewhere), else the one installed beside
    this Python, else the first on PATH."""
    if environment is not None:
        inside = environment / "bin" / engine.local_command[0]
        return str(inside) if inside.is_file() else None
    configured = os.environ.get(f"MODELGATE_{engine.name.upper()}")
    if configured is not None:
        return configured if Path(configured).is_file() else None
    executable = engine.local_command[0]
    beside_python = Path(sys.executable).with_name(executable)
    return str(beside_python) if beside_python.is_file() else shutil.which(executable)


def _start(document: Document, root: Path) -> tuple[_Server | None, Diagnostic | None]:
    engine = ENGINES[document.data["spec"]["engine"]["name"]]
    environment_name = _environment_of(document)
    environment = None
    if environment_name:
        try:
            environment = ensure(environment_name)
        except Unavailable as reason:
            return None, document.finding(
                ["spec", "engine", "name"],
                ENGINE_MISSING,
                f"model not deployed: the {environment_name} engine environment cannot be "
                f"installed: {reason}",
                "check the network and the lock file, then deploy again",
            )
    binary = _engine_binary(engine, environment)
    if binary is None:
        return None, document.finding(
            ["spec", "engine", "name"],
            ENGINE_MISSING,
            f"model not deployed: the {engine.name} engine is not installed",
            f"remove {environment} to have it installed again"
            if environment
            else "pip install 'modelgate[serve]' (or run `make demo`, which does)",
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
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{name}-"))
    fill = {
        "model_dir": str(root / render.rendered_dir("local", name)),
        "http_port": str(http_port),
        "grpc_port": str(grpc_port),
        "workdir": str(workdir),
        "servers": str(SERVERS),
        "environment": str(environment or ""),
    }
    env = {**os.environ, **{key: value.format(**fill) for key, value in engine.local_env.items()}}
    arguments = [argument.format(**fill) for argument in engine.local_command[1:]]
    with open(workdir / "server.log", "wb") as log:
        # the keeper stops the engine when this pipe closes without `keep`: SIGKILL included
        process = subprocess.Popen(
            [sys.executable, "-I", str(KEEPER), binary, *arguments],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _mark_keeper(workdir, process.pid)
    protocol = document.data["spec"]["engine"]["protocol"]
    endpoint = Endpoint(name, f"http://127.0.0.1:{http_port}", protocol, "local")
    return _Server(process, workdir, endpoint), None


def say_progress(progress: Progress | None) -> None:
    """Have a deploy waiting for its engine say how long it has waited, through `progress`."""
    _progress[:] = [progress] if progress else []


def _wait_ready(document: Document, server: _Server) -> list[Diagnostic]:
    timeout = readiness_timeout(document)
    started = time.monotonic()
    deadline, next_word = started + timeout, started + PROGRESS_EVERY_S
    while time.monotonic() < deadline:
        if _progress and time.monotonic() >= next_word:
            next_word += PROGRESS_EVERY_S
            _progress[0](_waiting(server, time.monotonic() - started, timeout))
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


def _waiting(server: _Server, waited: float, timeout: float) -> str:
    lines = server.log_lines()
    said = f"; its log: {lines[-1].strip()[:PROGRESS_LOG_CHARS]}" if lines else ""
    return (
        f"{server.endpoint.name}: waiting for the model to be ready: {waited:.0f} s of "
        f"{timeout:.0f} s{said}"
    )


def _promote(root: Path, server: _Server, previous: KeptServer | None) -> None:
    """Record the new server as the kept one, then retire the one it replaces."""
    started, cmdline = _identity(server.process.pid) or (0, [])
    state = KeptServer(
        server.endpoint.name,
        server.process.pid,
        server.endpoint.base_url,
        server.endpoint.protocol,
        str(server.workdir),
        str(server.log),
        started,
        cmdline,
    )
    server.keep()
    path = root / STATE_DIR / f"{state.name}.json"
    paths.make_dirs(path.parent, root)
    temporary = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    text = json.dumps(asdict(state), indent=2, sort_keys=True) + "\n"
    paths.write_bytes(temporary, root, text.encode("utf-8"))
    os.replace(temporary, path)
    if previous:
        _terminate(previous.pid, previous.is_running)
        shutil.rmtree(previous.workdir, ignore_errors=True)


def _forget(root: Path, state: KeptServer) -> None:
    """Drop the record of a server that is gone; only called once the record was judged."""
    shutil.rmtree(state.workdir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_DIR / f"{state.name}.json").unlink()


def _terminate(pid: int, still_ours: Callable[[], bool], graceful: bool = True) -> None:
    """SIGTERM the server's process group, SIGKILL it after a grace period (at once when not
    `graceful`). Each signal goes only while `still_ours()` says the process is the server."""
    steps = [(signal.SIGTERM, STOP_GRACE_S)] if graceful else []
    for sig, grace in [*steps, (signal.SIGKILL, STOP_GRACE_S)]:
        if not still_ours():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not still_ours():
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


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())

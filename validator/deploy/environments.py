"""The environments the local target runs engines from, one per lock file.

An engine that is not modelgate's embedded one (MLServer for scikit-learn models, installed
with the `serve` extra) runs from an environment of its own: locks/engine-NAME.txt, resolved
by `make lock` from the `engine-NAME` dependency group of pyproject.toml, is installed with uv
(hashes required) the first time a deploy needs it, into a cache directory named after the
sha256 of the lock's pins and the Python version. Changed pins make a new directory; a spec
that needs no such engine never downloads one.

The cache lives in modelgate's cache directory (validator/cache.py: MODELGATE_CACHE_DIR, else
the user's cache), under engines/, and is used under the same trust rule: a directory of this
user that nobody else may write. An install runs under a file lock (two deploys that need one
environment install it once) and marks the environment complete only when it succeeded; an
environment without the mark (an install that was killed) is removed and installed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .. import cache
from ..check.changes import LOCK_PREFIX
from .lock import held

LOCKS = Path(__file__).resolve().parents[2] / "locks"
COMPLETE = ".complete"
INSTALL_TIMEOUT_S = 3600.0  # llama.cpp compiles: 5 min on two idle cores, far more on busy ones
# how often a long install says what it is doing
PROGRESS_EVERY_S = float(os.environ.get("MODELGATE_PROGRESS_SECONDS") or 30.0)
STOP_GRACE_S = 10.0
COMPILERS = {"cc1", "cc1plus", "cc", "gcc", "g++", "c++", "clang", "clang++", "ld", "as"}
Progress = Callable[[str], None]
_FAILED: dict[str, str] = {}  # environments whose install failed in this process, and why


class Unavailable(Exception):
    """The environment cannot be had here; the message says why."""


def lock_file(name: str) -> Path:
    return LOCKS / f"{LOCK_PREFIX}{name}.txt"


def shown(path: Path) -> str:
    """A lock's path as the user knows it (relative to the project)."""
    with contextlib.suppress(ValueError):
        return path.relative_to(LOCKS.parent).as_posix()
    return str(path)


def directory(name: str) -> Path | None:
    """Where the environment of this lock, for this Python, is (or will be) cached."""
    base = cache.cache_dir()
    lock = lock_file(name)
    if base is None or not lock.is_file():
        return None
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return base / "engines" / f"{name}-{pins_digest(lock)[:16]}-{python}"


def pins_digest(lock: Path) -> str:
    """The sha256 of what a lock installs: its lines without comments (the header changes
    with every edit of pyproject.toml, the engine's pins do not)."""
    lines = (line.split("#", 1)[0].rstrip() for line in lock.read_text("utf-8").splitlines())
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()


def installed(name: str) -> Path | None:
    """The environment's directory when it is installed and complete, else None."""
    target = directory(name)
    if target is None or not (target / COMPLETE).is_file():
        return None
    return target if _trusted(target.parent) else None


def ensure(name: str, progress: Progress | None = None) -> Path:
    """The environment's directory, installed from its lock first if it is not yet."""
    ready = installed(name)
    if ready is not None:
        return ready
    if name in _FAILED:  # not again for every spec that needs it
        raise Unavailable(_FAILED[name])
    try:
        return _ensure(name, progress)
    except Unavailable as reason:
        _FAILED[name] = str(reason)
        raise


def _ensure(name: str, progress: Progress | None) -> Path:
    lock = lock_file(name)
    if not lock.is_file():
        raise Unavailable(f"its lock file {shown(lock)} is missing")
    target = directory(name)
    if target is None:
        raise Unavailable("there is no cache directory (set MODELGATE_CACHE_DIR)")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise Unavailable(f"cannot create {target.parent}: {exc.strerror}") from exc
    if not _trusted(target.parent):
        raise Unavailable(f"{target.parent} may be written by others than this user")
    with held(target.parent / f"{name}.lock"):
        if not (target / COMPLETE).is_file():  # another deploy may have installed it meanwhile
            _install(name, lock, target, progress)
    return target


def _install(name: str, lock: Path, target: Path, progress: Progress | None) -> None:
    say = progress or (lambda text: None)
    say(
        f"installing the {name} engine environment from {shown(lock)} (first use; "
        f"cached in {target})"
    )
    started = time.monotonic()
    shutil.rmtree(target, ignore_errors=True)  # what a killed install left half-done
    uv = _uv()
    python = target / "bin" / "python"
    install = Install(name, lock, say, started)
    install.run([uv, "venv", "--quiet", "--python", sys.executable, str(target)])
    sync = [uv, "pip", "sync", "--quiet", "--require-hashes", "--compile-bytecode"]
    install.run([*sync, "--python", str(python), str(lock)])
    (target / COMPLETE).write_text(pins_digest(lock) + "\n")
    say(f"installed the {name} engine environment in {time.monotonic() - started:.1f} s")


class Install:
    """The commands of one install, each watched: a line through `say` every
    PROGRESS_EVERY_S seconds (the time elapsed, what the command is doing), and on an
    interrupt a clean stop of uv, whose cache keeps every package it finished downloading
    or building (the next install starts from there)."""

    def __init__(self, name: str, lock: Path, say: Progress, started: float) -> None:
        self.name, self.lock, self.say, self.started = name, lock, say, started

    def run(self, command: list[str]) -> None:
        with tempfile.TemporaryFile("w+") as errors:
            try:
                # a session of its own: an interrupt reaches uv through modelgate, which lets
                # it stop cleanly instead of dying mid-write with the terminal's signal
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                )
            except OSError as exc:
                raise Unavailable(f"installing from {shown(self.lock)} failed: {exc}") from exc
            try:
                code = self._watch(process)
            except KeyboardInterrupt:
                _stop(process)
                self.say(
                    f"interrupted installing the {self.name} engine environment after "
                    f"{_elapsed(time.monotonic() - self.started)}; what uv downloaded or built "
                    f"stays in its cache ({_uv_cache()}): the next deploy continues from there"
                )
                raise
            if code != 0:
                errors.seek(0)
                said = errors.read().strip()[-600:]
                raise Unavailable(f"installing from {shown(self.lock)} failed: {said}")

    def _watch(self, process: subprocess.Popen[bytes]) -> int:
        deadline = self.started + INSTALL_TIMEOUT_S
        while True:
            try:
                return process.wait(timeout=PROGRESS_EVERY_S)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now > deadline:
                _stop(process)
                raise Unavailable(
                    f"installing from {shown(self.lock)} took over {INSTALL_TIMEOUT_S:.0f} s"
                )
            self.say(
                f"installing the {self.name} engine environment: "
                f"{_elapsed(now - self.started)} so far, {activity(process.pid)}"
            )


def activity(pid: int) -> str:
    """What an install is doing, from the processes under it: compiling (C/C++ compilers,
    CMake, a wheel's build backend), uv's bytecode compilation, else downloading and
    installing packages."""
    commands = [_command(child) for child in _descendants(pid)]
    compilers = sum(1 for command in commands if _is_compiler(command))
    if compilers:
        return f"compiling a package from source ({compilers} compiler process(es))"
    if any("cmake" in command or "ninja" in command for command in commands):
        return "configuring a package's build (CMake)"
    if any("compileall" in command for command in commands):
        return "compiling the installed packages' bytecode"
    if any("python" in command for command in commands):
        return "building a package from source"
    return "downloading and installing packages"


def _is_compiler(command: str) -> bool:
    program = command.split(" ", 1)[0].rsplit("/", 1)[-1]
    return program in COMPILERS


def _descendants(pid: int) -> list[int]:
    """Every process under `pid`, from /proc (none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT first, as a terminal's Ctrl-C would (uv then removes only its temporary
    files); SIGKILL to the session if it does not exit in time."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _uv_cache() -> str:
    """Where uv keeps what it downloads and builds (`uv cache dir`)."""
    try:
        done = subprocess.run(
            [_uv(), "cache", "dir"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired, Unavailable):
        return "uv's cache"
    return done.stdout.strip() or "uv's cache"


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        raise Unavailable("uv, which installs it, is not installed (pip install uv)")
    return found


def _trusted(path: Path) -> bool:
    """A directory of this user that neither group nor others may write (as the cache's)."""
    try:
        found = os.stat(path)
    except OSError:
        return False
    return found.st_uid == os.geteuid() and not found.st_mode & 0o022

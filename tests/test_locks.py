"""The lock files agree with pyproject.toml and with the environment they installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import PROJECT

LOCKS = PROJECT / "locks"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _update_module():
    spec = importlib.util.spec_from_file_location("locks_update", LOCKS / "update.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(lock: Path) -> dict[str, tuple[Version, str | None, int]]:
    """name -> (version, marker, number of hashes) for every pin of a lock file."""
    pins: dict[str, tuple[Version, str | None, int]] = {}
    current = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match[1])
            assert name not in pins, f"{lock.name}: {name} is pinned twice"
            current = name
            pins[name] = (Version(match[2]), match[3], 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, marker, hashes = pins[current]
            pins[current] = (version, marker, hashes + 1)
    return pins


def _pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    texts = list(data["project"]["dependencies"]) + list(data["build-system"]["requires"])
    for extra in data["project"]["optional-dependencies"].values():
        texts.extend(extra)
    return [Requirement(text) for text in texts]


LOCK_FILES = sorted(LOCKS.glob("*.txt"))


ENGINE_LOCKS = sorted(LOCKS.glob("engine-*.txt"))


def _engine_groups() -> list[str]:
    data = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    return sorted(name for name in data["dependency-groups"] if name.startswith("engine-"))


def test_there_are_locks_for_the_venv_the_engine_the_installer_the_scanner_and_each_engine() -> (
    None
):
    assert {path.name for path in LOCK_FILES} == {
        "modelgate.txt",
        "serve.txt",
        "uv.txt",
        "checkov.txt",
        *(f"{group}.txt" for group in _engine_groups()),
    }
    assert len(_engine_groups()) >= 4  # mlserver-boosting, kserve, triton, llamacpp


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda path: path.name)
def test_each_lock_was_made_from_this_pyproject(lock: Path) -> None:
    fingerprint = _update_module().pyproject_fingerprint(PROJECT / "pyproject.toml")
    stamped = [
        line
        for line in lock.read_text(encoding="utf-8").splitlines()
        if line.startswith("# pyproject.toml: sha256:")
    ]
    assert stamped == [f"# pyproject.toml: sha256:{fingerprint}"], (
        f"{lock.name} was not made from this pyproject.toml: run `make lock`"
    )


def test_the_fingerprint_changes_with_a_dependency(tmp_path: Path) -> None:
    update = _update_module()
    original = (PROJECT / "pyproject.toml").read_text(encoding="utf-8")
    edited = tmp_path / "pyproject.toml"
    edited.write_text(original.replace('"pyyaml>=6.0"', '"pyyaml>=6.0.2"'), encoding="utf-8")
    assert original != edited.read_text(encoding="utf-8")
    assert update.pyproject_fingerprint(edited) != update.pyproject_fingerprint(
        PROJECT / "pyproject.toml"
    )


@pytest.mark.parametrize("lock", LOCK_FILES, ids=lambda path: path.name)
def test_every_pin_is_exact_and_hashed(lock: Path) -> None:
    pins = _pins(lock)
    assert pins, f"{lock.name} pins nothing"
    unhashed = [name for name, (_, _, hashes) in pins.items() if hashes == 0]
    assert not unhashed, f"{lock.name}: pins without a hash: {unhashed}"


def test_every_pyproject_requirement_is_met_by_the_main_lock() -> None:
    pins = _pins(LOCKS / "modelgate.txt")
    for requirement in _pyproject_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in locks/modelgate.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"locks/modelgate.txt pins {name}=={pins[name][0]}, pyproject.toml asks {requirement}"
        )


@pytest.mark.parametrize("lock", ["serve.txt", "uv.txt"])
def test_the_smaller_locks_pin_what_the_main_lock_pins(lock: str) -> None:
    main = _pins(LOCKS / "modelgate.txt")
    for name, (version, _, _) in _pins(LOCKS / lock).items():
        assert name in main and main[name][0] == version, (
            f"{lock} pins {name}=={version}, locks/modelgate.txt {main.get(name, ('nothing',))[0]}"
        )


@pytest.mark.parametrize(
    "lock", ["modelgate.txt", "checkov.txt", *(path.name for path in ENGINE_LOCKS)]
)
def test_one_version_per_package_on_every_python(lock: str) -> None:
    """A pickled artifact reads the same on every machine only if numpy & co. do not fork;
    the scanner finds the same on every machine only if its checks do not."""
    text = (LOCKS / lock).read_text(encoding="utf-8")
    names = [canonicalize_name(m[1]) for m in map(PIN.match, text.splitlines()) if m]
    assert len(names) == len(set(names))


def _group_requirements(group: str) -> list[Requirement]:
    data = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(text) for text in data["dependency-groups"][group]]


def test_the_scanner_lock_meets_the_scan_group_and_stays_out_of_the_venv() -> None:
    """Checkov lives in an environment of its own (locks/checkov.txt): its pins conflict with
    the project's (packaging<24), and `make venv` would install a hundred packages more."""
    scanner = _pins(LOCKS / "checkov.txt")
    main = _pins(LOCKS / "modelgate.txt")
    for requirement in _group_requirements("scan"):
        name = canonicalize_name(requirement.name)
        assert name in scanner, f"{requirement} is not in locks/checkov.txt: run `make lock`"
        assert requirement.specifier.contains(scanner[name][0]), (
            f"locks/checkov.txt pins {name}=={scanner[name][0]}, pyproject.toml asks {requirement}"
        )
        assert name not in main, f"{name} is in locks/modelgate.txt: it must keep its own lock"


def test_this_environment_was_installed_from_the_main_lock() -> None:
    drift = []
    for name, (version, marker, _) in _pins(LOCKS / "modelgate.txt").items():
        if marker and not Marker(marker).evaluate():
            continue
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            drift.append(f"{name} is not installed")
            continue
        if installed != version:
            drift.append(f"{name} {installed} is installed, the lock pins {version}")
    assert not drift, "run `make venv`: " + "; ".join(drift)


@pytest.mark.parametrize("group", _engine_groups())
def test_each_engine_lock_meets_its_group_and_stays_out_of_the_venv(group: str) -> None:
    """An engine the local target installs on first use (validator/deploy/environments.py)
    is pinned in its own lock and never in .venv's: `make demo` does not download it."""
    pins = _pins(LOCKS / f"{group}.txt")
    main = _pins(LOCKS / "modelgate.txt")
    for requirement in _group_requirements(group):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in locks/{group}.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name][0]), (
            f"locks/{group}.txt pins {name}=={pins[name][0]}, pyproject.toml asks {requirement}"
        )
    engine = canonicalize_name(_group_requirements(group)[0].name)  # the group names it first
    assert engine not in main, f"{engine} is in locks/modelgate.txt: it must keep its own lock"

"""The on-disk cache is an accelerator: nothing in it can change a verdict, run code or stop a run.

Every test runs the real CLI with MODELGATE_CACHE_DIR (and XDG_CACHE_HOME, where a refused
directory falls back to) pointing into its own temporary directory.
"""

from __future__ import annotations

import importlib.metadata
import marshal
import os
import pickle
import pwd
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from jinja2.bccache import bc_magic

from validator import cache as disk_cache

from .conftest import CliResult, Scaffold, run_cli

BROKEN = {"protocol: v2": "protocol: grpc"}  # a schema finding (MG201)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(directory))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return directory


def modelgate(scaffold: Scaffold, *args: str) -> CliResult:
    result = run_cli(*args, cwd=scaffold.root)
    assert "Traceback" not in result.out + result.err
    return result


def warm(scaffold: Scaffold, cache: Path) -> list[Path]:
    """Run validate and render once on a valid repository; the cache entries they wrote."""
    scaffold.iris()
    assert modelgate(scaffold, "validate").code == 0
    assert modelgate(scaffold, "render").code == 0
    found = entries(cache)
    assert found, "validate and render wrote no cache entries"
    return found


def entries(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def assert_verdicts_hold(scaffold: Scaffold) -> None:
    """A valid repository passes and an invalid spec is reported, whatever the cache holds."""
    validated = modelgate(scaffold, "validate")
    assert validated.code == 0, validated.out + validated.err
    rendered = modelgate(scaffold, "render")
    assert rendered.code == 0, rendered.out + rendered.err
    scaffold.iris("broken", **BROKEN)
    broken = modelgate(scaffold, "validate")
    assert broken.code == 1, broken.out + broken.err
    assert "models/broken.yaml:" in broken.out and "MG201" in broken.out
    assert modelgate(scaffold, "render").code == 1
    (scaffold.root / "models" / "broken.yaml").unlink()


def planted_code(marker: Path) -> bytes:
    """A compiled schema check that accepts everything and leaves a mark when it runs."""
    source = f"open({str(marker)!r}, 'w').close()\ndef validate(data, **kwargs):\n    return data\n"
    return marshal.dumps(compile(source, "<planted>", "exec"))


class _Touch:
    """Unpickling it creates the marker file (what a planted Jinja bytecode entry could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def planted_bytecode(marker: Path) -> bytes:
    return bc_magic + pickle.dumps(_Touch(marker))


JUNK = {
    "random bytes": b"\x00\xffnot a cache entry\x13" * 7,
    "marshalled non-code": marshal.dumps(42),
    "Jinja magic then junk": bc_magic + b"\x80\x05junk",
    "JSON that is not a verdict": b'{"deployment.yaml.j2": "yes"}',
}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
def test_junk_in_every_entry_is_rebuilt_and_never_fatal(
    scaffold: Scaffold, cache: Path, junk: bytes
) -> None:
    for entry in warm(scaffold, cache):
        entry.write_bytes(junk)
    assert_verdicts_hold(scaffold)
    rebuilt = entries(cache)
    assert rebuilt and all(entry.read_bytes() != junk for entry in rebuilt)


PLANTS = {"compiled check": planted_code, "Jinja bytecode": planted_bytecode}


def written_raw(entry: Path, payload: bytes) -> bytes:
    return payload


def sealed_for_another_entry(entry: Path, payload: bytes) -> bytes:
    return disk_cache.seal("schema-0.bin", payload)


def behind_the_replaced_entrys_seal(entry: Path, payload: bytes) -> bytes:
    return entry.read_bytes()[: disk_cache.HEADER_SIZE] + payload


TAMPERING = [written_raw, sealed_for_another_entry, behind_the_replaced_entrys_seal]


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda tamper: tamper.__name__)
@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_planted_code_in_an_entry_is_never_run(
    scaffold: Scaffold, cache: Path, tmp_path: Path, plant: Callable, tamper: Callable
) -> None:
    marker = tmp_path / "planted-code-ran"
    for entry in warm(scaffold, cache):
        entry.write_bytes(tamper(entry, plant(marker)))
    assert_verdicts_hold(scaffold)
    assert not marker.exists(), "the planted code was executed"


def plant_everywhere(cache: Path, marker: Path) -> None:
    """Well-formed entries (as their owner could write them) that run planted code."""
    for entry in entries(cache):
        plant = planted_bytecode if entry.name.startswith("jinja-") else planted_code
        entry.write_bytes(disk_cache.seal(entry.name, plant(marker)))


def test_the_planted_entries_run_when_their_owner_wrote_them(
    scaffold: Scaffold, cache: Path, tmp_path: Path
) -> None:
    """The control for the tests below: the cache is trusted as its owner is, like .pyc files."""
    marker = tmp_path / "planted-code-ran"
    warm(scaffold, cache)
    plant_everywhere(cache, marker)
    modelgate(scaffold, "render")
    assert marker.exists()


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777], ids=["group", "world", "world+sticky"])
def test_a_directory_others_can_write_is_not_used(
    scaffold: Scaffold, cache: Path, tmp_path: Path, mode: int
) -> None:
    marker = tmp_path / "planted-code-ran"
    warm(scaffold, cache)
    plant_everywhere(cache, marker)
    cache.chmod(mode)
    assert_verdicts_hold(scaffold)
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_directory_owned_by_another_user_is_not_used(
    scaffold: Scaffold, cache: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "planted-code-ran"
    warm(scaffold, cache)
    plant_everywhere(cache, marker)
    nobody = pwd.getpwnam("nobody")
    for path in [cache, *cache.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    assert_verdicts_hold(scaffold)
    assert not marker.exists()


@pytest.mark.parametrize("configured", ["cache", ".modelgate/cache", "./x/../cache"])
def test_a_relative_cache_directory_creates_nothing_in_the_repository(
    scaffold: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str
) -> None:
    monkeypatch.setenv("MODELGATE_CACHE_DIR", configured)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    scaffold.iris()
    assert modelgate(scaffold, "validate").code == 0
    before = set(entries(scaffold.root))
    assert modelgate(scaffold, "render").code == 0
    created = set(entries(scaffold.root)) - before
    assert all(path.is_relative_to(scaffold.root / "rendered") for path in created), created
    assert not (scaffold.root / configured).exists()
    assert entries(tmp_path / "xdg" / "modelgate"), "the default cache was not used instead"


def test_a_cache_directory_inside_a_git_repository_is_not_used(
    scaffold: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout holds what a pull request wrote, with the reader's owner and modes."""
    subprocess.run(["git", "init", "-q", str(scaffold.root)], check=True)
    inside = scaffold.root / ".cache" / "modelgate"
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(inside))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    scaffold.iris()
    assert modelgate(scaffold, "validate").code == 0
    assert not inside.exists()
    assert entries(tmp_path / "xdg" / "modelgate")


def test_cache_directories_are_created_private(scaffold: Scaffold, cache: Path) -> None:
    warm(scaffold, cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert not [path for path in cache.iterdir() if path.is_dir()]


def test_the_version_in_the_cache_key_is_modelgates() -> None:
    assert importlib.metadata.version("modelgate") == disk_cache.VERSION

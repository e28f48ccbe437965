"""Engine environments: installed from their lock on first use (uv, hashes required), cached
by the lock's pins, reinstalled when an install was cut short, refused when untrusted.

A real uv installs a real one-package lock (six, with the hashes locks/engine-kserve.txt
pins for it) into a scratch cache.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from validator.deploy import environments

from .conftest import PROJECT

SIX = "\n".join(
    [
        "six==1.17.0 \\",
        "    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274 \\",
        "    --hash=sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81",
    ]
)
HEADER = "# The `engine-tiny` group alone\n# pyproject.toml: sha256:{}\n"


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A locks/ folder with engine-tiny.txt, and a scratch cache of modelgate's."""
    folder = tmp_path / "locks"
    folder.mkdir()
    (folder / "engine-tiny.txt").write_text(HEADER.format("a" * 64) + SIX + "\n")
    monkeypatch.setattr(environments, "LOCKS", folder)
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(environments, "_FAILED", {})
    return folder


def imports_six(target: Path) -> bool:
    done = subprocess.run([target / "bin" / "python", "-c", "import six"], check=False)
    return done.returncode == 0


def test_the_six_pins_are_those_of_the_kserve_lock() -> None:
    assert SIX in (PROJECT / "locks" / "engine-kserve.txt").read_text(encoding="utf-8")


def test_first_use_installs_from_the_lock_and_says_so_then_the_cache_serves(locks: Path) -> None:
    said: list[str] = []
    assert environments.installed("tiny") is None
    target = environments.ensure("tiny", said.append)
    assert imports_six(target)
    assert len(said) == 2
    assert said[0].startswith("installing the tiny engine environment from ")
    assert said[0].endswith(f"engine-tiny.txt (first use; cached in {target})")
    assert said[1].startswith("installed the tiny engine environment in ")
    assert environments.installed("tiny") == target
    again: list[str] = []
    assert environments.ensure("tiny", again.append) == target and again == []
    assert target.name.startswith("tiny-") and target.parent.stat().st_mode & 0o077 == 0


def test_the_cache_is_keyed_by_the_pins_not_by_the_header(locks: Path) -> None:
    lock = locks / "engine-tiny.txt"
    before = environments.directory("tiny")
    lock.write_text(HEADER.format("b" * 64) + SIX + "\n    # via kserve\n")
    assert environments.directory("tiny") == before  # pyproject.toml changed elsewhere
    lock.write_text(HEADER.format("b" * 64) + SIX.replace("1.17.0", "1.16.0") + "\n")
    assert environments.directory("tiny") != before


def test_an_install_cut_short_is_done_again(locks: Path) -> None:
    target = environments.directory("tiny")
    assert target is not None
    target.mkdir(parents=True, mode=0o700)
    target.parent.chmod(0o700)
    (target / "half-written").write_text("killed here")
    assert environments.installed("tiny") is None
    assert environments.ensure("tiny") == target
    assert not (target / "half-written").exists() and imports_six(target)


def test_a_pin_whose_hash_differs_is_refused_and_not_tried_again(locks: Path) -> None:
    lock = locks / "engine-tiny.txt"
    text = lock.read_text()
    lock.write_text(text.replace("4721f391", "0000f391").replace("ff70335d", "0000335d"))
    with pytest.raises(environments.Unavailable) as failure:
        environments.ensure("tiny")
    assert "installing from " in str(failure.value) and "hash" in str(failure.value).lower()
    assert environments.installed("tiny") is None
    said: list[str] = []
    with pytest.raises(environments.Unavailable):  # the next spec that needs it: no new try
        environments.ensure("tiny", said.append)
    assert said == []


def test_a_cache_others_may_write_is_not_used(locks: Path, tmp_path: Path) -> None:
    engines = tmp_path / "cache" / "engines"
    engines.mkdir(parents=True)
    engines.chmod(0o777)
    with pytest.raises(environments.Unavailable, match="may be written by others"):
        environments.ensure("tiny")
    assert list(engines.iterdir()) == []


def test_an_engine_without_a_lock_is_unavailable(locks: Path) -> None:
    with pytest.raises(environments.Unavailable, match=r"lock file .*engine-nope.txt is missing"):
        environments.ensure("nope")


def test_every_environment_an_engine_record_names_has_a_lock() -> None:
    from validator.engines import ENGINES

    named = {env for engine in ENGINES.values() for env in engine.local_environments.values()}
    assert named and all(environments.lock_file(name).is_file() for name in named), named


def _requirements(lock: Path, names: tuple[str, ...]) -> str:
    """The lines of `lock` that pin these packages, their hashes with them."""
    picked, keep = [], False
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            keep = line.split("==", 1)[0] in names
        if keep and not line.lstrip().startswith("#"):
            picked.append(line)
    return "\n".join(picked) + "\n"


INSTALL = """\
import sys
from pathlib import Path
from validator.cli.environments import main
from validator.deploy import environments
environments.LOCKS = Path(sys.argv[1])
sys.exit(main(["big"]))
"""


def test_a_long_install_says_what_it_does_and_an_interrupt_keeps_the_downloads(
    tmp_path: Path,
) -> None:
    """Progress lines while uv works (elapsed time, what it is doing); Ctrl-C stops uv
    cleanly, says so, and what uv finished downloading stays in its cache."""
    folder = tmp_path / "locks"
    folder.mkdir()
    wheels = ("numpy", "onnx", "onnxruntime", "grpcio", "protobuf")
    lock = _requirements(PROJECT / "locks" / "engine-triton.txt", wheels)
    assert lock.count("==") == len(wheels)
    (folder / "engine-big.txt").write_text(HEADER.format("b" * 64) + lock)
    uv_cache = tmp_path / "uv"
    env = {
        **os.environ,
        "MODELGATE_CACHE_DIR": str(tmp_path / "cache"),
        "UV_CACHE_DIR": str(uv_cache),
        "MODELGATE_PROGRESS_SECONDS": "0.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", INSTALL, str(folder)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stderr.readline() for _ in range(2)]
        assert lines[0].startswith("modelgate: installing the big engine environment from")
        assert re.match(
            r"modelgate: installing the big engine environment: \d+ s so far, ", lines[1]
        )
        downloaded: list[Path] = []
        deadline = time.monotonic() + 120
        while not downloaded and process.poll() is None and time.monotonic() < deadline:
            downloaded = list((uv_cache / "archive-v0").glob("*/*"))
            time.sleep(0.05)
        assert downloaded and process.poll() is None, "the install ended before a package was in"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert (
        "interrupted installing the big engine environment after" in err
        and f"what uv downloaded or built stays in its cache ({uv_cache})" in err
    ), err
    assert "Traceback" not in err
    assert all(path.exists() for path in downloaded)
    assert list((tmp_path / "cache" / "engines").glob("big-*/.complete")) == []

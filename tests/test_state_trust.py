"""State files under .modelgate/ can come from a pull request: `status`, `smoke` and `stop`
touch only work directories modelgate created and signal only the process it started."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from validator.deploy import ledger

from .conftest import Scaffold, git, run_cli


def write_state(root: Path, stem: str, **fields: object) -> Path:
    """.modelgate/run/STEM.json with `fields` over a plausible record (None drops a field)."""
    state = {
        "name": stem,
        "pid": 999_999_999,
        "base_url": "http://127.0.0.1:9",
        "protocol": "v2",
        "workdir": "/nowhere",
        "log": "",
        "started": 1,
        "cmdline": ["mlserver"],
        **fields,
    }
    state = {key: value for key, value in state.items() if value is not None}
    path = root / ".modelgate" / "run" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A directory a forged state file names as its work directory."""
    directory = tmp_path / "precious"
    directory.mkdir()
    (directory / "keep.txt").write_text("mine")
    return directory


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process leading its own process group, as a server would."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def own_workdir() -> Iterator[Path]:
    """A work directory exactly like the ones modelgate creates."""
    directory = Path(tempfile.mkdtemp(prefix="modelgate-evil-"))
    yield directory
    if directory.exists():
        directory.rmdir()


def start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def workdirs(precious: Path, tmp_path: Path) -> list[Path]:
    nested = tmp_path / "modelgate-evil-nested"  # modelgate's prefix, not under the temp dir
    nested.symlink_to(precious)
    link = Path(tempfile.mktemp(prefix="modelgate-evil-"))  # prefix and place, but a link
    link.symlink_to(precious)
    return [precious, nested, link]


def test_a_forged_workdir_survives_status_stop_and_smoke(
    scaffold: Scaffold, precious: Path, tmp_path: Path
) -> None:
    scaffold.iris()
    for workdir in workdirs(precious, tmp_path):
        for command in (["status"], ["stop", "evil"], ["smoke", "evil"]):
            write_state(
                scaffold.root,
                "evil",
                pid=dead_pid(),
                workdir=str(workdir),
                started=None,  # as the state files written so far
                cmdline=None,
            )
            result = run_cli("--root", str(scaffold.root), *command)
            assert (precious / "keep.txt").read_text() == "mine", (workdir, command)
            assert "evil.json" in result.err and "ignored" in result.err, result.err
            assert "Traceback" not in result.err
            assert result.code == (0 if command == ["status"] else 1)
        if workdir.is_symlink():
            workdir.unlink()


def test_an_unrelated_process_named_by_pid_is_never_signalled(
    scaffold: Scaffold, sleeper: subprocess.Popen[bytes], own_workdir: Path
) -> None:
    scaffold.iris()
    forgeries = [
        {"started": None, "cmdline": None},  # a state file without them
        {"started": start_time(sleeper.pid) + 1, "cmdline": ["sleep", "60"]},
        {"started": start_time(sleeper.pid), "cmdline": ["mlserver", "start"]},
    ]
    for forged in forgeries:
        for command in (["stop", "iris"], ["status"], ["smoke", "iris"]):
            write_state(scaffold.root, "iris", pid=sleeper.pid, workdir=str(own_workdir), **forged)
            result = run_cli("--root", str(scaffold.root), *command)
            assert sleeper.poll() is None, (forged, command, result.out, result.err)
            assert "iris.json" in result.err and "ignored" in result.err, result.err
            assert "stopped" not in result.out and "smoke pass" not in result.out
            assert "nothing running" in result.out or command != ["status"]
            assert own_workdir.is_dir()


def test_a_stale_record_of_a_server_that_is_gone_is_forgotten(
    scaffold: Scaffold, own_workdir: Path
) -> None:
    pid = dead_pid()
    path = write_state(scaffold.root, "iris", pid=pid, workdir=str(own_workdir))
    result = run_cli("--root", str(scaffold.root), "status")
    assert result.code == 0 and f"(process {pid}) died" in result.err
    assert result.out.splitlines()[1].split()[:3] == ["iris", "local", "died"]
    assert not path.exists() and not own_workdir.exists()
    assert [r["result"] for r in ledger.history(scaffold.root, "iris")] == ["died"]
    again = run_cli("--root", str(scaffold.root), "status")  # forgotten: said once
    assert again.out.startswith("nothing running") and again.err == ""


def test_a_state_file_naming_another_file_is_ignored(scaffold: Scaffold, own_workdir: Path) -> None:
    other = scaffold.root / ".modelgate" / "run" / "other.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    write_state(scaffold.root, "evil", name="other", pid=dead_pid(), workdir=str(own_workdir))
    result = run_cli("--root", str(scaffold.root), "status")
    assert result.code == 0 and "evil.json" in result.err
    assert other.exists() and own_workdir.is_dir()


@pytest.mark.parametrize("text", ["[1, 2]", "{", '{"name": 3}', "\xff"])
def test_a_damaged_state_file_is_reported(scaffold: Scaffold, text: str) -> None:
    path = scaffold.root / ".modelgate" / "run" / "iris.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1"))
    result = run_cli("--root", str(scaffold.root), "status")
    assert result.code == 0 and "iris.json" in result.err and "ignored" in result.err
    assert path.exists()


@pytest.fixture
def repo(committed: Scaffold) -> Scaffold:
    return committed


def test_a_committed_modelgate_directory_is_a_finding(repo: Scaffold) -> None:
    write_state(repo.root, "evil")
    clean = run_cli("--root", str(repo.root), "validate")
    assert clean.code == 0 and "MG117" not in clean.out + clean.err  # untracked: fine
    git(repo.root, "add", "-f", ".modelgate/run/evil.json")
    git(repo.root, "commit", "-q", "-m", "state")
    result = run_cli("--root", str(repo.root), "validate")
    assert result.code == 1
    assert ".modelgate/run/evil.json:1:1: MG117" in result.out + result.err


def test_outside_a_git_work_tree_there_is_no_commit_to_report(scaffold: Scaffold) -> None:
    scaffold.iris()
    write_state(scaffold.root, "evil")
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 0 and "MG117" not in result.out + result.err

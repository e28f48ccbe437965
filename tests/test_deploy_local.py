"""Deploys on the local target against a real MLServer process, success and failure alike.

Every test checks that no engine process started for its scratch repository survives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from validator.check import workspace
from validator.deploy import ledger, local
from validator.deploy.net import free_port

from .conftest import IRIS_FOLDER, PROJECT, Scaffold, run_cli

pytestmark = pytest.mark.engine

SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def engine_processes(root: Path, keepers: bool = False) -> list[int]:
    """PIDs of live engine processes whose command line mentions this scratch repository
    (with `keepers`, the keeper processes between modelgate and each engine as well)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        engine = "mlserver" in cmdline and str(root) in cmdline and state != "Z"
        if engine and (keepers or "keeper.py" not in cmdline):
            found.append(int(entry.name))
    return found


@pytest.fixture
def repo(scaffold: Scaffold):
    yield scaffold
    leftovers = engine_processes(scaffold.root, keepers=True)
    for pid in leftovers:  # clean up before failing, so one failure does not cascade
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "an engine process outlived its deploy"


def deploy(repo: Scaffold, *args: str) -> tuple[int, str, str]:
    result = run_cli("--root", str(repo.root), "deploy", *args)
    return result.code, result.out, result.err


def infer(base_url: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/v2/models/iris/infer",
        data=json.dumps(SETOSA).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def kept_url(repo: Scaffold, name: str = "iris") -> str:
    state = json.loads((repo.root / ".modelgate" / "run" / f"{name}.json").read_text())
    return state["base_url"]


def test_placeholders_only_warn_on_this_machine(repo: Scaffold) -> None:
    """A deploy to this machine reaches no cluster: a placeholder is a warning there, and an
    error for `validate`, whose verdict gates every environment."""
    spec = repo.iris(**{"license: BSD-3-Clause": "license: LicenseRef-TODO"})
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "TODO" in text)
    code, out, err = deploy(repo, str(spec))
    assert code == 0, out + err
    assert f"models/iris.yaml:{line}:14: MG122 warning: spec.compliance.license" in out + err
    assert "torn down" in out
    validated = run_cli("--root", str(repo.root), "validate", str(spec))
    assert validated.code == 1 and f"models/iris.yaml:{line}:14: MG122 spec" in validated.out


def test_deploy_smoke_and_tear_down(repo: Scaffold) -> None:
    code, out, err = deploy(repo, str(repo.iris()))
    assert code == 0, out + err
    assert "smoke pass  setosa" in out and "smoke pass  three-species" in out
    assert "endpoint: http://127.0.0.1:" in out and "/v2/models/iris/infer" in out
    assert "torn down" in out
    rendered = repo.root / "rendered" / "local" / "iris"
    assert sorted(p.name for p in rendered.iterdir()) == ["model-settings.json", "settings.json"]


def test_keep_then_status_infer_and_stop(repo: Scaffold) -> None:
    code, out, err = deploy(repo, str(repo.iris()), "--keep")
    assert code == 0, out + err
    url = kept_url(repo)
    assert infer(url)["outputs"][0]["data"] == [0]
    status = run_cli("--root", str(repo.root), "status")
    assert status.code == 0 and url in status.out
    assert status.out.split()[:5] == ["NAME", "TARGET", "STATE", "WHERE", "ENDPOINT"]
    listed = json.loads(run_cli("--root", str(repo.root), "status", "--format", "json").out)
    assert [(row["name"], row["target"], row["state"], row["endpoint"]) for row in listed] == [
        ("iris", "local", "running", url)
    ]
    stopped = run_cli("--root", str(repo.root), "stop", "iris")
    assert stopped.code == 0 and engine_processes(repo.root) == []
    assert run_cli("--root", str(repo.root), "status").out.startswith("nothing running")
    again = run_cli("--root", str(repo.root), "stop", "iris")
    assert again.code == 1 and "MG506" in again.err


def test_a_kept_server_that_died_is_reported_and_recorded(repo: Scaffold) -> None:
    code, out, err = deploy(repo, str(repo.iris()), "--keep")
    assert code == 0, out + err
    url = kept_url(repo)
    server = json.loads((repo.root / ".modelgate/run/iris.json").read_text())["pid"]
    os.killpg(server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while engine_processes(repo.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = run_cli("--root", str(repo.root), "status")
    assert status.code == 0 and "nothing running" not in status.out
    row = status.out.splitlines()[1].split()
    assert row == ["iris", "local", "died", str(server), url]
    assert f"modelgate: the kept server of iris at {url} (process {server}) died" in status.err
    assert "`modelgate history iris`" in status.err
    died = ledger.history(repo.root, "iris")[-1]
    assert died["result"] == "died" and died["target"] == "local"
    assert died["endpoint"].startswith(url) and f"(process {server}) died" in died["error"]
    assert died["artifact"] == ledger.history(repo.root, "iris")[-2]["artifact"]
    # recorded once: the record of the kept server is gone with it
    assert run_cli("--root", str(repo.root), "status").out.startswith("nothing running")
    assert [r["result"] for r in ledger.history(repo.root, "iris")] == ["deployed", "died"]
    history = run_cli("--root", str(repo.root), "history", "iris").out.splitlines()
    assert history[-1].split()[1] == "died" and f"(process {server}) died" in history[-1]
    smoked = run_cli("--root", str(repo.root), "smoke", "iris")
    assert smoked.code == 1 and f"(process {server}) died" in smoked.err


def test_model_not_deployed_when_the_engine_cannot_load_it(repo: Scaffold) -> None:
    spec = repo.iris()
    text = "\n".join(line for line in spec.read_text().splitlines() if "sha256:" not in line)
    spec.write_text(text + "\n")
    # A well-formed pickle that imports nothing dangerous, so the scan passes it; its class
    # lives in a module that does not exist, so the engine fails when it loads it.
    unloadable = b"\x80\x02cmodelgate_missing_module\nModel\nq\x00)\x81q\x01."
    (repo.root / "models/artifacts/iris/model.joblib").write_bytes(unloadable)
    code, _, err = deploy(repo, str(spec))
    assert code == 1
    assert "models/iris.yaml:13:3: MG501 model not deployed: the engine exited" in err
    assert "last lines of the server log" in err and "joblib" in err
    assert "nothing left running" in err


def test_model_not_deployed_when_the_artifact_checksum_differs(repo: Scaffold) -> None:
    artifact = repo.root / "models/artifacts/iris/model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    code, _, err = deploy(repo, str(repo.iris()))
    assert code == 1  # validation refuses it before any engine starts
    assert "models/iris.yaml:15:13: MG119 artifact models/artifacts/iris/model.joblib has" in err
    assert "model not deployed: the spec is invalid" in err


def test_model_not_deployed_when_the_artifact_is_missing(repo: Scaffold) -> None:
    spec = repo.iris(**{"models/artifacts/iris/model.joblib": "models/artifacts/nope.joblib"})
    code, _, err = deploy(repo, str(spec))
    assert (
        code == 1
        and "MG501 model not deployed: artifact models/artifacts/nope.joblib does not exist" in err
    )


def test_artifact_outside_the_repository_is_refused(repo: Scaffold) -> None:
    outside = repo.root.parent / "model.joblib"
    outside.write_bytes((PROJECT / "models/artifacts/iris/model.joblib").read_bytes())
    spec = repo.iris(**{"models/artifacts/iris/model.joblib": "../model.joblib"})
    code, _, err = deploy(repo, str(spec))
    assert code == 1 and "lies outside the repository" in err


def test_a_folder_artifact_is_served_and_a_changed_folder_refused_before_start(
    repo: Scaffold,
) -> None:
    spec = repo.iris_folder()
    code, out, err = deploy(repo, str(spec))
    assert code == 0, out + err
    assert "smoke pass  setosa" in out and "smoke pass  three-species" in out
    settings = json.loads((repo.root / "rendered/local/iris/model-settings.json").read_text())
    assert settings["parameters"]["uri"] == f"../../../{IRIS_FOLDER}/"

    added = repo.root / IRIS_FOLDER / "notes.txt"
    added.write_text("added after review\n")
    code, _, err = deploy(repo, str(spec))
    assert code == 1 and "MG119" in err and "model not deployed: the spec is invalid" in err
    assert engine_processes(repo.root) == []

    # a change between validation and the start: deploy's own check, just before the engine
    added.unlink()
    validation = workspace.validate([spec], repo.root)
    assert not validation.failed(), validation.diagnostics
    added.write_text("added after validation\n")
    outcome = local.deploy(validation.valid_documents()[0], repo.root)
    line = next(n for n, t in enumerate(spec.read_text().splitlines(), 1) if "treeSha256" in t)
    assert [(d.line, d.col, d.rule) for d in outcome.diagnostics] == [(line, 17, "MG501")]
    assert outcome.diagnostics[0].message.startswith(
        f"model not deployed: artifact {IRIS_FOLDER} has tree sha256 "
    )
    assert outcome.endpoint is None and engine_processes(repo.root) == []


def test_endpoint_not_available_when_readiness_times_out(repo: Scaffold) -> None:
    spec = repo.iris(**{"readinessTimeoutSeconds: 60": "readinessTimeoutSeconds: 0.3"})
    code, _, err = deploy(repo, str(spec))
    assert code == 1
    assert "MG502 endpoint not available: the model was not ready within 0.3 s" in err
    assert "readinessTimeoutSeconds" in err


def test_endpoint_not_available_when_a_smoke_expectation_fails(repo: Scaffold) -> None:
    spec = repo.iris(**{"equals: [0]}": "equals: [2]}"})
    code, out, err = deploy(repo, str(spec))
    assert code == 1
    assert "smoke FAIL  setosa" in out and "smoke pass  three-species" in out
    line = next(
        i for i, text in enumerate(spec.read_text().splitlines(), 1) if "equals: [2]" in text
    )
    assert f"models/iris.yaml:{line}:" in err
    assert "MG601 smoke request 'setosa': output 'predict' is [0], expected [2]" in err
    assert "MG502 endpoint not available: smoke request(s) failed: setosa" in err


def test_latency_budget_is_enforced(repo: Scaffold) -> None:
    spec = repo.iris(**{"maxLatencyMs: 500": "maxLatencyMs: 0.001"})
    code, _, err = deploy(repo, str(spec))
    assert code == 1 and "over the 0.001 ms budget" in err


def test_failed_upgrade_leaves_the_previous_deployment_serving(repo: Scaffold) -> None:
    spec = repo.iris()
    code, out, err = deploy(repo, str(spec), "--keep")
    assert code == 0, out + err
    good_url = kept_url(repo)
    broken = spec.read_text().replace("equals: [0]}", "equals: [1]}")
    spec.write_text(broken)
    code, _, err = deploy(repo, str(spec), "--keep")
    assert code == 1
    assert f"the previous deployment still serves at {good_url}" in err
    assert infer(good_url)["outputs"][0]["data"] == [0]
    assert kept_url(repo) == good_url
    assert len(engine_processes(repo.root)) == 1
    spec.write_text(broken.replace("equals: [1]}", "equals: [0]}"))
    code, out, err = deploy(repo, str(spec), "--keep")  # a good upgrade replaces it
    assert code == 0, out + err
    assert kept_url(repo) != good_url and len(engine_processes(repo.root)) == 1
    assert run_cli("--root", str(repo.root), "stop", "iris").code == 0


def test_port_already_taken(repo: Scaffold) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        spec = repo.iris(**{"visibility: internal": f"visibility: internal\n    port: {port}"})
        code, _, err = deploy(repo, str(spec))
    assert code == 1 and f"MG505 model not deployed: port {port} is already in use" in err


def test_image_models_are_not_for_the_local_target(repo: Scaffold) -> None:
    spec = repo.iris(  # an image that serves itself: the docker engine's
        **{
            "artifact: models/artifacts/iris/model.joblib": "image: registry.local/iris@sha256:"
            + "a" * 64,
            "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n": "",
            "    name: mlserver\n    version: 1.7.1\n": "    name: docker\n",
        }
    )
    code, _, err = deploy(repo, str(spec))
    assert code == 1 and "MG503" in err


def test_invalid_spec_is_not_deployed(repo: Scaffold) -> None:
    code, _, err = deploy(repo, str(repo.iris(**{"protocol: v2": "protocol: v9"})))
    assert code == 1 and "MG201" in err and "model not deployed: the spec is invalid" in err


SLEEPER = '''
import asyncio
from mlserver import MLModel


class Sleeper(MLModel):
    """A model that never finishes loading: the engine runs, the model is never ready."""

    async def load(self) -> bool:
        await asyncio.sleep(3600)
        return True
'''


def never_ready_spec(repo: Scaffold) -> Path:
    (repo.root / "plugins").mkdir(exist_ok=True)
    (repo.root / "plugins" / "sleeper.py").write_text(SLEEPER)
    return repo.iris(
        **{
            "format: sklearn": "format: custom",
            "    protocol: v2": "    protocol: v2\n    runtime: sleeper.Sleeper",
            "readinessTimeoutSeconds: 60": "readinessTimeoutSeconds: 600",
        }
    )


def deploying(repo: Scaffold, *options: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """A deploy of a model that never becomes ready, running in the background, once its
    engine has started."""
    spec = never_ready_spec(repo)
    command = [sys.executable, "-m", "validator.cli", "--root", str(repo.root), "deploy"]
    child = subprocess.Popen(
        [*command, str(spec), *options],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(repo.root / "plugins")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )
    deadline = time.monotonic() + 60
    while not engine_processes(repo.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not engine_processes(repo.root):
        child.kill()
        pytest.fail("the engine never started")
    return child


def ended(child: subprocess.Popen) -> str:
    """The deploy's stderr once it has exited (killed if it does not within a minute)."""
    try:
        return child.communicate(timeout=60)[1]
    finally:
        child.kill()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("keep", [False, True], ids=["once", "keep"])
def test_interrupt_during_deploy_stops_the_engine(
    repo: Scaffold, sig: signal.Signals, keep: bool
) -> None:
    """The signal lands while the deploy waits for a model that would take 10 minutes: the
    deploy must stop the engine and exit 130 at once, not finish the wait."""
    child = deploying(repo, *(["--keep"] if keep else []))
    child.send_signal(sig)
    err = ended(child)
    assert child.returncode == 130, err
    assert "MG509 model not deployed: interrupted" in err
    assert engine_processes(repo.root) == []
    assert not (repo.root / ".modelgate" / "run" / "iris.json").exists()
    ledger = (repo.root / ".modelgate" / "ledger.jsonl").read_text().splitlines()
    assert json.loads(ledger[-1])["result"] == "interrupted"


def test_sigint_stops_a_deploy_that_inherited_it_ignored(repo: Scaffold) -> None:
    """Background jobs and some CI runners start programs with SIGINT ignored; an explicit
    SIGINT to a deploy must still stop it and its engine."""
    child = deploying(repo, sigint_ignored=True)
    child.send_signal(signal.SIGINT)
    err = ended(child)
    assert child.returncode == 130, err
    assert engine_processes(repo.root) == []


def test_a_second_signal_does_not_cut_the_clean_up_short(repo: Scaffold) -> None:
    child = deploying(repo)
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGINT)
    child.send_signal(signal.SIGTERM)
    err = ended(child)
    assert child.returncode == 130, err
    assert engine_processes(repo.root) == []


def test_engine_binary_missing(repo: Scaffold, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_MLSERVER", str(repo.root / "no-such-mlserver"))
    code, _, err = deploy(repo, str(repo.iris()))
    assert code == 1
    assert "MG504 model not deployed: the mlserver engine is not installed" in err


CRASHER = '''
import os
from mlserver import MLModel


class Crasher(MLModel):
    """Loads fine, then takes the whole server down on its first request."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload):
        os._exit(3)
'''


def test_endpoint_not_available_when_the_engine_crashes_after_ready(
    repo: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo.root / "plugins").mkdir()
    (repo.root / "plugins" / "crasher.py").write_text(CRASHER)
    monkeypatch.setenv("PYTHONPATH", str(repo.root / "plugins"))
    spec = repo.iris(
        **{
            "format: sklearn": "format: custom",
            "    protocol: v2": "    protocol: v2\n    runtime: crasher.Crasher",
        }
    )
    code, out, err = deploy(repo, str(spec))
    assert code == 1, out + err
    assert "smoke FAIL  setosa" in out
    assert "MG502 endpoint not available: the engine crashed" in err


def test_the_engine_dies_with_a_killed_deploy_and_the_next_run_sweeps_its_workdir(
    repo: Scaffold,
) -> None:
    """SIGKILL cannot be caught: the keeper between modelgate and the engine sees its pipe
    close and stops the engine; the next deploy removes the work directory left behind."""
    child = deploying(repo)
    workdirs = sorted(Path(tempfile.gettempdir()).glob("modelgate-iris-*"))
    ours = [w for w in workdirs if ((w / "keeper.pid").exists() and str(repo.root) in
            (w / "server.log").read_text(errors="replace")) or engine_in(w, repo.root)]  # fmt: skip
    child.kill()
    child.wait(timeout=30)
    deadline = time.monotonic() + 30
    while engine_processes(repo.root, keepers=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine_processes(repo.root, keepers=True) == [], "the engine outlived its deploy"
    assert ours and all(w.exists() for w in ours), "no work directory was left to sweep"
    code, out, err = deploy(repo, str(repo.iris(name="sweeper")))
    assert code == 0, out + err
    assert not any(w.exists() for w in ours), "the next deploy left the leftovers in place"


def engine_in(workdir: Path, root: Path) -> bool:
    """Whether a live engine process runs with this work directory for this repository."""
    for pid in engine_processes(root):
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == workdir.resolve():
                return True
        except OSError:
            continue
    return False


def test_a_kept_model_on_a_fixed_port_says_why_it_cannot_upgrade_in_place(
    repo: Scaffold,
) -> None:
    port = free_port()
    spec = repo.iris(**{"visibility: internal": f"visibility: internal\n    port: {port}"})
    code, out, err = deploy(repo, str(spec), "--keep")
    assert code == 0, out + err
    try:
        code, _, err = deploy(repo, str(spec), "--keep")
        assert code == 1
        assert "the kept deployment of iris holds port" in err
        assert "remove spec.endpoint.port" in err
        assert f"the previous deployment still serves at http://127.0.0.1:{port}" in err
        assert infer(f"http://127.0.0.1:{port}")["outputs"][0]["data"] == [0]
    finally:
        assert run_cli("--root", str(repo.root), "stop", "iris").code == 0

"""The Kubernetes test harness (tests/kube_env.py) itself: its go.mod is what `pin` writes from
upstream's, the servers answer as the admin and refuse the deployer, and nothing it starts
outlives the test run, even one killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import kube_env
from .conftest import PROJECT

pytestmark = pytest.mark.kube


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kube_env.exited(pid):
            return True
        time.sleep(0.1)
    return False


def test_the_apiserver_go_mod_replaces_every_staging_module(kube: kube_env.KubeEnv) -> None:
    """Every module k8s.io/kubernetes's own go.mod takes from its staging/ folder is replaced by
    its published v0.Y release, and nothing else is replaced: what `pin` writes."""
    version = kube_env.APISERVER.version()
    upstream = kube_env.upstream_gomod("k8s.io/kubernetes", version)
    staging = kube_env.staging_modules(upstream)
    assert len(staging) > 20 and "k8s.io/apiserver" in staging
    published = "v0." + version.removeprefix("v1.")
    committed = kube_env.APISERVER.gomod.read_text()
    assert kube_env.replacements(committed) == {m: f"{m} {published}" for m in staging}
    assert kube_env.replacements(committed) == kube_env.replacements(
        kube_env.apiserver_gomod(version, upstream)
    )
    godebug = re.search(r"^godebug .+$", upstream, re.MULTILINE)
    assert godebug is not None and godebug.group(0) in committed.splitlines()


def test_the_built_programs_are_the_pinned_versions(kube: kube_env.KubeEnv) -> None:
    version = kube_env.APISERVER.version()
    done = kube.kubectl("version", "-o", "json")
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)
    assert versions["clientVersion"]["gitVersion"] == version
    assert versions["serverVersion"]["gitVersion"] == version
    etcd = kube_env.ensure_built(kube_env.ETCD) / "etcd"
    shown = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {kube_env.ETCD.version().removeprefix('v')}" in shown.stdout
    recorded = json.loads((kube_env.ensure_built(kube_env.APISERVER) / "build.json").read_text())
    assert recorded["version"] == version


def test_rbac_is_on_admin_may_deployer_may_not(kube: kube_env.KubeEnv) -> None:
    assert kube.request("GET", "/api/v1/namespaces")[0] == 200
    status, answer = kube.request("GET", "/api/v1/namespaces", identity=kube.deployer)
    assert status == 403
    assert f'User "{kube_env.DEPLOYER_USER}" cannot list resource "namespaces"' in answer["message"]
    refused = kube.kubectl("get", "namespaces", identity=kube.deployer)
    assert refused.returncode == 1 and "Forbidden" in refused.stderr


def test_the_crds_at_hand_are_installed(kube: kube_env.KubeEnv) -> None:
    files = kube_env.crd_files(kube_env.default_crd_dirs())
    assert len(kube.crds) == len(files)
    assert kube.resource("serving.kserve.io/v1beta1", "InferenceService") is not None
    assert kube.resource("argoproj.io/v1alpha1", "ApplicationSet") is not None


def test_every_crd_but_seldons_comes_from_its_pinned_module(kube: kube_env.KubeEnv) -> None:
    """The custom kinds the templates render are served by the tests' API server, from the
    CRDs of the Go modules tests/kube/crds/go.mod pins: none needs a folder beside the
    checkout but Seldon's Model."""
    folder = kube_env.module_crds()
    assert sorted(path.name for path in folder.iterdir()) == [
        "applications.argoproj.io.yaml",
        "applicationsets.argoproj.io.yaml",
        "appprojects.argoproj.io.yaml",
        "authorizationpolicies.security.istio.io.yaml",
        "clusterservingruntimes.serving.kserve.io.yaml",
        "inferenceservices.serving.kserve.io.yaml",
        "peerauthentications.security.istio.io.yaml",
        "requestauthentications.security.istio.io.yaml",
        "scaledobjects.keda.sh.yaml",
        "servingruntimes.serving.kserve.io.yaml",
    ]
    for api_version, kind in [
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("argoproj.io/v1alpha1", "Application"),
        ("argoproj.io/v1alpha1", "ApplicationSet"),
        ("argoproj.io/v1alpha1", "AppProject"),
        ("security.istio.io/v1", "PeerAuthentication"),
        ("security.istio.io/v1", "RequestAuthentication"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("keda.sh/v1alpha1", "ScaledObject"),
    ]:
        assert kube.resource(api_version, kind) is not None, kind


def test_a_folders_crd_of_a_modules_name_gives_way_to_the_modules(tmp_path: Path) -> None:
    """Of two files defining one CRD, the later folder's is installed (as crds.load_dirs
    keeps the later folder's schema): the modules' come last."""
    module = kube_env.module_crds()
    older = tmp_path / "serving.kserve.io_inferenceservices.yaml"
    older.write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  annotations: {}\n  name: inferenceservices.serving.kserve.io\nspec: {}\n"
    )
    files = kube_env.crd_files([tmp_path, module])
    assert older not in files
    assert module / "inferenceservices.serving.kserve.io.yaml" in files
    assert kube_env.crd_files([module, tmp_path]).count(older) == 1


def test_a_crd_module_whose_hash_is_not_in_go_sum_is_refused(tmp_path: Path) -> None:
    gosum = (kube_env.CRD_MODULES / "go.sum").read_text().replace("h1:37", "h1:00", 1)
    with pytest.raises(kube_env.Broken, match=r"not the one in go\.sum"):
        kube_env.downloaded(kube_env._go(), "istio.io/api", "v1.32.0", gosum)


def test_stale_runs_are_stopped_and_live_ones_left_alone(tmp_path: Path) -> None:
    stale = kube_env.new_run_folder(tmp_path)
    (stale / "owner").write_text("999999999 1\n")  # a test process that is gone
    live = kube_env.new_run_folder(tmp_path)  # ours, still running
    sleepers = []
    for run in (stale, live):
        # the run folder in its command line marks it as the harness's, as the servers' flags do
        sleeper = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)", str(run)]
        )  # fmt: skip
        (run / "etcd.pid").write_text(str(sleeper.pid))
        sleepers.append(sleeper)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    (stale / "kube-apiserver.pid").write_text(str(stranger.pid))  # a PID reused by someone else
    try:
        kube_env.stop_stale(tmp_path)
        assert sleepers[0].wait(timeout=30) == -signal.SIGKILL
        assert not stale.exists()
        assert sleepers[1].poll() is None and live.is_dir()
        assert stranger.poll() is None
    finally:
        for process in (*sleepers, stranger):
            process.kill()
            process.wait()


def test_a_run_killed_with_sigkill_leaves_no_server_behind(kube: kube_env.KubeEnv) -> None:
    """The servers die with the test process (the kernel's parent-death signal) and the next
    run removes what the killed one could not."""
    script = (
        "import json, time\n"
        "from tests import kube_env\n"
        "env = kube_env.start(crd_dirs=[])\n"
        "print(json.dumps({'pids': [p.pid for p in env.processes], 'run': str(env.run)}),"
        " flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.poll() is not None else "no output"
        started = json.loads(line)
        assert all(Path(f"/proc/{pid}").exists() for pid in started["pids"])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    for pid in started["pids"]:
        assert gone(pid), f"server {pid} outlived the killed test process"
    run = Path(started["run"])
    assert run.is_dir()  # nobody could clean up after a SIGKILL...
    kube_env.stop_stale()
    assert not run.exists()  # ...until the next run

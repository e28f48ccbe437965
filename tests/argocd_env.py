"""A real Argo CD for the tests, beside a running kube_env.KubeEnv: redis (Debian's
redis-server), the repo-server, the application-controller and the applicationset-controller,
all on loopback, syncing git repositories the tests make (file:// URLs) into the API server.

The three Argo CD programs are one multi-call binary (ARGOCD_BINARY_NAME picks the program),
built from the Go module github.com/argoproj/argo-cd/v3 as a dependency of tests/argocd/go.mod,
so every downloaded module is verified against tests/argocd/go.sum. Built as a dependency, the
module's own `replace` lines do not apply: `pin` copies those that name published modules (the
k8s.io/* versions) into our go.mod and leaves out the one pointing at a folder module zips lack
(./gitops-engine, published as github.com/argoproj/argo-cd/gitops-engine/v3 at the same tag).
The binary is stripped and cached under CACHE/argocd/ keyed by version and go.sum, like the
API server's (tests/kube_env.py); its go.mod asks for a newer Go than the machine's, which the
go command fetches from the module proxy (GOTOOLCHAIN=auto).

    python -m tests.argocd_env pin v3.6.2   # rewrite tests/argocd/go.mod and go.sum
    python -m tests.argocd_env build        # build (or find) the binary

Use (the `argocd` fixture of tests/conftest.py):

    env = argocd_env.start(kube)            # kube: a running kube_env.KubeEnv
    try:
        url = env.repo_url(bare_repository)  # a file:// URL the repo-server reads
        env.kube.apply(application)          # an Application in env.namespace
        env.sync("demo", sha)                # sync by the Application's `operation` field
        env.wait_synced("demo", sha)         # Synced at sha, the operation Succeeded
    finally:
        env.close()                          # stops every process it started, by PID

Measured on 2 cores shared at load 15-24 (v3.6.2): a cold build 49 min wall (12 min of CPU;
164 s of it the download of the Go 1.27 toolchain and modules), a relink 37 s, a binary of
130 MB; a warm start (binary cached) with the API server about 30 s for the whole
tests/test_argocd_env.py; a first sync 4.8 s (the repo-server's first clone), a sync of a
new commit by `operation` 0.7 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from validator.deploy.net import free_ports

from . import kube_env
from .kube_env import PROJECT, Broken, KubeEnv, Unavailable

MODULE = "github.com/argoproj/argo-cd/v3"
GITOPS_ENGINE = "github.com/argoproj/argo-cd/gitops-engine/v3"
ARGOCD = kube_env.Build(
    "argocd",
    MODULE,
    {"argocd": "modelgate.test/argocd"},  # tests/argocd/main.go
    modules=PROJECT / "tests",
    cache="argocd",
)
NAMESPACE = "argocd"
CRD_FILES = ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")
RUNS = Path(tempfile.gettempdir()) / "modelgate-tests-argocd"


# --- pinning ----------------------------------------------------------------------------------


def argocd_gomod(version: str, upstream: str) -> str:
    """tests/argocd/go.mod for Argo CD `version`, from the module's own go.mod (`upstream`)."""
    go = re.search(r"^go (\S+)$", upstream, re.MULTILINE)
    published = {
        module: target
        for module, target in kube_env.replacements(upstream).items()
        if not target.startswith(".")
    }
    lines = [
        "// The Argo CD programs the tests run (tests/argocd_env.py): one multi-call binary.",
        f"// Written by `python -m tests.argocd_env pin {version}`: do not edit.",
        "module modelgate.test/argocd",
        "",
        f"go {go.group(1) if go else '1.26.0'}",
        "",
        "require (",
        f"\t{MODULE} {version}",
        # the module requires it at the same tag; named here so that a `replace` in its
        # go.mod pointing at ./gitops-engine is not needed
        f"\t{GITOPS_ENGINE} {version}",
        ")",
        "",
        "replace (",
        *(f"\t{module} => {target}" for module, target in sorted(published.items())),
        ")",
        "",
    ]
    return "\n".join(lines)


def pin(version: str) -> Path:
    """Rewrite tests/argocd/go.mod for `version` and resolve its go.sum."""
    upstream = kube_env.upstream_gomod(MODULE, version)
    ARGOCD.gomod.parent.mkdir(exist_ok=True)
    ARGOCD.gomod.write_text(argocd_gomod(version, upstream))
    ARGOCD.gosum.unlink(missing_ok=True)
    env = {**kube_env.go_environment(), "GOFLAGS": "-mod=mod"}
    subprocess.run([kube_env._go(), "mod", "tidy"], cwd=ARGOCD.gomod.parent, env=env, check=True)
    return ARGOCD.gomod


# --- running ----------------------------------------------------------------------------------

PROGRAMS = (
    "argocd-repo-server",
    "argocd-application-controller",
    "argocd-applicationset-controller",
)
APPLICATIONS = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/applications"


@dataclass
class ArgoCD:
    """Argo CD running against `kube`: Applications and ApplicationSets in `namespace` sync
    git repositories into it."""

    kube: KubeEnv
    run: Path  # this run's folder: logs, the repo-server's clones, redis's configuration
    source: Path  # the Argo CD module's folder (manifests/, hack/)
    version: str
    namespace: str = NAMESPACE
    seconds: dict[str, float] = field(default_factory=dict)  # how long each start step took
    processes: list[subprocess.Popen] = field(default_factory=list)

    def repo_url(self, bare_repo: Path) -> str:
        """The URL of a git repository on this machine, as the repo-server reads it."""
        return bare_repo.resolve().as_uri()

    def application(self, name: str) -> dict:
        """The Application as the API server has it ({} when there is none)."""
        status, answer = self.kube.request("GET", f"{APPLICATIONS}/{name}")
        return answer if status == 200 else {}

    def sync(self, name: str, revision: str, prune: bool = True) -> None:
        """Start a sync of the Application at `revision` by writing its `operation` field, as
        `argocd app sync` does (the Application's automated sync may stay off)."""
        sync: dict = {"revision": revision, "prune": prune}
        # the CLI copies the Application's sync options (CreateNamespace=true, say) into the
        # operation: the controller reads them from there
        options = self.application(name).get("spec", {}).get("syncPolicy", {}).get("syncOptions")
        if options:
            sync["syncOptions"] = options
        operation = {"initiatedBy": {"username": "modelgate"}, "sync": sync}
        self._patch(name, {"operation": operation})

    def refresh(self, name: str) -> None:
        """Ask the controller to compare the Application with git again now, its revision
        resolved anew (the annotation `argocd app get --hard-refresh` writes)."""
        annotation = {"argocd.argoproj.io/refresh": "hard"}
        self._patch(name, {"metadata": {"annotations": annotation}})

    def _patch(self, name: str, patch: dict) -> None:
        status, answer = self.kube.request(
            "PATCH", f"{APPLICATIONS}/{name}", patch, "application/merge-patch+json"
        )
        if status != 200:
            raise Broken(f"Application {name} could not be patched: {answer.get('message')}")

    def wait(
        self, name: str, done: Callable[[dict], bool], timeout: float = 120, what: str = ""
    ) -> dict:
        """The Application once `done(application)` holds; Broken, naming its last status and
        the controller's last lines, when it does not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        application: dict = {}
        while time.monotonic() < deadline:
            application = self.application(name)
            if application and done(application):
                return application
            self._check_running()
            time.sleep(0.2)
        shown = json.dumps(application.get("status", {}), sort_keys=True)[-1500:]
        raise Broken(
            f"Application {name} not {what or 'done'} after {timeout} s: {shown}\n"
            f"{_log_tail(self.run, 'argocd-application-controller')}"
        )

    def wait_synced(self, name: str, revision: str, timeout: float = 120) -> dict:
        """The Application once it is Synced at `revision` and its last operation Succeeded."""

        def synced(application: dict) -> bool:
            status = application.get("status", {})
            operation = status.get("operationState", {})
            if "operation" not in application and operation.get("phase") in ("Failed", "Error"):
                raise Broken(f"the sync of {name} failed: {operation.get('message')}")
            return (
                "operation" not in application
                and status.get("sync", {}).get("status") == "Synced"
                and status.get("sync", {}).get("revision") == revision
                and operation.get("phase") == "Succeeded"
                and operation.get("syncResult", {}).get("revision") == revision
            )

        return self.wait(name, synced, timeout, f"Synced at {revision}")

    def _check_running(self) -> None:
        for process, name in zip(self.processes, ("redis-server", *PROGRAMS), strict=False):
            if process.poll() is not None:
                raise Broken(
                    f"{name} exited with {process.returncode}:\n{_log_tail(self.run, name)}"
                )

    def close(self) -> None:
        kube_env.stop(self.processes)
        self.processes.clear()
        shutil.rmtree(self.run, ignore_errors=True)


def start(kube: KubeEnv) -> ArgoCD:
    """Build Argo CD (once), install its CRDs, namespace and configuration into `kube`, and
    start redis, the repo-server, the application-controller and the applicationset-controller
    on loopback; close() stops them. Unavailable where it cannot be built or run here."""
    started = time.monotonic()
    binary = _binary()
    missing = [name for name in ("redis-server", "git") if shutil.which(name) is None]
    if missing:
        raise Unavailable(f"{' and '.join(missing)} not installed (`make system-deps`)")
    version = ARGOCD.version()
    source = kube_env.downloaded(kube_env._go(), MODULE, version, ARGOCD.gosum.read_text())
    kube_env.stop_stale(RUNS)
    env = ArgoCD(kube, kube_env.new_run_folder(RUNS), source, version)
    env.seconds["binary found"] = round(time.monotonic() - started, 2)
    try:
        with kube_env._timed(env, "configuration applied"):  # type: ignore[arg-type]
            _configure(env)
        with kube_env._timed(env, "programs started"):  # type: ignore[arg-type]
            _start_programs(env, binary)
        return env
    except BaseException:
        env.close()
        raise


def _binary() -> Path:
    try:
        return kube_env.ensure_built(ARGOCD) / "argocd"
    except Broken as broken:
        if str(broken).startswith(str(ARGOCD.gomod.parent.relative_to(PROJECT))):
            raise  # tests/argocd/go.mod or go.sum: ours to fix
        # a compile or link that fails here (a machine short of memory for the link, say)
        version = ARGOCD.version()
        raise Unavailable(f"Argo CD {version} could not be built here: {broken}") from None


def _configure(env: ArgoCD) -> None:
    """What an Argo CD installation holds besides its programs: the CRDs, the namespace, the
    argocd-* ConfigMaps and Secret (their `part-of: argocd` labels are how the programs find
    them) and the `default` AppProject that argocd-server would otherwise create."""
    crds = [env.source / "manifests" / "crds" / name for name in CRD_FILES]
    _kubectl(env, "apply", "--server-side", "--force-conflicts", *_files(crds))
    for crd in ("applications", "applicationsets", "appprojects"):
        kube_env._wait_established(env.kube, f"{crd}.argoproj.io")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.namespace}}
    _kubectl(env, "apply", "--server-side", "-f", "-", input=json.dumps(namespace))
    config = sorted((env.source / "manifests" / "base" / "config").glob("argocd-*.yaml"))
    _kubectl(env, "apply", "--server-side", "-n", env.namespace, *_files(config))
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": env.namespace},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"namespace": "*", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
    _kubectl(env, "apply", "--server-side", "-f", "-", input=json.dumps(project))


def _files(paths: list[Path]) -> list[str]:
    return [argument for path in paths for argument in ("-f", str(path))]


def _kubectl(env: ArgoCD, *args: str, input: str | None = None) -> None:
    done = env.kube.kubectl(*args, input=input, timeout=120)
    if done.returncode != 0:
        raise Broken(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()[-1500:]}")


def _start_programs(env: ArgoCD, binary: Path) -> None:
    redis, repo, repo_metrics, controller_metrics, appset_metrics, probe, webhook = free_ports(7)
    _start_redis(env, redis)
    bin_folder = env.run / "bin"
    bin_folder.mkdir()
    for program in PROGRAMS:  # the multi-call binary under each program's name, in the run
        (bin_folder / program).symlink_to(binary)  # folder: a stale run's PIDs are found by it
    # the repo-server runs this script around `git` even with GPG off (the image ships it)
    wrapper = bin_folder / "git-verify-wrapper.sh"
    shutil.copyfile(env.source / "hack" / "git-verify-wrapper.sh", wrapper)
    wrapper.chmod(0o755)
    for folder in ("tmp", "tls", "ssh", "gpg"):
        (env.run / folder).mkdir()
    kubeconfig = str(env.kube.kubeconfig)
    redis_address = f"127.0.0.1:{redis}"
    repo_server = _spawn(env, "argocd-repo-server", [
        "--address", "127.0.0.1", "--port", str(repo),
        "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics),
        "--redis", redis_address, "--disable-tls", "--client-ca-path", "",
        "--logformat", "text",
    ])  # fmt: skip
    _wait_healthy(env, "argocd-repo-server", repo_server, repo_metrics)
    controller = _spawn(env, "argocd-application-controller", [
        "--kubeconfig", kubeconfig, "--namespace", env.namespace,
        "--redis", redis_address,
        "--repo-server", f"127.0.0.1:{repo}", "--repo-server-plaintext",
        "--metrics-port", str(controller_metrics),  # bound on every address: no flag to change it
        "--logformat", "text",
    ])  # fmt: skip
    _wait_healthy(env, "argocd-application-controller", controller, controller_metrics)
    appset = _spawn(env, "argocd-applicationset-controller", [
        "--kubeconfig", kubeconfig, "--namespace", env.namespace,
        "--argocd-repo-server", f"127.0.0.1:{repo}", "--repo-server-plaintext",
        "--metrics-addr", f"127.0.0.1:{appset_metrics}",
        "--probe-addr", f"127.0.0.1:{probe}", "--webhook-addr", f"127.0.0.1:{webhook}",
        "--enable-scm-providers=false", "--logformat", "text",
    ])  # fmt: skip
    # its health probe answers 404 (no check registered); its metrics server, once serving
    _wait_healthy(env, "argocd-applicationset-controller", appset, appset_metrics, "/metrics")


def _start_redis(env: ArgoCD, port: int) -> None:
    """redis with no persistence; its configuration file in the run folder, and named in its
    process title, so that a stale run's redis is found by its PID (kube_env.stop_stale)."""
    config = env.run / "redis.conf"
    config.write_text(
        f'bind 127.0.0.1\nport {port}\nsave ""\nappendonly no\ndir {env.run}\n'
        'proc-title-template "{title} {listen-addr} {config-file}"\n'
    )
    process = _spawn(env, "redis-server", [str(config)], program=shutil.which("redis-server"))
    kube_env._wait_until(
        env,  # type: ignore[arg-type]
        "redis-server",
        process,
        lambda: _redis_answers(port),
        timeout=30,
    )


def _redis_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as link:
        link.sendall(b"PING\r\n")
        return link.recv(16).startswith(b"+PONG")
    return False


def _spawn(env: ArgoCD, name: str, args: list[str], program: str | None = None) -> subprocess.Popen:
    log = (env.run / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [program or str(env.run / "bin" / name), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_environment(env, name),
        cwd=env.run,
        start_new_session=True,
        preexec_fn=kube_env._die_with_parent,
    )
    log.close()
    env.processes.append(process)
    (env.run / f"{name}.pid").write_text(str(process.pid))
    return process


def _environment(env: ArgoCD, name: str) -> dict[str, str]:
    return {
        **os.environ,
        "ARGOCD_BINARY_NAME": name,
        "PATH": f"{env.run / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        # https://kubernetes.default.svc, the in-cluster destination, is the KubeEnv's server
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "KUBECONFIG": str(env.kube.kubeconfig),
        "HOSTNAME": f"{name}-0",  # the controller's shard is the number after the last dash
        "TMPDIR": str(env.run / "tmp"),
        "ARGOCD_TLS_DATA_PATH": str(env.run / "tls"),
        "ARGOCD_SSH_DATA_PATH": str(env.run / "ssh"),
        "ARGOCD_GNUPGHOME": str(env.run / "gpg"),
        "ARGOCD_GPG_ENABLED": "false",
    }


def _wait_healthy(
    env: ArgoCD, name: str, process: subprocess.Popen, port: int, path: str = "/healthz"
) -> None:
    kube_env._wait_until(
        env,  # type: ignore[arg-type]
        name,
        process,
        lambda: _answers(port, path),
        timeout=120,
    )


def _answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(run: Path, name: str) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((run / f"{name}.log").read_text(errors="replace").splitlines()[-15:])
    return ""


def main(argv: list[str]) -> int:
    if argv[:1] == ["pin"] and len(argv) == 2:
        print(pin(argv[1]))
        return 0
    if argv == ["build"]:
        print(kube_env.ensure_built(ARGOCD))
        return 0
    print(__doc__.split("\n\n")[3], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A real Kubernetes API server for the tests: etcd and kube-apiserver on loopback, with RBAC,
client certificates for an admin and a deployer, a kubeconfig and the CRDs the tests need.
No kubelet and no controllers: objects are stored and validated, nothing runs (this is how
controller-runtime's envtest tests operators).

kube-apiserver and kubectl are built from the Go module k8s.io/kubernetes, etcd from
go.etcd.io/etcd/server/v3, each from a go.mod/go.sum of this repository (tests/kube/*/), so a
build is reproducible and every downloaded module is verified against go.sum. k8s.io/kubernetes
cannot be built as a dependency on its own (its go.mod points the k8s.io/* staging modules at
folders inside its tree): tests/kube/apiserver/go.mod replaces each one with its published
v0.Y release, the list read from k8s.io/kubernetes's own go.mod (`pin`, below, writes it).

kubectl comes from the same module rather than Debian's kubernetes-client: Debian's is years
older than the server (1.20 in bookworm; kubectl supports one minor version of skew), and one
version for both means a server-side apply or dry run behaves as that release documents.

Binaries are cached under CACHE/kube/ keyed by version and go.sum; the Go module and build
caches under CACHE/go/. What it starts it stops, by PID; a run that was killed leaves a run
folder whose owner is gone, and the next run stops what it started and removes it.

    python -m tests.kube_env pin kubernetes v1.37.2   # rewrite tests/kube/{apiserver,node}/go.mod
    python -m tests.kube_env pin etcd v3.7.3          # rewrite tests/kube/etcd/go.mod
    python -m tests.kube_env build                    # build (or find) the binaries
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from validator.deploy.lock import held
from validator.deploy.net import free_ports

PROJECT = Path(__file__).resolve().parents[1]
GO_MODULES = Path(__file__).resolve().parent / "kube"
# Folders of CRDs beside those of the Go modules (module_crds): Seldon Core v2 publishes no
# version of its operator module the module proxy serves, so its Model CRD comes from here.
CRD_DIRS = [
    Path(folder)
    for folder in os.environ.get(
        "MODELGATE_TEST_CRDS", str(PROJECT.parent / "shared" / "crds")
    ).split(os.pathsep)
    if folder
]
SERVICE_RANGE = "10.0.0.0/24"  # an allocation range inside the API server; no traffic goes there
ADMIN_GROUP = "system:masters"
DEPLOYER_USER = "modelgate-deployer"
DEPLOYER_GROUP = "modelgate:deployers"


def _cache_root() -> Path:
    if "MODELGATE_TEST_CACHE" in os.environ:
        return Path(os.environ["MODELGATE_TEST_CACHE"])
    system = Path("/var/cache/modelgate-tests")
    with contextlib.suppress(OSError):
        system.mkdir(parents=True, exist_ok=True)
    if os.access(system, os.W_OK):
        return system
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelgate-tests"


CACHE = _cache_root()
RUNS = Path(tempfile.gettempdir()) / "modelgate-tests-kube"


class Unavailable(Exception):
    """No API server can be had here (no Go, no Go module proxy, no openssl): tests skip."""


class Broken(Exception):
    """The harness itself failed (a build error, a server that would not start): tests fail."""


# --- building ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """One Go module folder of tests/kube/ and the programs built from it."""

    folder: str
    module: str  # the required module whose version names the build
    programs: dict[str, str]  # binary name -> Go package
    modules: Path = GO_MODULES  # the folder holding `folder`
    cache: str = "kube"  # CACHE/<cache>/<folder>/<key> holds the programs

    @property
    def gomod(self) -> Path:
        return self.modules / self.folder / "go.mod"

    @property
    def gosum(self) -> Path:
        return self.modules / self.folder / "go.sum"

    def version(self) -> str:
        return required_version(self.gomod.read_text(), self.module)

    def key(self) -> str:
        """The version and a digest of the folder's files: go.mod, go.sum and any Go source
        of our own (a main package)."""
        files = sorted(path for path in (self.modules / self.folder).iterdir() if path.is_file())
        digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
        return f"{self.version()}-{digest[:12]}"

    def output(self) -> Path:
        return CACHE / self.cache / self.folder / self.key()

    def ldflags(self) -> str:
        if self.module != "k8s.io/kubernetes":
            return "-s -w"
        version = self.version()
        minor = version.split(".")[1]
        stamp = []
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            stamp += [
                f"-X {package}.gitVersion={version}",
                f"-X {package}.gitMajor=1",
                f"-X {package}.gitMinor={minor}",
                f"-X {package}.gitTreeState=clean",
            ]
        return " ".join(["-s -w", *stamp])


APISERVER = Build(
    "apiserver",
    "k8s.io/kubernetes",
    {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
)
ETCD = Build("etcd", "go.etcd.io/etcd/server/v3", {"etcd": "go.etcd.io/etcd/server/v3"})
# A node beside the API server, for tests/kube_node.py (only built when a test asks for one).
NODE = Build(
    "node",
    "k8s.io/kubernetes",
    {
        "kubelet": "k8s.io/kubernetes/cmd/kubelet",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    },
)


# --- CRDs from Go modules -----------------------------------------------------------------------

CRD_MODULES = GO_MODULES / "crds"
# module -> (files in its zip, the CRD groups of them the tests install)
MODULE_CRDS = {
    "istio.io/api": (("kubernetes/customresourcedefinitions.gen.yaml",), ("security.istio.io",)),
    "github.com/kedacore/keda/v2": (
        ("config/crd/bases/keda.sh_scaledobjects.yaml",),
        ("keda.sh",),
    ),
    "github.com/kserve/kserve": (
        tuple(
            f"config/crd/full/serving.kserve.io_{plural}.yaml"
            for plural in ("inferenceservices", "servingruntimes", "clusterservingruntimes")
        ),
        ("serving.kserve.io",),
    ),
    "github.com/argoproj/argo-cd/v3": (
        tuple(
            f"manifests/crds/{kind}-crd.yaml"
            for kind in ("application", "applicationset", "appproject")
        ),
        ("argoproj.io",),
    ),
}


def module_crds() -> Path:
    """A folder of the CRDs MODULE_CRDS names, one file each, taken from the modules pinned in
    tests/kube/crds/go.mod after go.sum has vouched for them; cached."""
    gomod, gosum = CRD_MODULES / "go.mod", CRD_MODULES / "go.sum"
    digest = hashlib.sha256(gomod.read_bytes() + gosum.read_bytes()).hexdigest()[:12]
    output = CACHE / "kube" / "crds" / digest
    if output.is_dir():
        return output
    go = _go()
    output.parent.mkdir(parents=True, exist_ok=True)
    with held(output.parent / ".lock"):
        if not output.is_dir():
            _write_module_crds(go, gomod.read_text(), gosum.read_text(), output)
    return output


def _write_module_crds(go: str, gomod: str, gosum: str, output: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=output.parent))
    try:
        for module, (names, groups) in MODULE_CRDS.items():
            folder = downloaded(go, module, required_version(gomod, module), gosum)
            for name in names:
                for crd in yaml.load_all((folder / name).read_bytes(), Loader=_SafeLoader):
                    if isinstance(crd, dict) and crd.get("spec", {}).get("group") in groups:
                        target = staging / f"{crd['metadata']['name']}.yaml"
                        text = yaml.dump(crd, Dumper=_SafeDumper, sort_keys=False)
                        target.write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # KServe's CRD is 2 MB of YAML
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def downloaded(go: str, module: str, version: str, gosum: str, modules: Path = CRD_MODULES) -> Path:
    """The module's folder in the module cache, its hash the one go.sum holds (the go.sum of
    `modules`, the folder the go command runs in)."""
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        cwd=modules, env=go_environment(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    answer = json.loads(done.stdout or "{}") if done.stdout.strip().startswith("{") else {}
    if done.returncode != 0 or "Dir" not in answer:
        why = answer.get("Error") or done.stderr.strip()[-500:]
        raise Unavailable(f"{module}@{version} could not be downloaded: {why}")
    expected = f"{module} {version} {answer.get('Sum')}"
    if expected not in gosum.splitlines():
        raise Broken(f"{module}@{version} has hash {answer.get('Sum')}, not the one in go.sum")
    return Path(answer["Dir"])


def required_version(gomod: str, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    if match is None:
        raise Broken(f"the go.mod does not require {module}")
    return match.group(1)


def ensure_built(build: Build) -> Path:
    """The folder holding the build's programs, building them first when not cached."""
    output = build.output()
    if _complete(build, output):
        return output
    go = _go()
    output.parent.mkdir(parents=True, exist_ok=True)
    with held(output.parent / ".lock"):  # another test run may be building the same
        if _complete(build, output):
            return output
        _build(build, go, output)
    return output


def _complete(build: Build, output: Path) -> bool:
    return all((output / name).is_file() for name in build.programs)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise Unavailable("no Go toolchain (`go`) on PATH: install Go >= 1.21 to build it")
    done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go1\.(\d+)", done.stdout.strip())
    if match is None or int(match.group(1)) < 21:
        raise Unavailable(
            f"Go {done.stdout.strip() or '?'} is too old to fetch the toolchain "
            "tests/kube/*/go.mod asks for: install Go >= 1.21"
        )
    return go


def go_environment() -> dict[str, str]:
    env = {
        **os.environ,
        "GOMODCACHE": str(CACHE / "go" / "mod"),
        "GOCACHE": str(CACHE / "go" / "build"),
        "GOFLAGS": "-mod=readonly -buildvcs=false",  # go.mod and go.sum as committed, or fail
        "CGO_ENABLED": "0",
        "GOWORK": "off",
    }
    env.setdefault("GOTOOLCHAIN", "auto")  # Go >= 1.21 fetches the version go.mod asks for
    return env


def _build(build: Build, go: str, output: Path) -> None:
    env = go_environment()
    folder = build.modules / build.folder
    log = output.parent / f"{build.key()}.log"
    packages = list(build.programs.values())
    started = time.monotonic()
    # Downloading first tells "no module proxy here" (skip) from a broken build (fail).
    fetched = _go_run([go, "list", "-deps", *packages], folder, env, log)
    if fetched.returncode != 0:
        lines = fetched.stderr.strip().splitlines()
        message = "\n".join(dict.fromkeys(x for x in lines if not x.startswith("go: downloading")))
        message = message[-800:]
        if any(word in message for word in ("go.sum", "go.mod", "SECURITY ERROR")):
            raise Broken(
                f"{folder.relative_to(PROJECT)}: {message}"
            )  # ours to fix, not the network
        raise Unavailable(f"the Go modules for {build.module} could not be downloaded: {message}")
    downloaded = time.monotonic()
    for leftover in output.parent.glob(
        ".building-*"
    ):  # of a build killed midway (we hold the lock)
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=output.parent))
    try:
        for name, package in build.programs.items():
            flags = ["-trimpath", f"-ldflags={build.ldflags()}", "-o", str(staging / name)]
            done = _go_run([go, "build", *flags, package], folder, env, log)
            if done.returncode != 0:
                raise Broken(f"go build {package} failed (log: {log}): {done.stderr[-1500:]}")
        shutil.copyfile(build.gomod, staging / "go.mod")
        shutil.copyfile(build.gosum, staging / "go.sum")
        record = {
            "module": build.module,
            "version": build.version(),
            "go": subprocess.run(
                [go, "version"], capture_output=True, text=True, env=env, check=False
            ).stdout.strip(),
            "download_seconds": round(downloaded - started, 1),
            "build_seconds": round(time.monotonic() - downloaded, 1),
        }
        (staging / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the programs from other users
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _go_run(
    command: list[str], folder: Path, env: dict[str, str], log: Path
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * 3600,  # a cold kube-apiserver build took over an hour on 2 cores at load 20
        check=False,
        preexec_fn=_lowest_priority,  # a build must not slow the tests running beside it
    )
    with log.open("a") as stream:
        stream.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
    return done


def _lowest_priority() -> None:
    os.nice(19)


# --- pinning ----------------------------------------------------------------------------------


def staging_modules(kubernetes_gomod: str) -> list[str]:
    """The k8s.io/* modules k8s.io/kubernetes's go.mod takes from its own staging/ folder."""
    return sorted(set(re.findall(r"(k8s\.io/[\w.-]+) => \./staging/", kubernetes_gomod)))


def replacements(gomod: str) -> dict[str, str]:
    """A go.mod's `replace` lines: module -> what replaces it."""
    return dict(re.findall(r"^\s*(?:replace\s+)?(\S+) => (.+?)\s*$", gomod, re.MULTILINE))


def upstream_gomod(module: str, version: str) -> str:
    """A module's go.mod as the Go module proxy serves it (downloaded into CACHE/go/mod)."""
    env = go_environment()
    done = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env={**env, "GOFLAGS": "-mod=mod"},
        cwd=tempfile.gettempdir(),
        check=False,
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "GoMod" not in info:
        raise Unavailable(f"{module}@{version}: {info.get('Error') or done.stderr.strip()}")
    return Path(info["GoMod"]).read_text()


def apiserver_gomod(version: str, kubernetes_gomod: str, build: Build = APISERVER) -> str:
    """The go.mod of a build from k8s.io/kubernetes (kube-apiserver and kubectl by default)."""
    staging = "v0." + version.removeprefix("v1.")  # v1.37.2 -> v0.37.2
    go = re.search(r"^go (\S+)$", kubernetes_gomod, re.MULTILINE)
    godebug = re.search(r"^godebug (.+)$", kubernetes_gomod, re.MULTILINE)
    what = {APISERVER.folder: "The kube-apiserver and kubectl the tests run (tests/kube_env.py)."}
    lines = [
        "// " + what.get(build.folder, "The node programs tests/kube_node.py runs."),
        f"// Written by `python -m tests.kube_env pin kubernetes {version}`: do not edit.",
        f"module modelgate.test/kube/{build.folder}",
        "",
        f"go {go.group(1) if go else '1.26.0'}",
        "",
    ]
    if godebug:  # build with the GODEBUG defaults upstream's binaries have
        lines += [f"godebug {godebug.group(1)}", ""]
    lines += ["tool (", *(f"\t{p}" for p in build.programs.values()), ")", ""]
    lines += [f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{m} => {m} {staging}" for m in staging_modules(kubernetes_gomod)]
    return "\n".join([*lines, ")", ""])


def etcd_gomod(version: str) -> str:
    return "\n".join(
        [
            "// The etcd the tests run (tests/kube_env.py).",
            f"// Written by `python -m tests.kube_env pin etcd {version}`: do not edit.",
            "module modelgate.test/kube/etcd",
            "",
            "go 1.26.0",
            "",
            f"tool {ETCD.programs['etcd']}",
            "",
            f"require {ETCD.module} {version}",
            "",
        ]
    )


def pin(what: str, version: str) -> Path:
    """Rewrite tests/kube/FOLDER/go.mod for a new version and resolve its go.sum."""
    if what == "kubernetes":
        upstream = upstream_gomod(APISERVER.module, version)
        builds = [(b, apiserver_gomod(version, upstream, b)) for b in (APISERVER, NODE)]
    elif what == "etcd":
        builds = [(ETCD, etcd_gomod(version))]
    else:
        raise ValueError(f"pin kubernetes|etcd VERSION, not {what!r}")
    env = {**go_environment(), "GOFLAGS": "-mod=mod"}
    for build, text in builds:
        build.gomod.parent.mkdir(exist_ok=True)
        build.gomod.write_text(text)
        build.gosum.unlink(missing_ok=True)
        subprocess.run([_go(), "mod", "tidy"], cwd=build.gomod.parent, env=env, check=True)
    return builds[0][0].gomod


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A user the API server knows from its client certificate (CN = user, O = groups)."""

    context: str  # its context in the kubeconfig
    user: str
    groups: tuple[str, ...]
    certificate: Path
    key: Path


def _json(body: bytes) -> dict:
    try:
        return json.loads(body or b"{}")
    except ValueError:  # a plain-text answer, such as 404 page not found
        return {"message": body.decode(errors="replace").strip()}


@dataclass(frozen=True)
class Resource:
    """A kind as the API server serves it."""

    prefix: str  # /api/v1 or /apis/GROUP/VERSION
    plural: str
    namespaced: bool

    def path(self, namespace: str, name: str) -> str:
        scope = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{self.prefix}{scope}/{self.plural}/{name}"


@dataclass
class KubeEnv:
    server: str  # https://127.0.0.1:PORT
    kubeconfig: Path
    admin: Identity
    deployer: Identity
    bin: Path  # kube-apiserver and kubectl
    run: Path  # this run's folder: certificates, logs, etcd's data
    ca: Path
    versions: dict[str, str]
    crds: list[str] = field(default_factory=list)  # names of the CRDs installed
    crd_problem: str = ""  # why a CRD the tests need is not installed
    seconds: dict[str, float] = field(default_factory=dict)  # how long each start step took
    processes: list[subprocess.Popen] = field(default_factory=list)
    _resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        identity: Identity | None = None,
    ) -> tuple[int, dict]:
        """One call to the API server as `identity` (the admin by default): (status, answer)."""
        data = None if body is None else json.dumps(body).encode()
        call = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(call, context=self._tls(identity), timeout=60) as answer:
                return answer.status, _json(answer.read())
        except urllib.error.HTTPError as refusal:
            return refusal.code, _json(refusal.read())

    def _tls(self, identity: Identity | None) -> ssl.SSLContext:
        identity = identity or self.admin
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(identity.certificate), str(identity.key))
        return context

    def resource(self, api_version: str, kind: str) -> Resource | None:
        """Where the server serves a kind (discovery), or None when it does not."""
        if api_version not in self._resources:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            status, answer = self.request("GET", prefix)
            self._resources[api_version] = {
                served["kind"]: Resource(prefix, served["name"], served["namespaced"])
                for served in answer.get("resources", []) if status == 200
                if "/" not in served["name"]  # not a subresource such as deployments/status
            }  # fmt: skip
        return self._resources[api_version].get(kind)

    def apply(
        self,
        document: dict,
        dry_run: bool = False,
        identity: Identity | None = None,
        field_manager: str = "modelgate",
    ) -> tuple[int, dict]:
        """Server-side apply of one object, as `kubectl apply --server-side
        --validate=strict [--dry-run=server]` sends it: (status, the object or the refusal)."""
        resource = self.resource(document["apiVersion"], document["kind"])
        if resource is None:
            raise LookupError(f"{document['apiVersion']} {document['kind']} is not served")
        metadata = document["metadata"]
        query = {"fieldManager": field_manager, "fieldValidation": "Strict", "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        path = resource.path(metadata.get("namespace") or "default", metadata["name"])
        return self.request(
            "PATCH",
            f"{path}?{urllib.parse.urlencode(query)}",
            document,
            content_type="application/apply-patch+yaml",  # JSON is YAML
            identity=identity,
        )

    def kubectl(
        self,
        *args: str,
        identity: Identity | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        context = (identity or self.admin).context
        return subprocess.run(
            [str(self.bin / "kubectl"), f"--context={context}", *args],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            timeout=timeout,
            check=False,
        )

    def serves_or_skip(self, api_version: str, kind: str) -> None:
        """Skip the calling test when the server has no CRD for the kind."""
        if self.resource(api_version, kind) is None:
            import pytest

            why = self.crd_problem or "none among the CRDs at hand"
            pytest.skip(f"no {api_version} {kind} CRD: {why}")

    def kubeconfig_for(self, identity: Identity) -> Path:
        """A kubeconfig whose current context is `identity`'s, for programs run as it."""
        path = self.run / f"kubeconfig-{identity.context}"
        config = json.loads(self.kubeconfig.read_text())
        path.write_text(json.dumps({**config, "current-context": identity.context}, indent=2))
        path.chmod(0o600)
        return path

    def resident_megabytes(self) -> dict[str, int]:
        """Each server's resident memory now (VmRSS)."""
        sizes = {}
        for process in self.processes:
            name = Path(str(process.args[0])).name
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[name] = int(line.split()[1]) // 1024
        return sizes

    def close(self) -> None:
        stop(self.processes)
        self.processes.clear()
        shutil.rmtree(self.run, ignore_errors=True)


SELDON_MODEL_CRD = "models.mlops.seldon.io"


def default_crd_dirs() -> list[Path]:
    """MODELGATE_TEST_CRDS's folders (Seldon's Model CRD), then the CRDs of the Go modules
    (KServe, Argo CD, Istio, KEDA), which win over a folder's of the same name. Unavailable
    where the module proxy does not answer."""
    return [*(folder for folder in CRD_DIRS if folder.is_dir()), module_crds()]


def missing_crds_problem(files: Sequence[Path]) -> str:
    """Why the Seldon Core v2 Model CRD is not among `files`, or "" when it is."""
    if any(path.read_text().find(f"name: {SELDON_MODEL_CRD}") >= 0 for path in files):
        return ""
    shown = ", ".join(str(folder) for folder in CRD_DIRS) or "none given"
    return (
        f"the Seldon Core v2 Model CRD ({SELDON_MODEL_CRD}), which no package registry serves, "
        f"is in no folder of MODELGATE_TEST_CRDS ({shown})"
    )


def start(
    crd_dirs: Sequence[Path] | None = None,
    apiserver_args: Callable[[KubeEnv], Sequence[str]] | None = None,
) -> KubeEnv:
    """Build (once), start etcd and kube-apiserver, install the CRDs; close() stops them.
    `apiserver_args(env)` are added to kube-apiserver's (env.run holds the certificates)."""
    apiserver_bin = ensure_built(APISERVER)
    etcd_bin = ensure_built(ETCD)
    if shutil.which("openssl") is None:
        raise Unavailable("openssl is not installed (it makes the test certificates)")
    stop_stale()
    run = new_run_folder()
    try:
        admin, deployer = _certificates(run / "pki")
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)
        raise
    etcd_port, peer_port, api_port = free_ports(3)
    env = KubeEnv(
        server=f"https://127.0.0.1:{api_port}",
        kubeconfig=run / "kubeconfig",
        admin=admin,
        deployer=deployer,
        bin=apiserver_bin,
        run=run,
        ca=run / "pki" / "ca.crt",
        versions={APISERVER.module: APISERVER.version(), ETCD.module: ETCD.version()},
    )
    try:
        with _timed(env, "etcd ready"):
            _start_etcd(env, etcd_bin / "etcd", etcd_port, peer_port)
        with _timed(env, "kube-apiserver ready"):
            extra = apiserver_args(env) if apiserver_args else ()
            _start_apiserver(env, api_port, f"http://127.0.0.1:{etcd_port}", extra)
        _write_kubeconfig(env)
        with _timed(env, "CRDs established"):
            _install_crds(env, default_crd_dirs() if crd_dirs is None else crd_dirs)
            if crd_dirs is None:
                env.crd_problem = missing_crds_problem(crd_files(CRD_DIRS))
        return env
    except BaseException:
        env.close()
        raise


@contextlib.contextmanager
def _timed(env: KubeEnv, step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    env.seconds[step] = round(time.monotonic() - started, 2)


def new_run_folder(runs: Path = RUNS) -> Path:
    runs.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    (run / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    return run


def _start_time(pid: int) -> str:
    """When a process started (field 22 of /proc/PID/stat): tells a PID from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def stop_stale(runs: Path = RUNS) -> None:
    """Runs whose test process is gone (killed before its `finally`): stop their servers, by the
    PIDs they recorded, and remove their folders. Runs of live test processes are left alone."""
    if not runs.is_dir():
        return
    for run in runs.glob("run-*"):
        try:
            pid, started = (run / "owner").read_text().split()
        except (OSError, ValueError):
            pid, started = "0", ""
        if _start_time(int(pid)) == started and started:
            continue
        for pidfile in run.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                _kill_if_ours(int(pidfile.read_text()), run)
        shutil.rmtree(run, ignore_errors=True)


def _kill_if_ours(pid: int, run: Path) -> None:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if str(run).encode() not in command:  # the PID now belongs to someone else
        return
    os.kill(pid, signal.SIGKILL)  # orphaned test servers: no state worth a clean exit
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not exited(pid):
        time.sleep(0.1)


def exited(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def _die_with_parent() -> None:
    """In the child: the kernel kills it when the test process dies, even by SIGKILL (SIGTERM
    would start a graceful shutdown that can wait on an etcd already gone)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _spawn(env: KubeEnv, name: str, command: list[str]) -> subprocess.Popen:
    log = (env.run / f"{name}.log").open("wb")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C reaches pytest, whose `finally` stops it in order
        preexec_fn=_die_with_parent,
    )
    log.close()
    env.processes.append(process)
    (env.run / f"{name}.pid").write_text(str(process.pid))
    return process


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate each process still running, last started first, killing one that does
    not end within 20 s."""
    for process in reversed(processes):  # the API server before its etcd
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _log_tail(env: KubeEnv, name: str) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((env.run / f"{name}.log").read_text(errors="replace").splitlines()[-15:])
    return ""


def _start_etcd(env: KubeEnv, binary: Path, port: int, peer_port: int) -> None:
    client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
    process = _spawn(
        env,
        "etcd",
        [
            str(binary),
            "--name=test",
            f"--data-dir={env.run / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",  # a throwaway store: durability buys nothing here
            "--log-level=warn",
        ],
    )
    _wait_until(
        env, "etcd", process, lambda: _get(f"{client}/health", None).get("health") == "true"
    )


def _start_apiserver(env: KubeEnv, port: int, etcd: str, extra: Sequence[str] = ()) -> None:
    pki = env.run / "pki"
    process = _spawn(
        env,
        "kube-apiserver",
        [
            str(env.bin / "kube-apiserver"),
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the `kubernetes` Service's endpoints: nothing here reaches the server through it,
            # and the reconciler refuses loopback addresses
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--cert-dir={env.run / 'apiserver'}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={env.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # no controller-manager creates the namespaces' default ServiceAccount
            "--disable-admission-plugins=ServiceAccount",
            *extra,
        ],
    )
    context = env._tls(env.admin)
    _wait_until(
        env,
        "kube-apiserver",
        process,
        lambda: _get(f"{env.server}/readyz", context).get("ok") is True,
        timeout=180,
    )


def _get(url: str, context: ssl.SSLContext | None) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            body = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    try:
        return json.loads(body) if body.startswith("{") else {"ok": body.strip() == "ok"}
    except ValueError:
        return {}


def _wait_until(
    env: KubeEnv,
    name: str,
    process: subprocess.Popen,
    ready: Callable[[], bool],
    timeout: float = 60,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            raise Broken(f"{name} exited with {process.returncode}:\n{_log_tail(env, name)}")
        time.sleep(0.1)
    raise Broken(f"{name} not ready after {timeout} s:\n{_log_tail(env, name)}")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Broken(f"openssl {args[0]} failed: {done.stderr.strip()[-400:]}")


def _certificates(pki: Path) -> tuple[Identity, Identity]:
    """A CA, the server's certificate, a client certificate per identity, service-account keys.
    P-256 keys: as good as RSA here and made in milliseconds."""
    pki.mkdir(parents=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *curve, "-days", "7", "-subj", "/CN=modelgate-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", "ca.key", "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    _sign(pki, "serving", "/CN=kube-apiserver", "serverAuth",
          "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc")  # fmt: skip
    _sign(pki, "admin", f"/O={ADMIN_GROUP}/CN=modelgate-test-admin", "clientAuth")
    _sign(pki, "deployer", f"/O={DEPLOYER_GROUP}/CN={DEPLOYER_USER}", "clientAuth")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    admin = Identity(
        "admin", "modelgate-test-admin", (ADMIN_GROUP,), pki / "admin.crt", pki / "admin.key"
    )
    deployer = Identity(
        "deployer", DEPLOYER_USER, (DEPLOYER_GROUP,), pki / "deployer.crt", pki / "deployer.key"
    )
    return admin, deployer


def _sign(pki: Path, name: str, subject: str, usage: str, extra: str = "") -> None:
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-new", *curve, "-subj", subject, "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=pki)  # fmt: skip
    extensions = pki / f"{name}.ext"
    extensions.write_text(
        f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\n{extra}\n"
    )
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "7", "-extfile", extensions.name,
             "-out", f"{name}.crt", cwd=pki)  # fmt: skip


def _write_kubeconfig(env: KubeEnv) -> None:
    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modelgate-test",
                "cluster": {"server": env.server, "certificate-authority-data": data(env.ca)},
            }
        ],
        "users": [
            {
                "name": identity.context,
                "user": {
                    "client-certificate-data": data(identity.certificate),
                    "client-key-data": data(identity.key),
                },
            }
            for identity in (env.admin, env.deployer)
        ],
        "contexts": [
            {
                "name": identity.context,
                "context": {"cluster": "modelgate-test", "user": identity.context},
            }
            for identity in (env.admin, env.deployer)
        ],
        "current-context": env.admin.context,
    }
    env.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    env.kubeconfig.chmod(0o600)


def crd_files(crd_dirs: Sequence[Path]) -> list[Path]:
    """The CRD files of the folders, one per CRD name: of two files defining one CRD, the one
    in the later folder (as crds.load_dirs keeps the later folder's schema)."""
    by_name: dict[str, Path] = {}
    for folder in crd_dirs:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            text = path.read_text()
            if re.search(r"^kind:\s*CustomResourceDefinition\s*$", text, re.MULTILINE):
                name = re.search(r"^metadata:\n(?:  .*\n)*?  name: *(\S+)", text, re.MULTILINE)
                by_name[name.group(1) if name else str(path)] = path
    return sorted(by_name.values())


def _install_crds(env: KubeEnv, crd_dirs: Sequence[Path]) -> None:
    files = crd_files(crd_dirs)
    if not files:
        shown = ", ".join(str(folder) for folder in crd_dirs) or "none given"
        env.crd_problem = f"no CRD files in {shown} (MODELGATE_TEST_CRDS)"
        return
    arguments = [argument for path in files for argument in ("-f", str(path))]
    done = env.kubectl("apply", "--server-side", "-o", "name", *arguments, timeout=300)
    if done.returncode != 0:
        raise Broken(f"the CRDs were not accepted: {done.stderr.strip()[-1500:]}")
    env.crds = [line.split("/", 1)[1] for line in done.stdout.split()]
    for name in env.crds:
        _wait_established(env, name)


def _wait_established(env: KubeEnv, name: str, timeout: float = 120) -> None:
    """Until the CRD serves its kind (`kubectl wait` fails when it looks before the first
    condition is written)."""
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    deadline = time.monotonic() + timeout
    conditions: list[dict] = []
    while time.monotonic() < deadline:
        conditions = env.request("GET", path)[1].get("status", {}).get("conditions") or []
        established = next((c for c in conditions if c.get("type") == "Established"), {})
        if established.get("status") == "True":
            return
        time.sleep(0.1)
    raise Broken(f"CRD {name} not established after {timeout} s: {conditions}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["pin"] and len(argv) == 3:
        print(pin(argv[1], argv[2]))
        return 0
    if argv == ["build"]:
        for build in (APISERVER, ETCD):
            print(ensure_built(build))
        return 0
    print(__doc__.split("\n\n")[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

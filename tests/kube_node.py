"""A node for the tests' API server: kube-controller-manager, kube-scheduler and a kubelet on
Debian's containerd, runc and CNI plugins, so that a rendered Deployment really runs as a pod
and `modelgate deploy --target kubernetes` smoke-tests it through a port-forward.

The programs are built from k8s.io/kubernetes like the API server (tests/kube/node/go.mod,
cached); the pod sandboxes' pause program from tests/kube/pause/. Nothing is pulled: the pause
image is made from that program, and the model image is the iris image tests/docker_env.py
builds, read out of its local registry's storage (no registry process) and imported into this
run's containerd.

Everything lives in the API server's run folder: containerd's root, state and socket, runc's
state, the CNI configuration and address leases, the kubelet's root, and a cgroup root of its
own (cgroupfs driver; cgroup v1 is allowed explicitly, as this machine has it). The pod network
is a bridge of its own with a /24 of its own; no iptables rule is added (no portmap, no
masquerading). close() deletes the pods and waits for the kubelet to tear them down, then stops
everything, and removes the bridge, the mounts and the cgroups left over.

Opt-in: MODELGATE_TEST_KUBELET=1, as root (containerd and the kubelet need it). Without it, or
without containerd, runc, the CNI plugins or the iris image, the tests skip and say which.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import docker_env, kube_env
from .kube_env import CACHE, GO_MODULES, Broken, KubeEnv, Unavailable

OPT_IN = "MODELGATE_TEST_KUBELET"
PAUSE_IMAGE = "modelgate.test/pause:1"
NODE_NAME = "modelgate-node"
CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CGROUP = Path("/sys/fs/cgroup")


@dataclass
class Node:
    kube: KubeEnv
    image: str  # the iris model image by digest, as this node's containerd has it
    folder: Path  # kube.run/node
    bridge: str
    cgroup_root: str
    seconds: dict[str, float] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    pods: list[str] = field(default_factory=list)  # UIDs of the pods that ran here

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        socket_path = self.folder / "containerd.sock"
        return subprocess.run(
            ["ctr", "--address", str(socket_path), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        try:
            self._stop_pods()
        finally:
            for name in ("kube-controller-manager", "kube-scheduler", "kubelet"):
                _stop(self.processes.get(name))
            self._kill_leftover_tasks()
            _stop(self.processes.get("containerd"))
            _unmount_under(self.folder)
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
            _remove_cgroups(self.cgroup_root)
            _remove_pod_logs(self.pods)
            self.kube.close()

    def _stop_pods(self) -> None:
        """Pods deleted through the API, and the kubelet given time to stop their containers
        and tear their network down (CNI DEL), as a node being drained."""
        _stop(self.processes.get("kube-controller-manager"))  # nothing makes new pods
        if self.processes.get("kubelet") is None or self.processes["kubelet"].poll() is not None:
            return
        listed = self.kube.kubectl("get", "pods", "--all-namespaces", "-o", "json").stdout
        self.pods += [pod["metadata"]["uid"] for pod in json.loads(listed or "{}").get("items", [])]
        self.kube.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false"
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.ctr("tasks", "list", "--quiet").stdout.split():
                return
            time.sleep(0.5)

    def _kill_leftover_tasks(self) -> None:
        if self.processes.get("containerd") is None:
            return
        for task in self.ctr("tasks", "list", "--quiet").stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task)
        time.sleep(0.5)
        for task in self.ctr("tasks", "list", "--quiet").stdout.split():
            self.ctr("tasks", "delete", "--force", task)
        for container in self.ctr("containers", "list", "--quiet").stdout.split():
            self.ctr("containers", "delete", container)


def start() -> Node:
    """A node beside a new API server, with the iris image in its containerd."""
    _requirements()
    archive, image = _iris_archive()
    binaries = kube_env.ensure_built(kube_env.NODE)
    pause = _pause_archive()
    started = time.monotonic()
    kube = kube_env.start(apiserver_args=_apiserver_args)
    folder = kube.run / "node"
    folder.mkdir()
    suffix = f"{random.randrange(16**6):06x}"
    node = Node(kube, image, folder, f"mg{suffix}", f"/modelgate-{suffix}")
    node.seconds["API server"] = round(time.monotonic() - started, 1)
    try:
        with _timed(node, "containerd ready"):
            _start_containerd(node)
        with _timed(node, "images imported"):
            _import(node, pause, archive, image)
        with _timed(node, "node Ready"):
            _start_programs(node, binaries)
        return node
    except BaseException:
        node.close()
        raise


@contextlib.contextmanager
def _timed(node: Node, step: str) -> Any:
    started = time.monotonic()
    yield
    node.seconds[step] = round(time.monotonic() - started, 1)


def _requirements() -> None:
    if os.environ.get(OPT_IN) != "1":
        raise Unavailable(f"a node is opt-in ({OPT_IN}=1): it runs containers as root")
    if os.geteuid() != 0:
        raise Unavailable("a node needs root (containerd, runc and the kubelet)")
    for program in ("containerd", "ctr", "runc", "ip", "mount"):
        if shutil.which(program) is None:
            raise Unavailable(f"{program} is not installed (apt-get install containerd runc)")
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN / plugin).is_file():
            raise Unavailable(f"no CNI plugin {CNI_BIN / plugin} (containernetworking-plugins)")
    _node_ip()


def _node_ip() -> str:
    """The address the kubelet registers: a routable one (it refuses loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # no packet is sent: this only picks a route
        except OSError as exc:
            raise Unavailable(f"no IPv4 route for the node's address: {exc}") from None
        return probe.getsockname()[0]


def _apiserver_args(kube: KubeEnv) -> list[str]:
    pki = kube.run / "pki"
    return [  # port-forward, logs and exec reach the kubelet with the admin's certificate
        f"--kubelet-client-certificate={pki / 'admin.crt'}",
        f"--kubelet-client-key={pki / 'admin.key'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


# --- images ------------------------------------------------------------------------------------


def _iris_archive() -> tuple[Path, str]:
    """The iris image from tests/docker_env.py's registry storage as an OCI archive for `ctr
    images import`, and its reference by digest."""
    storage = docker_env.CACHE / "registry" / "docker" / "registry" / "v2"
    repository = docker_env.MODEL_REPOSITORY.split("/", 1)[1]
    if not docker_env.MODEL_CONTEXT.is_dir():
        raise Unavailable("no iris image yet: tests/test_deploy_docker.py builds it")
    tag = docker_env.model_tag()
    link = storage / "repositories" / repository / "_manifests" / "tags" / tag / "current" / "link"
    if not link.is_file():
        raise Unavailable(f"the iris image {tag} is not in {storage}: run the docker tests first")
    digest = link.read_text().strip()
    archive = CACHE / "kube" / "images" / f"iris-{digest.split(':')[1][:16]}.tar"
    name = f"{docker_env.MODEL_REPOSITORY}@{digest}"
    if not archive.is_file():

        def blob(of: str) -> Path:
            hexdigest = of.split(":")[1]
            return storage / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"

        manifest = blob(digest).read_bytes()
        parsed = json.loads(manifest)
        blobs = {
            each["digest"]: blob(each["digest"]) for each in [parsed["config"], *parsed["layers"]]
        }
        _write_layout(archive, name, manifest, parsed["mediaType"], blobs)
        for older in archive.parent.glob("iris-*.tar"):  # of a context that changed since
            if older != archive:
                older.unlink(missing_ok=True)
    return archive, name


def _pause_archive() -> Path:
    """The pause image, built from tests/kube/pause/ (cached by its sources)."""
    source = GO_MODULES / "pause"
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(source.iterdir()))).hexdigest()
    archive = CACHE / "kube" / "images" / f"pause-{key[:12]}.tar"
    if archive.is_file():
        return archive
    binary = archive.with_suffix(".bin")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**kube_env.go_environment(), "GOFLAGS": "-mod=mod -buildvcs=false"}
    done = subprocess.run(
        [shutil.which("go") or "go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary)],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise Broken(f"the pause program did not build: {done.stderr[-800:]}")
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(binary, arcname="pause")
    layer_digest = _digest(layer.getvalue())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer.getvalue()),
                }
            ],
        }
    ).encode()
    blobs = {layer_digest: layer.getvalue(), _digest(config): config}
    media_type = "application/vnd.oci.image.manifest.v1+json"
    _write_layout(archive, PAUSE_IMAGE, manifest, media_type, blobs)
    binary.unlink()
    return archive


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_layout(
    archive: Path, name: str, manifest: bytes, media_type: str, blobs: dict[str, bytes | Path]
) -> None:
    """An OCI image layout in a tar file, written whole or not at all."""
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": media_type,
                "digest": _digest(manifest),
                "size": len(manifest),
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, content in {_digest(manifest): manifest, **blobs}.items():
            where = f"blobs/sha256/{digest.split(':')[1]}"
            if isinstance(content, Path):
                tar.add(content, arcname=where)
            else:
                add(where, content)
    os.replace(partial, archive)


def _import(node: Node, *archives_and_image: Any) -> None:
    pause, archive, image = archives_and_image
    for each in (pause, archive):
        done = node.ctr("images", "import", str(each))
        if done.returncode != 0:
            raise Broken(f"ctr images import {each.name} failed: {done.stderr.strip()[-600:]}")
    listed = node.ctr("images", "list", "--quiet").stdout.split()
    if image not in listed or PAUSE_IMAGE not in listed:
        raise Broken(f"containerd has {listed}, not {image} and {PAUSE_IMAGE}")


# --- processes ---------------------------------------------------------------------------------


def _start_containerd(node: Node) -> None:
    folder = node.folder
    subnet = f"10.{random.randrange(100, 200)}.{random.randrange(256)}.0/24"
    (folder / "cni").mkdir()
    (folder / "cni" / "10-modelgate.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"modelgate-{node.bridge}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": node.bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": subnet}]],
                            "dataDir": str(folder / "ipam"),
                        },
                    }
                ],
            }
        )
    )
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    (folder / "containerd.toml").write_text(
        f'version = 2\nroot = "{folder / "containerd"}"\nstate = "{folder / "containerd-state"}"\n'
        f'[grpc]\n  address = "{folder / "containerd.sock"}"\n'
        f"[{cri}]\n"
        f'  sandbox_image = "{PAUSE_IMAGE}"\n'
        # without CAP_SYS_RESOURCE (a container) oom_score_adj cannot go below containerd's own
        "  restrict_oom_score_adj = true\n"
        f"[{cri}.containerd]\n"
        '  snapshotter = "overlayfs"\n'
        '  default_runtime_name = "runc"\n'
        f"[{cri}.containerd.runtimes.runc]\n"
        '  runtime_type = "io.containerd.runc.v2"\n'
        f"[{cri}.containerd.runtimes.runc.options]\n"
        f'  Root = "{folder / "runc"}"\n'
        f"[{cri}.cni]\n"
        f'  bin_dir = "{CNI_BIN}"\n'
        f'  conf_dir = "{folder / "cni"}"\n'
    )
    node.processes["containerd"] = kube_env._spawn(
        node.kube, "containerd", ["containerd", "--config", str(folder / "containerd.toml")]
    )
    deadline = time.monotonic() + 60
    while node.ctr("version").returncode != 0:
        if node.processes["containerd"].poll() is not None or time.monotonic() > deadline:
            tail = kube_env._log_tail(node.kube, "containerd")
            raise Broken(f"containerd did not start:\n{tail}")
        time.sleep(0.2)


def _start_programs(node: Node, binaries: Path) -> None:
    kube, folder = node.kube, node.folder
    pki, config = kube.run / "pki", str(kube.kubeconfig)
    common = [f"--kubeconfig={config}", "--leader-elect=false", "--bind-address=127.0.0.1"]
    common += ["--secure-port=0", "--v=1"]
    node.processes["kube-controller-manager"] = kube_env._spawn(
        kube,
        "kube-controller-manager",
        [str(binaries / "kube-controller-manager"), *common,
         f"--service-account-private-key-file={pki / 'sa.key'}",
         f"--root-ca-file={pki / 'ca.crt'}",
         # no metrics API serves here: the autoscaler would only report FailedGetResourceMetric
         # (Degraded, to Argo CD); the tests play it (tests/kube_controllers.py)
         "--controllers=*,-horizontalpodautoscaling"],
    )  # fmt: skip
    node.processes["kube-scheduler"] = kube_env._spawn(
        kube, "kube-scheduler", [str(binaries / "kube-scheduler"), *common]
    )
    for controller in _controllers():
        (CGROUP / controller / node.cgroup_root.lstrip("/")).mkdir(exist_ok=True)
    (port,) = kube_env.free_ports(1)
    settings = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,  # not the host's kubepods: other runs may have one
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "address": _node_ip(),
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "containerRuntimeEndpoint": f"unix://{folder / 'containerd.sock'}",
        # a shared test machine's disks are as full as they are: evict for memory only
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "enforceNodeAllocatable": [],
        "resolvConf": "/etc/resolv.conf",
    }  # fmt: skip
    (folder / "kubelet.json").write_text(json.dumps(settings, indent=2))
    node.processes["kubelet"] = kube_env._spawn(
        kube,
        "kubelet",
        [str(binaries / "kubelet"), f"--config={folder / 'kubelet.json'}", f"--kubeconfig={config}",
         f"--hostname-override={NODE_NAME}", f"--node-ip={settings['address']}",
         f"--root-dir={folder / 'kubelet'}", f"--cert-dir={folder / 'kubelet-pki'}", "--v=1"],
    )  # fmt: skip
    _wait_ready(node)


def _wait_ready(node: Node, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in node.processes.items():
            if process.poll() is not None:
                raise Broken(f"{name} exited with {process.returncode}:\n"
                             f"{kube_env._log_tail(node.kube, name)}")  # fmt: skip
        status, answer = node.kube.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = answer.get("status", {}).get("conditions", []) if status == 200 else []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.5)
    raise Broken(f"node {NODE_NAME} not Ready in {timeout:g} s:\n"
                 f"{kube_env._log_tail(node.kube, 'kubelet')}")  # fmt: skip


def _controllers() -> list[str]:
    """The cgroup v1 hierarchies the kubelet uses (cgroupfs driver)."""
    return [
        name
        for name in ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer",
                     "systemd")
        if (CGROUP / name).is_dir()
    ]  # fmt: skip


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None:
        kube_env.stop([process])


def _unmount_under(folder: Path) -> None:
    """Mounts the kubelet and containerd left under the run folder (sandbox /dev/shm, volumes),
    deepest first, so that the folder can be removed."""
    done = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True)
    mounts = [m for m in done.stdout.split() if m.startswith(str(folder))]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _remove_cgroups(root: str) -> None:
    """The cgroup root in every hierarchy (runc makes it in the unified one too)."""
    for hierarchy in CGROUP.iterdir():
        top = hierarchy / root.lstrip("/")
        if not top.is_dir():
            continue
        below = [p for p in top.rglob("*") if p.is_dir()]
        for folder in sorted(below, key=lambda p: -len(p.parts)):  # the deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _remove_pod_logs(uids: list[str]) -> None:
    """The kubelet writes container logs to /var/log/pods and /var/log/containers whatever its
    root folder; those of this node's pods go with it."""
    for uid in uids:
        for folder in Path("/var/log/pods").glob(f"*_{uid}"):
            shutil.rmtree(folder, ignore_errors=True)
    for link in Path("/var/log/containers").glob("*.log"):
        with contextlib.suppress(OSError):
            if any(uid in os.readlink(link) for uid in uids):
                link.unlink()

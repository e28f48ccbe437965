"""A real Docker engine, a local registry and the iris model image, for the docker target's
tests. Everything it starts it stops; what is slow to make (the Debian root filesystem, the
wheels, the image) is cached under MODELGATE_TEST_CACHE (default /var/cache/modelgate-tests)
so a warm run starts in seconds.

Nothing is pulled from Docker Hub: the base image is a debootstrap root filesystem from the
Debian mirror apt already uses, and the model image installs the local engine's lock
(locks/serve.txt) from wheels downloaded on the host (`pip download`, hashes required) without
any index, as a user's hermetic build would. The engine images (KServe, llama.cpp) copy the
packages of their engine's environment (locks/engine-NAME.txt, installed with uv). Every
image is built without a network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MODELGATE_TEST_CACHE", "/var/cache/modelgate-tests"))
REGISTRY = "127.0.0.1:5000"
BASE_IMAGE = "local/bookworm-py:1"
MODEL_REPOSITORY = f"{REGISTRY}/modelgate/iris-mlserver"
ENGINE_LOCK = PROJECT / "locks" / "serve.txt"
PACKAGES = ("docker.io", "debootstrap", "docker-registry")


class Unavailable(Exception):
    """Docker cannot be made available here; the tests skip with this reason."""


@dataclass
class DockerEnv:
    host: str
    image: str  # the iris model image, by digest
    processes: list[subprocess.Popen]

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


RUN_DIR = Path("/tmp/modelgate-tests-dockerd")


def start() -> DockerEnv:
    _ensure_packages()
    _stop_stale()
    processes: list[subprocess.Popen] = []
    try:
        host = _start_dockerd(processes)
        _start_registry(processes)
        env = {**os.environ, "DOCKER_HOST": host}
        _ensure_base_image(env)
        image = _ensure_model_image(env)
        return DockerEnv(host, image, processes)
    except BaseException:
        DockerEnv("", "", processes).close()
        raise


def _stop_stale() -> None:
    """A run that was killed may have left our dockerd or registry behind: stop them, so that
    this run talks to the processes it started and nothing else."""
    for pidfile in (RUN_DIR / "docker.pid", RUN_DIR / "registry.pid"):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGKILL)  # ours, and orphaned: no state worth a clean exit
        except ProcessLookupError:
            pidfile.unlink(missing_ok=True)
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        pidfile.unlink(missing_ok=True)


def _run(*command: str, env: dict | None = None, timeout: float = 900, **kwargs) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False, **kwargs
    )
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(command[:3])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _ensure_packages() -> None:
    if all(shutil.which(tool) for tool in ("dockerd", "debootstrap", "docker-registry")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(
            "no Docker engine, and this machine cannot install one (needs root "
            "with apt-get: docker.io, debootstrap, docker-registry)"
        )
    _run("apt-get", "update", "-qq")
    _run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        *PACKAGES,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _start_dockerd(processes: list[subprocess.Popen]) -> str:
    state = CACHE / "docker"
    run_dir = RUN_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    socket = run_dir / "docker.sock"
    for driver in ("overlay2", "vfs"):
        data_root = state / driver
        data_root.mkdir(parents=True, exist_ok=True)
        log = open(run_dir / f"dockerd-{driver}.log", "wb")  # noqa: SIM115 - lives with dockerd
        process = subprocess.Popen(
            [
                "dockerd",
                f"--storage-driver={driver}",
                f"--data-root={data_root}",
                f"--exec-root={run_dir / 'exec'}",
                f"--pidfile={run_dir / 'docker.pid'}",
                f"-H=unix://{socket}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        host = f"unix://{socket}"
        if _wait_for_docker(host, process):
            processes.append(process)
            return host
        process.terminate()
        process.wait(timeout=20)
    raise Unavailable(f"dockerd did not start; see {run_dir}/dockerd-*.log")


def _wait_for_docker(host: str, process: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        done = subprocess.run(["docker", "-H", host, "info"], capture_output=True, check=False)
        if done.returncode == 0:
            return True
        time.sleep(0.5)
    return False


def _start_registry(processes: list[subprocess.Popen]) -> None:
    storage = CACHE / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config = CACHE / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(process)
    (RUN_DIR / "registry.pid").write_text(str(process.pid))
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise Unavailable("the local registry did not answer on 127.0.0.1:5000")


def _debian_mirror() -> str:
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "debian" in line and "security" not in line:
                return words[1]
            if words[:1] == ["deb"] and "debian" in line and "security" not in line:
                return next(w for w in words[1:] if w.startswith("http"))
    raise Unavailable("no Debian mirror found in the apt sources")


def _ensure_base_image(env: dict) -> None:
    if (
        subprocess.run(
            ["docker", "image", "inspect", BASE_IMAGE], env=env, capture_output=True, check=False
        ).returncode
        == 0
    ):
        return
    tarball = CACHE / "bookworm-py.tar"
    if not tarball.is_file():
        rootfs = CACHE / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(rootfs),
            _debian_mirror(),
            timeout=1200,
        )
        _run("tar", "-C", str(rootfs), "-cf", str(tarball) + ".tmp", ".")
        os.replace(str(tarball) + ".tmp", tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    with tarball.open("rb") as stream:
        done = subprocess.run(
            ["docker", "import", "-", BASE_IMAGE],
            stdin=stream,
            env=env,
            capture_output=True,
            check=False,
        )
    if done.returncode != 0:
        raise Unavailable(f"docker import failed: {done.stderr.decode()[-300:]}")


MODEL_CONTEXT = CACHE / "iris-context"


def model_tag(context: Path = MODEL_CONTEXT) -> str:
    """The iris image's tag: a digest of its build context (the same context, the same tag)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _ensure_model_image(env: dict) -> str:
    context = MODEL_CONTEXT
    _prepare_context(context)
    return _build_and_push(env, context, MODEL_REPOSITORY, model_tag(context))


def _build_and_push(env: dict, context: Path, repository: str, version: str) -> str:
    """The image of `context`, built unless an image of that tag exists, pushed to the local
    registry: its reference by digest."""
    tag = f"{repository}:{version}"
    if (
        subprocess.run(
            ["docker", "image", "inspect", tag], env=env, capture_output=True, check=False
        ).returncode
        != 0
    ):
        # no network: a build that fetched anything would fail, not pass unnoticed
        _run("docker", "build", "--network", "none", "-t", tag, str(context), env=env, timeout=1800)
    _run("docker", "push", tag, env=env, timeout=900)
    repo_digest = _run(
        "docker",
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        tag,
        env=env,
    )
    for line in repo_digest.split():
        if line.startswith(repository + "@sha256:"):
            return line
    raise Unavailable(f"no registry digest for {tag}")


def _prepare_context(context: Path) -> None:
    wheels = context / "wheels"
    lock = ENGINE_LOCK.read_bytes()
    complete = wheels / ".complete"
    if not complete.exists() or complete.read_text() != hashlib.sha256(lock).hexdigest():
        shutil.rmtree(wheels, ignore_errors=True)
        wheels.mkdir(parents=True)
        (wheels / "serve.txt").write_bytes(lock)
        _run(
            str(Path(sys.executable).with_name("pip")),
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "-d",
            str(wheels),
            "-r",
            str(wheels / "serve.txt"),
            timeout=1200,
        )
        complete.write_text(hashlib.sha256(lock).hexdigest())
    models = context / "models" / "iris"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "models/artifacts/iris/model.joblib", models / "model.joblib")
    source = Path(__file__).parent / "images" / "iris-mlserver"
    for name in ("Dockerfile", "settings.json"):
        shutil.copyfile(
            source / name, context / name if name == "Dockerfile" else context / "models" / name
        )
    shutil.copyfile(source / "model-settings.json", models / "model-settings.json")


# --- engine images: a model served by one engine's own server, from that engine's lock --------

SERVERS = PROJECT / "validator" / "engines" / "_servers"


@dataclass(frozen=True)
class EngineImage:
    """A model image of one engine's server: the server modelgate ships (SERVERS/server), the
    packages of locks/engine-LOCK.txt, one model and its settings, tests/images/NAME/Dockerfile,
    and the Debian packages of the system libraries its packages link to (`debs`)."""

    name: str
    lock: str
    server: str
    artifact: str
    settings: dict
    debs: tuple[str, ...] = ()


ENGINE_IMAGES = {
    "kserve": EngineImage(
        "iris-kserve",
        "kserve",
        "kserve_server.py",
        "models/artifacts/iris/model.joblib",
        {"name": "iris", "format": "sklearn", "protocol": "v1", "uri": "model.joblib"},
    ),
    "llamacpp": EngineImage(
        "tiny-llama-llamacpp",
        "llamacpp",
        "llamacpp_server.py",
        "models/artifacts/tiny-llama/tiny-llama.gguf",
        {"name": "tiny-llama", "format": "gguf", "uri": "tiny-llama.gguf"},
        debs=("libgomp1",),  # llama.cpp's CPU backend is built with OpenMP
    ),
}


def engine_image(env: DockerEnv, engine: str) -> str:
    """The model image of `engine` (ENGINE_IMAGES), built hermetically on first use and pushed
    to the local registry: its reference by digest."""
    recipe = ENGINE_IMAGES[engine]
    context = CACHE / f"{recipe.name}-context"
    _install_site(context / "site", recipe.lock)
    _download_debs(context / "debs", recipe.debs)
    for folder in ("server", "models"):
        shutil.rmtree(context / folder, ignore_errors=True)
        (context / folder).mkdir(parents=True)
    shutil.copyfile(SERVERS / recipe.server, context / "server" / recipe.server)
    shutil.copyfile(PROJECT / recipe.artifact, context / "models" / recipe.settings["uri"])
    settings = json.dumps(recipe.settings, indent=2, sort_keys=True) + "\n"
    (context / "models" / "model-server.json").write_text(settings)
    dockerfile = Path(__file__).parent / "images" / recipe.name / "Dockerfile"
    shutil.copyfile(dockerfile, context / "Dockerfile")
    version = hashlib.sha256()
    for part in (context / "site" / COMPLETE, context / "Dockerfile"):
        version.update(part.read_bytes())
    parts = [*(context / "server").iterdir(), *(context / "models").iterdir()]
    for part in sorted([*parts, *(context / "debs").glob("*.deb")]):
        version.update(part.name.encode() + hashlib.sha256(part.read_bytes()).digest())
    repository = f"{REGISTRY}/modelgate/{recipe.name}"
    return _build_and_push(
        {**os.environ, "DOCKER_HOST": env.host}, context, repository, version.hexdigest()[:16]
    )


COMPLETE = ".complete"


def _download_debs(folder: Path, packages: tuple[str, ...]) -> None:
    """The Debian packages, downloaded on the host from the mirror apt already uses (the
    base image is the same Debian release): the image installs them with dpkg, offline."""
    wanted = " ".join(packages)
    if (folder / COMPLETE).is_file() and (folder / COMPLETE).read_text() == wanted:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if packages:
        _run("apt-get", "download", *packages, cwd=folder, timeout=300)
    (folder / COMPLETE).write_text(wanted)


def _install_site(site: Path, engine: str) -> None:
    """The packages of the engine's environment (environments.py: its lock installed with
    uv, hashes required; llama-cpp-python compiled there once) copied into `site`: the image
    copies the folder, and its build fetches nothing. Done again when the lock changes."""
    from validator.deploy import environments

    digest = environments.pins_digest(environments.lock_file(engine))
    complete = site / COMPLETE
    if complete.is_file() and complete.read_text() == digest:
        return
    try:
        installed = environments.ensure(engine)
    except environments.Unavailable as reason:
        raise Unavailable(f"the {engine} engine environment: {reason}") from reason
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(
        installed / "lib" / python / "site-packages",
        site,
        ignore=shutil.ignore_patterns("_virtualenv.*", "pip", "pip-*"),
    )
    complete.write_text(digest)

"""Shared fixtures: a scratch repository laid out like the scaffold, and a CLI runner."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import load, placeholders
from validator.render import readback

from . import argocd_env, kube_env, registry_env

PROJECT = Path(__file__).resolve().parents[1]
IRIS_SPEC = (PROJECT / "models" / "iris.yaml").read_text(encoding="utf-8")
IRIS_ARTIFACT = Path("models/artifacts/iris/model.joblib")
IRIS_SHA256 = "8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be"
IRIS_FOLDER = "models/artifacts/iris"
# The scripts that make the stand-ins the example specs name (spec.smoke.standIn.script): a
# spec that names one is refused where the script is missing (MG233), so scratch
# repositories have them, as the project does.
STAND_IN_SCRIPTS = sorted(
    {
        stand_in["script"]
        for path in (PROJECT / "models").glob("*.yaml")
        if (
            stand_in := (yaml.safe_load(path.read_text("utf-8"))["spec"].get("smoke") or {}).get(
                "standIn"
            )
        )
    }
)


def tree_sha256(folder: Path) -> str:
    """The tree digest of docs/artifacts.md, with hashlib alone: sha256 of the lines
    `<sha256>  <relative path>` of every file, sorted by the path's bytes."""
    files = sorted(
        (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()),
        key=str.encode,
    )
    listing = "".join(
        f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n" for name in files
    )
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@dataclass
class Scaffold:
    """A temporary repository with templates/, the iris artifact, the example model cards
    (docs/models/) and an empty models/."""

    root: Path

    def write_spec(self, name: str, text: str) -> Path:
        path = self.root / "models" / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def with_policies(self) -> Scaffold:
        """The project's policies (without its waivers) copied into the repository."""
        shutil.copytree(
            PROJECT / "policies",
            self.root / "policies",
            ignore=shutil.ignore_patterns("waivers.yaml"),
        )
        return self

    def iris(self, name: str = "iris", **replacements: str) -> Path:
        """The iris spec under another name, with exact text replacements applied."""
        text = IRIS_SPEC.replace("name: iris", f"name: {name}")
        for old, new in replacements.items():
            assert old in text, f"{old!r} is not in the iris spec"
            text = text.replace(old, new)
        return self.write_spec(name, text)

    def iris_folder(self, name: str = "iris") -> Path:
        """The iris spec with the folder around model.joblib as its artifact (MLServer's
        scikit-learn runtime finds model.joblib in it), named by its tree digest."""
        digest = tree_sha256(self.root / IRIS_FOLDER)
        return self.iris(
            name,
            **{
                f"artifact: {IRIS_ARTIFACT}": f"artifact: {IRIS_FOLDER}",
                f"    sha256: {IRIS_SHA256}\n": "",
                "    format: sklearn": f"    treeSha256: {digest}\n    format: sklearn",
            },
        )


@pytest.fixture
def scaffold(tmp_path: Path) -> Scaffold:
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    shutil.copytree(PROJECT / "templates", root / "templates")
    shutil.copytree(PROJECT / "docs" / "models", root / "docs" / "models")
    artifact = root / IRIS_ARTIFACT
    artifact.parent.mkdir(parents=True)
    shutil.copyfile(PROJECT / IRIS_ARTIFACT, artifact)
    for script in STAND_IN_SCRIPTS:
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / script, root / script)
    return Scaffold(root)


# What a person writes in place of each placeholder `modelgate new` leaves in a spec
FILLED_IN = {
    placeholders.ZERO_SHA256: "a" * 64,  # before the revision: 64 zeros hold 40
    placeholders.ZERO_REVISION: "b" * 40,
    placeholders.LICENSE: "Apache-2.0",
    placeholders.TEAM: "ml-platform",
    f"hf://{placeholders.ORGANISATION}/": "hf://acme/",
    placeholders.RUNTIME: "acme_models.Scorer",
}
_DESCRIPTION = re.compile(r'"TODO: what ([-a-z0-9]+) does, in a sentence or two\."')


def fill_in(text: str) -> str:
    """A scaffolded spec with a real value in place of each placeholder."""
    for placeholder, value in FILLED_IN.items():
        text = text.replace(placeholder, value)
    return _DESCRIPTION.sub(r'"Scores the requests of \1."', text)


def located(text: str, needle: str, at: str) -> tuple[int, int]:
    """Line and column of `at`, inside the first occurrence of `needle`."""
    offset = text.index(needle) + needle.index(at)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """The real `modelgate` command in a child process, as users and CI run it."""
    env = {k: v for k, v in os.environ.items() if k != "MODELGATE_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-m", "validator.cli", *args],
        cwd=cwd or PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli


def assert_both_parsers_agree(rendered: render.RenderedFile) -> None:
    """The fast read-back (yaml-rs) sees exactly what the strict loader (PyYAML) sees."""
    if rendered.path.suffix in (".json", ".pbtxt"):  # not YAML: JSON, Triton's config
        return
    fast, problem = readback.read_back(rendered.content, str(rendered.path), plain_safe=True)
    strict, problems = load.load_text(rendered.content, str(rendered.path))
    assert problem is None and strict is not None, (problem, problems)
    assert fast == strict.data, f"{rendered.path}: the two YAML parsers disagree"
    assert _types(fast) == _types(strict.data)


def _types(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _types(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_types(item) for item in node]
    return type(node).__name__


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "HOME": str(root),
        },
    )
    return done.stdout


@pytest.fixture
def committed(scaffold: Scaffold) -> Scaffold:
    """The scaffold as a git repository with the iris spec committed."""
    git(scaffold.root, "init", "-q", "-b", "main")
    scaffold.iris()
    git(scaffold.root, "add", "-A")
    git(scaffold.root, "commit", "-q", "-m", "iris")
    return scaffold


def crd_dirs(seldon: bool = False) -> list[Path]:
    """The folders of the CRDs custom resources are checked against: those of the Go modules
    pinned in tests/kube/crds (KServe, Argo CD, Istio, KEDA) and MODELGATE_TEST_CRDS's.
    Skips where the module proxy cannot be reached, or, with `seldon`, where no folder holds
    Seldon Core v2's Model CRD."""
    try:
        folders = kube_env.default_crd_dirs()
    except kube_env.Unavailable as reason:
        pytest.skip(f"no CRDs from the pinned Go modules: {reason}")
    if seldon and (problem := kube_env.missing_crds_problem(kube_env.crd_files(folders))):
        pytest.skip(problem)
    return folders


_KUBE_FAILED: list[BaseException] = []  # pytest retries a failed session fixture per test


@pytest.fixture(scope="session")
def kube() -> Iterator[kube_env.KubeEnv]:
    """A real Kubernetes API server (etcd + kube-apiserver, built on first use) for the whole
    session: its kubeconfig, URL and admin/deployer identities. Skips where it cannot be had."""
    if _KUBE_FAILED:
        failure = _KUBE_FAILED[0]
        if isinstance(failure, kube_env.Unavailable):
            pytest.skip(f"no Kubernetes API server: {failure}")
        raise failure
    try:
        env = kube_env.start()
    except kube_env.Unavailable as reason:
        _KUBE_FAILED.append(reason)
        pytest.skip(f"no Kubernetes API server: {reason}")
    except kube_env.Broken as broken:
        _KUBE_FAILED.append(broken)
        raise
    try:
        yield env
    finally:
        env.close()


_ARGOCD_FAILED: list[BaseException] = []


@pytest.fixture(scope="session")
def argocd(kube: kube_env.KubeEnv) -> Iterator[argocd_env.ArgoCD]:
    """A real Argo CD (repo-server, application-controller, applicationset-controller and
    redis; built on first use) syncing into `kube` for the whole session: `repo_url`, `sync`,
    `refresh`, `wait_synced` (tests/argocd_env.py). Skips where it cannot be had."""
    if _ARGOCD_FAILED:
        failure = _ARGOCD_FAILED[0]
        if isinstance(failure, kube_env.Unavailable):
            pytest.skip(f"no Argo CD: {failure}")
        raise failure
    try:
        env = argocd_env.start(kube)
    except kube_env.Unavailable as reason:
        _ARGOCD_FAILED.append(reason)
        pytest.skip(f"no Argo CD: {reason}")
    except kube_env.Broken as broken:
        _ARGOCD_FAILED.append(broken)
        raise
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_env.Registry]:
    """A real docker-registry on loopback for a test module; skips where it cannot be had."""
    try:
        started = registry_env.start(tmp_path_factory.mktemp("registry"))
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.stop()

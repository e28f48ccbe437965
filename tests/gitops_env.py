"""A repository delivered by Argo CD, for the tests of `modelgate rollout` and `revert`: a
clone whose `origin` is a bare repository a real Argo CD (tests/argocd_env.py) syncs into a
real API server (tests/kube_env.py), the environments' RBAC and ApplicationSets applied by the
admin, and the CLI run with the deployer's identity, which has only those rights.

    with gitops_env.repository(kube, argocd, scaffold.root, tmp_path, monkeypatch,
                               slug="my-test", model="web0") as gitops:
        base = gitops.head()
        good = gitops.commit("web 1.0.0", spec)   # rendered, committed and pushed
        gitops_env.connect(gitops)                # RBAC and the ApplicationSet, by the admin
        gitops_env.ok(gitops.modelgate("rollout", "--env", "staging", "--commit", good,
                                       "--changed-since", base))

tests/test_delivery.py runs it against the session's API server with the controllers played
(tests/kube_controllers.py); tests/test_kube_node.py against a node that really runs the pods.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import argocd_env, kube_env
from .conftest import CliResult, git, run_cli
from .test_kube_apiserver import ensure_namespace


@dataclass
class GitOps:
    """A repository whose `origin` is a bare repository Argo CD syncs, its environments' RBAC
    and ApplicationSets applied by the admin, and a deployer that has only those rights."""

    kube: kube_env.KubeEnv
    argocd: argocd_env.ArgoCD
    work: Path  # the clone commits are made in, as a developer's (and CI's checkout)
    origin: Path
    slug: str
    deployer_kubeconfig: Path
    model: str  # each test's own: one Argo CD serves them all, and Applications go by name

    def named(self, spec: str) -> str:
        return spec.replace("\n  name: web\n", f"\n  name: {self.model}\n", 1)

    def namespace(self, environment: str) -> str:
        return f"{self.slug}-{environment}"

    def commit(self, message: str, spec: str | None = None) -> str:
        if spec is not None:
            path = self.work / "models" / f"{self.model}.yaml"
            path.write_text(self.named(spec), encoding="utf-8")
        done = run_cli("render", cwd=self.work)
        assert done.code == 0, done.err
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git(self.work, "rev-parse", ref).strip()

    def modelgate(self, *args: str, timeout: float = 240) -> CliResult:
        return run_cli(*args, cwd=self.work, timeout=timeout)

    def rollout(self, commit: str, since: str, environment: str = "staging") -> CliResult:
        """`modelgate rollout` of `commit`, the models changed since `since`."""
        return self.modelgate(
            "rollout", "--env", environment, "--commit", commit, "--changed-since", since
        )

    def admin_apply(self, *paths: Path) -> None:
        for path in paths:
            done = self.kube.kubectl("apply", "--server-side", "-f", str(path))
            assert done.returncode == 0, done.stderr

    def record(self, environment: str) -> dict[str, Any]:
        done = self.kube.kubectl(
            "get", "configmap", f"modelgate-record-{self.model}", "-n", self.namespace(environment),
            "-o", "json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)["data"]
        return {"current": json.loads(data["current"]), "history": json.loads(data["history"])}

    def image(self, environment: str) -> str:
        done = self.kube.kubectl(
            "get", "deployment", self.model, "-n", self.namespace(environment), "-o", "json"
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["spec"]["template"]["spec"]["containers"][0]["image"]

    def at_origin(self, path: str) -> str:
        return git(self.origin, "show", f"main:{path}")

    def environments(self, **declared: str) -> None:
        values = self.work / "templates" / "values.yaml"
        text = values.read_text(encoding="utf-8")
        lines = "".join(f"  {env}: {setting}\n" for env, setting in declared.items())
        text = re.sub(r"(?m)^environments:\n(  .*\n)+", f"environments:\n{lines}", text)
        values.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def repository(
    kube: kube_env.KubeEnv,
    argocd: argocd_env.ArgoCD,
    work: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slug: str,
    model: str,
) -> Iterator[GitOps]:
    """`work` (a scaffold: templates/ and models/) made a clone of a new bare repository Argo
    CD reads, its environments' namespaces SLUG-ENV, and PATH and KUBECONFIG set for the
    deployer. Afterwards no Application is left: the next repository's ApplicationSets make
    Applications of the same names."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    values = work / "templates" / "values.yaml"
    text = (
        values.read_text(encoding="utf-8")
        .replace('"models-{environment}"', f'"{slug}-{{environment}}"')
        .replace("  mesh: istio\n", "  mesh: none\n")
    )
    text = re.sub(r"(?m)^repoURL: .*$", f"repoURL: {argocd.repo_url(origin)}", text)
    # Argo CD syncs when the rollout asks it to, not on its own at a moment of its choosing:
    # one Argo CD serves every test, and an automated sync racing the next test's is its own
    text = text.replace(
        "staging: {delivery: argocd, autoSync: true}", "staging: {delivery: argocd}"
    )
    values.write_text(text, encoding="utf-8")
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "commit", "-q", "--allow-empty", "-m", "the repository before any model")
    git(work, "push", "-q", "origin", "main")
    for environment in ("staging", "production"):
        ensure_namespace(kube, f"{slug}-{environment}")
    monkeypatch.setenv("PATH", f"{kube.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    deployer = kube.kubeconfig_for(kube.deployer)
    monkeypatch.setenv("KUBECONFIG", str(deployer))
    try:
        yield GitOps(kube, argocd, work, origin, slug, deployer, model)
    finally:
        _remove_applications(kube, argocd)


def _remove_applications(kube: kube_env.KubeEnv, argocd: argocd_env.ArgoCD) -> None:
    """Every ApplicationSet and Application of the Argo CD namespace; no garbage collector
    runs here to remove an ApplicationSet's Applications with it."""
    for kind in ("applicationsets", "applications"):
        kube.kubectl("delete", kind, "--all", "-n", argocd.namespace, "--wait=false")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = kube.kubectl("get", "applications", "-n", argocd.namespace, "-o", "name")
        if not listed.stdout.split():
            break
        for application in listed.stdout.split():  # their objects go with the namespace
            kube.kubectl(
                "patch", application, "-n", argocd.namespace, "--type", "merge",
                "-p", '{"metadata": {"finalizers": null}}',
            )  # fmt: skip
        time.sleep(0.5)


def connect(gitops: GitOps, environment: str = "staging") -> None:
    """What a platform team does once per environment (docs/delivery.md): apply the deployer's
    RBAC and, for Argo CD delivery, the environment's ApplicationSet."""
    rbac = sorted((gitops.work / "rendered" / environment / "_rbac").glob("*.yaml"))
    gitops.admin_apply(*rbac)
    appset = gitops.work / "rendered" / "argocd" / f"{environment}.yaml"
    if appset.is_file():
        gitops.admin_apply(appset)


def ok(done: CliResult) -> None:
    assert done.code == 0, done.err + done.out

"""Merge to verified endpoint on the tests' cluster, beside Argo CD's own sync of the same commit.

    .venv/bin/python benchmarks/delivery.py [--repeat 5]

The cluster is the tests' kube-apiserver and etcd with a real Argo CD (tests/kube_env.py,
tests/argocd_env.py; built on first use), the Deployment controller played as the tests play
it. Each round pushes a commit that changes one model's image, then:
- the peer: Argo CD alone, a sync of the Application at that commit through its `operation`
  field, until the operation Succeeded (what `argocd app sync --revision` waits for);
- modelgate: `modelgate rollout` of the next commit, end to end (sync, Synced and Healthy,
  the workloads' readiness, the smoke verdict, the record in the cluster).
Target: the rollout adds at most 2 s to Argo CD's sync time (no smoke requests here; each
smoke request adds its own latency). Prints figures; exits 0 whether or not the target holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from tests import argocd_env, kube_env  # noqa: E402
from tests.conftest import git  # noqa: E402
from tests.kube_controllers import READY, playing  # noqa: E402
from tests.test_deploy_kubernetes import web_spec  # noqa: E402
from tests.test_kube_apiserver import ensure_namespace  # noqa: E402

TARGET_SECONDS = 2.0
NAMESPACE = "bench-delivery-staging"


def modelgate(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "validator.cli", *args],
        cwd=work, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def repository(folder: Path, argocd: argocd_env.ArgoCD) -> tuple[Path, Path]:
    origin, work = folder / "origin.git", folder / "work"
    git(folder, "init", "-q", "--bare", "-b", "main", str(origin))
    (work / "models").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(PROJECT / "templates"), str(work)], check=True)
    values = work / "templates" / "values.yaml"
    text = values.read_text(encoding="utf-8").replace(
        '"models-{environment}"', '"bench-delivery-{environment}"'
    )
    text = text.replace("  mesh: istio\n", "  mesh: none\n").replace(
        "repoURL: https://git.example.com/ml/model-deployments.git",
        f"repoURL: {argocd.repo_url(origin)}",
    )
    values.write_text(text, encoding="utf-8")
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "commit", "-q", "--allow-empty", "-m", "before any model")
    return origin, work


def commit(work: Path, digest: str, message: str) -> str:
    (work / "models" / "web.yaml").write_text(web_spec(digest), encoding="utf-8")
    done = modelgate(work, "render")
    assert done.returncode == 0, done.stderr
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD").strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    kube = kube_env.start()
    argocd = argocd_env.start(kube)
    digests = [f"{i:x}" * 64 for i in range(1, 2 * args.repeat + 2)]
    peer: list[float] = []
    ours: list[float] = []
    try:
        ensure_namespace(kube, NAMESPACE)
        with tempfile.TemporaryDirectory(prefix="bench-delivery-") as folder:
            _, work = repository(Path(folder), argocd)
            os.environ["PATH"] = f"{kube.bin}{os.pathsep}{os.environ['PATH']}"
            os.environ["KUBECONFIG"] = str(kube.kubeconfig)
            empty = git(work, "rev-parse", "HEAD").strip()
            base = commit(work, digests[0], "first")
            for path in sorted((work / "rendered" / "staging" / "_rbac").glob("*.yaml")):
                kube.kubectl("apply", "--server-side", "-f", str(path))
            kube.kubectl("apply", "--server-side", "-f", str(work / "rendered/argocd/staging.yaml"))
            with playing(kube, NAMESPACE, lambda item: READY):
                done = modelgate(
                    work, "rollout", "--env", "staging", "--commit", base, "--changed-since", empty
                )
                assert done.returncode == 0, done.stderr
                last = base
                for round_ in range(args.repeat):
                    sha = commit(work, digests[2 * round_ + 1], f"peer {round_}")
                    started = time.monotonic()
                    argocd.sync("web-staging", sha)
                    argocd.wait_synced("web-staging", sha)
                    peer.append(time.monotonic() - started)
                    last = sha
                    sha = commit(work, digests[2 * round_ + 2], f"rollout {round_}")
                    started = time.monotonic()
                    done = modelgate(
                        work, "rollout", "--env", "staging", "--commit", sha,
                        "--changed-since", last,
                    )  # fmt: skip
                    ours.append(time.monotonic() - started)
                    assert done.returncode == 0, done.stderr
                    last = sha
    finally:
        argocd.close()
        kube.close()
    added = statistics.median(ours) - statistics.median(peer)
    print(f"merge to verified endpoint on the test cluster, {args.repeat} rounds\n")
    print(f"{'figure':<52} {'median s':>9} {'max s':>7}")
    print(f"{'Argo CD alone: sync at the commit to Succeeded':<52} "
          f"{statistics.median(peer):9.2f} {max(peer):7.2f}")  # fmt: skip
    print(f"{'modelgate rollout (sync, Healthy, ready, record)':<52} "
          f"{statistics.median(ours):9.2f} {max(ours):7.2f}")  # fmt: skip
    print(f"\nadded by the rollout: {added:.2f} s")
    verdict = "MET" if added <= TARGET_SECONDS else "MISSED"
    print(f"target: the rollout adds at most {TARGET_SECONDS:g} s to Argo CD's sync: {verdict}")
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

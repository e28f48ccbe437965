"""A rendered Deployment of the iris model really runs, on a node of the tests' own (a kubelet,
containerd, runc, the CNI bridge: tests/kube_node.py), and `modelgate deploy --target
kubernetes` smoke-tests it through a port-forward; a broken image is reported with the pod's
reason and rolled back to the image that serves. Opt-in: MODELGATE_TEST_KUBELET=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import kube_env, kube_node
from .conftest import PROJECT
from .test_kube_apiserver import ensure_namespace

pytestmark = pytest.mark.kube


@pytest.fixture(scope="module")
def node() -> Iterator[kube_node.Node]:
    try:
        started = kube_node.start()
    except kube_env.Unavailable as reason:
        pytest.skip(f"no node: {reason}")
    try:
        yield started
    finally:
        started.close()


def iris_spec(image: str, readiness: int) -> str:
    """The iris model image as a custom container (a Deployment), with models/iris.yaml's own
    smoke requests."""
    text = (PROJECT / "models" / "iris.yaml").read_text(encoding="utf-8")
    smoke = text[text.index("  smoke:") : text.index("  compliance:")]
    smoke = smoke.replace("readinessTimeoutSeconds: 60", f"readinessTimeoutSeconds: {readiness}")
    head = textwrap.dedent(f"""\
        apiVersion: modelgate.dev/v1alpha1
        kind: ModelDeployment
        metadata:
          name: iris
          owner: ml-platform@example.com
          team: ml-platform
          contact: "#ml-platform-oncall"
          description: The iris image tests/docker_env.py builds, run by a real kubelet.
        spec:
          model:
            image: {image}
            format: sklearn
            version: "1.0.0"
          engine: {{name: docker, protocol: v2}}
          resources:
            requests: {{cpu: 250m, memory: 256Mi}}
            limits: {{cpu: "1", memory: 1Gi}}
          scaling: {{minReplicas: 1, maxReplicas: 1}}
          endpoint: {{visibility: internal, auth: {{type: none}}, tls: false}}
          environments: [staging]
        """)
    return head + smoke


def deploy(node: kube_node.Node, root: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "MODELGATE_DEBUG"},
        "KUBECONFIG": str(node.kube.kubeconfig),
        "PATH": f"{node.kube.bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-m", "validator.cli", "deploy", "models/iris.yaml",
         "--target", "kubernetes", "--env", "staging"],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_the_iris_deployment_runs_serves_and_rolls_back(
    node: kube_node.Node, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(PROJECT / "templates", root / "templates")
    (root / "models").mkdir()
    values = root / "templates" / "values.yaml"
    values.write_text(
        values.read_text()
        .replace('"models-{environment}"', '"node-{environment}"')
        .replace("  mesh: istio\n", "  mesh: none\n")
    )
    ensure_namespace(node.kube, "node-staging")
    spec = root / "models" / "iris.yaml"
    spec.write_text(iris_spec(node.image, readiness=300))
    served = deploy(node, root, timeout=360)
    assert served.returncode == 0, served.stderr
    assert "smoke pass  setosa" in served.stdout and "smoke pass  three-species" in served.stdout
    assert "deployed iris in" in served.stdout
    assert "endpoint: http://iris.node-staging.svc:80/v2/models/iris/infer" in served.stdout

    missing = node.image.rpartition("@")[0] + "@sha256:" + "0" * 64
    spec.write_text(iris_spec(missing, readiness=20))
    broken = deploy(node, root, timeout=120)
    assert broken.returncode == 1
    said = " ".join(broken.stderr.split())
    assert "MG502 endpoint not available: not ready within 20 s: Deployment iris: " in said
    assert "container server: ErrImagePull" in said or "ImagePullBackOff" in said
    assert "rolled back: the last good manifests (the deploy of " in said
    assert said.rstrip().endswith("were applied again and are ready")
    live = json.loads(
        node.kube.kubectl("get", "deployment", "iris", "-n", "node-staging", "-o", "json").stdout
    )
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == node.image
    assert live["status"]["readyReplicas"] == 1

"""The kubernetes target against a real API server (tests/kube_env.py), with the tests playing
the controllers it has not (tests/kube_controllers.py): server-side apply with modelgate's field
manager, readiness from the workloads' own status, what a failed deploy leaves (the last good
manifests again, or nothing of its own), pruning, and conflicts with another field manager.
Status parsing is also tested on status documents shaped by the real CRDs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from validator import deploy
from validator.check import workspace
from validator.deploy import interrupt, kubectl, last_good, ledger
from validator.deploy.kubectl import refusal
from validator.deploy.kubernetes import not_ready
from validator.deploy.net import free_port
from validator.deploy.readiness import judge, pod_trouble
from validator.render import crds, kube_schemas

from . import kube_env
from .conftest import PROJECT, Scaffold, crd_dirs, run_cli
from .kube_controllers import FAILED, READY, playing, wait_for
from .test_kube_apiserver import ensure_namespace

DATA = Path(__file__).parent / "data" / "kubernetes"


def status(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# --- readiness, from status documents -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.json")))
def test_status_documents_fit_the_real_schemas(name: str) -> None:
    folders = crd_dirs(seldon=name.startswith("seldon"))
    document = status(name)
    problem, found = kube_schemas.check(document, crds.load_dirs(folders))
    assert found and problem is None


def test_ready_workloads() -> None:
    assert not_ready(status("isvc-ready")) is None
    assert not_ready(status("deployment-available")) is None
    assert not_ready(status("seldon-model-ready")) is None


def test_reasons_are_reported_from_the_conditions() -> None:
    assert not_ready(status("isvc-load-failed")) == (
        "InferenceService churn-kserve: Ready=False (RevisionFailed: Revision "
        '"churn-kserve-predictor-00002" failed with message: .); model: ModelLoadFailed: '
        "Failed to load model: pickle data was truncated"
    )
    assert not_ready(status("deployment-stuck")) == (
        "Deployment chat-assistant: Progressing=False (ProgressDeadlineExceeded: ReplicaSet "
        '"chat-assistant-5c6d7e8f9a" has timed out progressing.)'
    )
    assert "no matching servers are available" in not_ready(status("seldon-model-no-server"))
    assert not_ready({"kind": "Deployment", "metadata": {"name": "x"}}) == (
        "Deployment x: no status reported yet"
    )


def test_failures_no_wait_can_mend_are_final() -> None:
    """A passed progress deadline and a model KServe gave up loading end the wait at once;
    a Seldon model no server takes yet may still be scheduled."""
    assert judge(status("deployment-stuck")).final
    assert judge(status("isvc-load-failed")).final
    assert not judge(status("seldon-model-no-server")).final


def test_a_status_of_an_earlier_generation_is_not_readiness() -> None:
    """Right after an apply the status still describes the previous version: Available, every
    replica updated. It says nothing about what was just applied."""
    applied = status("deployment-available")
    applied["metadata"]["generation"] = 4  # the status is of generation 3
    assert not_ready(applied) == (
        "Deployment chat-assistant: its controller has not reported on generation 4 yet "
        "(status is of generation 3)"
    )
    service = status("isvc-ready")
    service["metadata"]["generation"] = 2
    assert "has not reported on generation 2" in not_ready(service)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"updatedReplicas": 1}, "1 of 2 replicas updated"),
        ({"replicas": 3}, "1 old replicas pending termination"),
        ({"availableReplicas": 1}, "1 of 2 updated replicas available"),
    ],
)
def test_a_rollout_in_progress_is_not_ready(change: dict[str, int], reason: str) -> None:
    """As `kubectl rollout status` judges a Deployment, against spec.replicas."""
    deployment = status("deployment-available")
    deployment["spec"]["replicas"] = 2
    deployment["status"].update(change)
    assert not_ready(deployment) == f"Deployment chat-assistant: {reason}"


def test_the_pods_say_why_a_rollout_is_stuck() -> None:
    """A pod as a kubelet (v1.37, containerd) reported it for an image digest the registry
    does not have: the Deployment's own status only says replicas are unavailable."""
    pod = status("pod-image-pull-failed")
    trouble = pod_trouble([pod])
    assert trouble.startswith(
        "pod iris-cdfc48d59-969n9: container server: ErrImagePull: failed to pull and unpack "
        'image "127.0.0.1:5000/modelgate/iris-mlserver@sha256:0000'
    )
    starting = json.loads(json.dumps(pod))
    starting["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ContainerCreating"}
    }
    assert pod_trouble([starting]) == ""
    unscheduled = {
        "metadata": {"name": "p"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False",
                   "reason": "Unschedulable", "message": "0/1 nodes are available"}]},
    }  # fmt: skip
    assert pod_trouble([starting, unscheduled]) == (
        "pod p: PodScheduled=False (Unschedulable: 0/1 nodes are available)"
    )


def test_a_conflict_names_the_other_managers_and_their_fields() -> None:
    """Server-side apply's conflict errors, as kubectl prints them (one, and several)."""
    one = refusal(
        'error: Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: '
        '.spec.template.spec.containers[name="server"].resources.limits.memory\n'
        "Please review the fields above--they currently have other managers."
    )
    assert one.managers == ("kubectl-edit",)
    assert one.fields == ('.spec.template.spec.containers[name="server"].resources.limits.memory',)
    several = refusal(
        'error: Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
        "- .spec.replicas\n- .metadata.labels.team\nPlease review the fields above"
    )
    assert several.fields == (".spec.replicas", ".metadata.labels.team")
    assert not refusal('Error from server (Forbidden): deployments.apps "x" is forbidden').conflict


# --- against the real API server ----------------------------------------------------------------

IMAGE = "registry.example.com/ml/web@sha256:"
GOOD, BAD = "1" * 64, "2" * 64


def web_spec(digest: str = GOOD, engine: str = "docker", smoke: float | None = None) -> str:
    """A model image that serves itself (a Deployment, Service, HPA, PDB, NetworkPolicy), or
    the same image behind KServe (an InferenceService). With `smoke`, a smoke request and that
    readiness timeout; without, readiness is the verdict (and waits 60 s at most)."""
    text = textwrap.dedent(f"""\
        apiVersion: modelgate.dev/v1alpha1
        kind: ModelDeployment
        metadata:
          name: web
          owner: ml@example.com
          team: ml
          contact: "#ml"
          description: A model image that serves itself, for the kubernetes target's tests.
        spec:
          model:
            image: {IMAGE}{digest}
            format: sklearn
            version: "1.0.0"
          engine: {{name: {engine}, protocol: v2}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 100m, memory: 128Mi}}
          scaling: {{minReplicas: 1, maxReplicas: 2}}
          endpoint: {{visibility: internal, auth: {{type: none}}, tls: false}}
          environments: [staging]
        """)
    if smoke is not None:
        text += textwrap.indent(
            textwrap.dedent(f"""\
                smoke:
                  readinessTimeoutSeconds: {smoke}
                  requests:
                    - name: one
                      body: {{inputs: [{{name: x, shape: [1], datatype: FP32, data: [1.0]}}]}}
                      expect: {{status: 200}}
                """),
            "  ",
        )
    return text


def images_of(resource: dict[str, Any]) -> str:
    spec = resource["spec"]
    if resource["kind"] == "Deployment":
        return spec["template"]["spec"]["containers"][0]["image"]
    return spec["predictor"]["containers"][0]["image"]


def serving(*digests: str) -> Callable[[dict[str, Any]], str | None]:
    """Controllers under which a workload running one of these images becomes ready and any
    other fails (its rollout passes the progress deadline, or KServe cannot load it)."""
    return lambda resource: READY if images_of(resource).rpartition(":")[2] in digests else FAILED


@dataclass
class Cluster:
    """A scratch repository whose staging namespace is its own, in the tests' API server."""

    kube: kube_env.KubeEnv
    root: Path
    namespace: str

    def write(self, text: str, name: str = "web") -> None:
        (self.root / "models" / f"{name}.yaml").write_text(text, encoding="utf-8")

    def deploy(self, name: str = "web") -> deploy.Outcome:
        """`modelgate deploy models/NAME.yaml --target kubernetes`, in this process."""
        validation = workspace.validate([self.root / "models" / f"{name}.yaml"], self.root)
        assert not validation.failed(), validation.diagnostics
        [document] = validation.valid_documents()
        return deploy.run(document, self.root, "kubernetes", environment="staging")

    def get(self, resource: str) -> dict[str, Any] | None:
        done = self.kube.kubectl(
            "get", resource, "-n", self.namespace, "-o", "json", "--show-managed-fields"
        )
        if "NotFound" in done.stderr:
            return None
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def names(self) -> set[str]:
        done = self.kube.kubectl(
            "get", "deployments,services,hpa,pdb,networkpolicies,inferenceservices,configmaps",
            "-n", self.namespace, "-l", "app.kubernetes.io/name=web", "-o", "name",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())

    def records(self, name: str = "web") -> list[dict[str, Any]]:
        return ledger.history(self.root, name)

    def playing(self, decide: Callable[[dict[str, Any]], str | None]) -> Any:
        return playing(self.kube, self.namespace, decide)


WEB_OBJECTS = {
    "deployment.apps/web",
    "service/web",
    "horizontalpodautoscaler.autoscaling/web",
    "poddisruptionbudget.policy/web",
    "networkpolicy.networking.k8s.io/web",
}


@pytest.fixture
def cluster(
    kube: kube_env.KubeEnv, scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch, request: Any
) -> Cluster:
    kube.serves_or_skip("serving.kserve.io/v1beta1", "InferenceService")  # names() lists them
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    values = scaffold.root / "templates" / "values.yaml"
    # this cluster has no service mesh: declare none
    values.write_text(
        values.read_text()
        .replace('"models-{environment}"', f'"{slug}-{{environment}}"')
        .replace("  mesh: istio\n", "  mesh: none\n")
    )
    ensure_namespace(kube, f"{slug}-staging")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("PATH", f"{kube.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    return Cluster(kube, scaffold.root, f"{slug}-staging")


@pytest.mark.kube
def test_a_deploy_applies_with_modelgates_field_manager_and_waits_for_the_controller(
    cluster: Cluster,
) -> None:
    cluster.write(web_spec())
    with cluster.playing(serving(GOOD)) as controllers:
        outcome = cluster.deploy()
    assert outcome.ok, outcome.diagnostics
    assert outcome.endpoint is not None
    assert outcome.endpoint.base_url == f"http://web.{cluster.namespace}.svc:80"
    assert ("Deployment", "web", 1, READY) in controllers.reported
    assert cluster.names() == WEB_OBJECTS
    for name in WEB_OBJECTS:
        managed = cluster.get(name)["metadata"]["managedFields"]
        writers = {(e["manager"], e["operation"]) for e in managed if "subresource" not in e}
        assert writers == {("modelgate", "Apply")}, name
    [record] = cluster.records()
    assert record["result"] == "deployed" and record["target"] == "kubernetes"
    saved = cluster.root / last_good.STORE / "staging" / "web" / record["manifests"]
    # the manifests, not application.json (what Argo CD's generator reads, never applied)
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        p.name for p in (cluster.root / "rendered" / "staging" / "web").glob("*.yaml")
    )
    assert (cluster.root / "rendered" / "staging" / "web" / "application.json").is_file()


@pytest.mark.kube
def test_a_failed_first_deploy_removes_what_it_created_and_says_what_it_left(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The Deployment never becomes available (the controller reports the progress deadline
    passed): modelgate says why, deletes every object it created, and leaves the Service a
    person had created before, saying so; the output no longer claims nothing is left."""
    cluster.write(web_spec())
    rendered = run_cli_in(cluster, "render")
    assert rendered.returncode == 0, rendered.stderr
    service = cluster.root / "rendered" / "staging" / "web" / "service.yaml"
    made = cluster.kube.kubectl("create", "-f", str(service))  # by hand, as a person would
    assert made.returncode == 0, made.stderr
    with cluster.playing(serving()):
        failed = run_cli_in(cluster, "deploy", "models/web.yaml", "--target", "kubernetes")
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr and "nothing left running" not in failed.stderr
    assert re.search(
        r"MG502 endpoint not available: Deployment web: Progressing=False "
        r'\(ProgressDeadlineExceeded: ReplicaSet "web-\w+" has timed out progressing\.\)',
        failed.stderr,
    ), failed.stderr
    namespace = cluster.namespace
    assert (
        f"removed what this deploy created: Deployment {namespace}/web, "
        f"HorizontalPodAutoscaler {namespace}/web, NetworkPolicy {namespace}/web, "
        f"PodDisruptionBudget {namespace}/web; left in the cluster: Service {namespace}/web (it "
        "was in the cluster before this deploy, and no earlier deploy of web to staging "
        "passed: there is no good version of it to put back)"
    ) in " ".join(failed.stderr.split())
    wait_for(lambda: cluster.names() == {"service/web"})
    [record] = cluster.records()
    assert record["result"] == "failed" and record["manifests"] == ""


@pytest.mark.kube
def test_a_failed_deploy_puts_the_last_good_manifests_back(cluster: Cluster) -> None:
    """The ledger knows the last good deploy; its manifests are applied again, and the
    controller rolls the Deployment back to the image that works."""
    cluster.write(web_spec(GOOD))
    with cluster.playing(serving(GOOD)) as controllers:
        assert cluster.deploy().ok
        cluster.write(web_spec(BAD))
        outcome = cluster.deploy()
    assert not outcome.ok
    [problem] = [d for d in outcome.diagnostics if d.rule == "MG502"]
    assert "ProgressDeadlineExceeded" in problem.message
    deployment = cluster.get("deployment.apps/web")
    assert images_of(deployment) == IMAGE + GOOD
    assert deployment["metadata"]["generation"] == 3  # good, bad, good again
    assert ("Deployment", "web", 2, FAILED) in controllers.reported
    assert ("Deployment", "web", 3, READY) in controllers.reported
    first, second = cluster.records()
    assert outcome.left == (
        f"rolled back: the last good manifests (the deploy of {first['time']} (no commit)) "
        "were applied again and are ready"
    )
    assert (first["result"], second["result"]) == ("deployed", "failed")
    assert cluster.names() == WEB_OBJECTS


@pytest.mark.kube
def test_a_status_left_from_the_last_version_is_not_readiness(cluster: Cluster) -> None:
    """The controller never reports on the new generation: the deploy does not pass on the
    previous version's Available status, it times out naming the generation it waited for."""
    cluster.write(web_spec(GOOD))
    with cluster.playing(lambda r: READY if images_of(r).endswith(GOOD) else None):
        assert cluster.deploy().ok
        cluster.write(web_spec(BAD, smoke=2))
        outcome = cluster.deploy()
    messages = [d.message for d in outcome.diagnostics]
    assert (
        "endpoint not available: not ready within 2 s: Deployment web: its controller has "
        "not reported on generation 2 yet (status is of generation 1)"
    ) in messages
    assert outcome.left.startswith("rolled back: ") and outcome.left.endswith("and are ready")


@pytest.mark.kube
def test_smoke_requests_that_cannot_reach_the_pod_are_reported(cluster: Cluster) -> None:
    """The controller says ready and the pod runs on a node, but its kubelet does not answer
    (the test plays a kubelet that registered the node, started the pod and went away): the
    port-forward fails, and that is reported (it used to pass silently, no request sent)."""
    kubelet_port = free_port()  # nothing listens there

    def run_the_pod(deployment: dict[str, Any]) -> str:
        if not cluster.get("pod/web-0"):
            node = f"{cluster.namespace}-node"
            kubelet = {"InternalIP": "127.0.0.1", "port": kubelet_port}
            register_node(cluster.kube, node, kubelet)
            start_pod(cluster.kube, cluster.namespace, "web-0", deployment, node)
        return READY

    cluster.write(web_spec(smoke=5))
    with cluster.playing(run_the_pod):
        outcome = cluster.deploy()
    [problem] = outcome.diagnostics
    assert problem.rule == "MG502"
    assert problem.message.startswith(
        "endpoint not available: no smoke request could be sent: kubectl port-forward exited: "
    )
    assert f"dial tcp 127.0.0.1:{kubelet_port}: connect: connection refused" in problem.message
    assert "removed what this deploy created" in outcome.left
    wait_for(lambda: cluster.names() == set())


def register_node(kube: kube_env.KubeEnv, name: str, kubelet: dict[str, Any]) -> None:
    """A Node as a kubelet registers it: its address and the port its API listens on."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    status, answer = kube.request("POST", "/api/v1/nodes", node)
    assert status == 201, answer
    answer["status"] = {
        "addresses": [{"type": "InternalIP", "address": kubelet["InternalIP"]}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet["port"]}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }
    status, answer = kube.request("PUT", f"/api/v1/nodes/{name}/status", answer)
    assert status == 200, answer


def start_pod(
    kube: kube_env.KubeEnv, namespace: str, name: str, deployment: dict[str, Any], node: str
) -> None:
    """A pod of the Deployment's template bound to the node, Running and Ready, as the
    scheduler and the kubelet would leave it."""
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": {**template["spec"], "nodeName": node},
    }
    pods = f"/api/v1/namespaces/{namespace}/pods"
    status, answer = kube.request("POST", pods, pod)
    assert status == 201, answer
    answer["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "podIP": "10.0.0.10",
    }
    status, answer = kube.request("PUT", f"{pods}/{name}/status", answer)
    assert status == 200, answer


@pytest.mark.kube
def test_prune_removes_what_the_spec_no_longer_renders_and_only_that(cluster: Cluster) -> None:
    """From a custom container to KServe: the failed first try removes its InferenceService and
    leaves the Deployment; the good one prunes the Deployment, Service and HPA. An object with
    modelgate's labels that modelgate did not apply, and another model's objects, stay."""
    cluster.write(web_spec(GOOD))
    cluster.write(web_spec(GOOD).replace("name: web", "name: other"), "other")
    lookalike = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"ports": [{"port": 80}]},
        "metadata": {
            "name": "web-extra",
            "namespace": cluster.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "modelgate",
                "app.kubernetes.io/name": "web",
            },
        },
    }
    made = cluster.kube.kubectl("create", "-f", "-", input=json.dumps(lookalike))
    assert made.returncode == 0, made.stderr
    kserve = web_spec(GOOD, engine="kserve")
    with cluster.playing(lambda r: FAILED if r["kind"] == "InferenceService" else READY):
        assert cluster.deploy("other").ok
        assert cluster.deploy().ok
        cluster.write(kserve)
        failed = cluster.deploy()
    assert not failed.ok
    assert failed.left.endswith(
        f"were applied again and are ready; removed what only it added: "
        f"InferenceService {cluster.namespace}/web"
    )
    assert cluster.names() == WEB_OBJECTS | {"service/web-extra"}
    with cluster.playing(serving(GOOD)):
        outcome = cluster.deploy()
    assert outcome.ok, outcome.diagnostics
    namespace = cluster.namespace
    assert sorted(outcome.notes) == [
        f"not pruned: Service {namespace}/web-extra has modelgate's labels but was not "
        "applied by it",
        f"pruned Deployment {namespace}/web: not rendered",
        f"pruned HorizontalPodAutoscaler {namespace}/web: not rendered",
        f"pruned Service {namespace}/web: not rendered",
    ]
    assert cluster.names() == {
        "inferenceservice.serving.kserve.io/web",
        "poddisruptionbudget.policy/web",
        "networkpolicy.networking.k8s.io/web",
        "service/web-extra",
    }
    assert cluster.get("deployment.apps/other") is not None


@pytest.mark.kube
def test_a_field_changed_with_kubectl_edit_is_a_conflict_not_overwritten(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A person raised the memory limit with `kubectl edit`: the next deploy of the unchanged
    spec stops at the dry run with MG510 naming the field and who holds it, and changes
    nothing; after the hint's `--force-conflicts` apply, the deploy passes again."""
    cluster.write(web_spec())
    with cluster.playing(serving(GOOD)):
        assert cluster.deploy().ok
        edit = tmp_path / "edit.sh"  # the person's editor, in a script
        edit.write_text('#!/bin/sh\nsed -i "s/memory: 128Mi/memory: 256Mi/" "$1"\n')
        edit.chmod(0o755)
        edited = subprocess.run(
            [str(cluster.kube.bin / "kubectl"), "edit", "deployment/web", "-n", cluster.namespace],
            env={**os.environ, "KUBE_EDITOR": str(edit)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert edited.returncode == 0, edited.stderr
        generation = cluster.get("deployment.apps/web")["metadata"]["generation"]
        refused = cluster.deploy()
        assert not refused.ok
        [conflict] = refused.diagnostics
        assert conflict.rule == "MG510"
        assert conflict.path == "rendered/staging/web/deployment.yaml"
        assert conflict.message == (
            f"model not deployed: Deployment {cluster.namespace}/web: "
            '.spec.template.spec.containers[name="server"].resources.limits.memory, '
            '.spec.template.spec.containers[name="server"].resources.requests.memory changed '
            'in the cluster by "kubectl-edit"; modelgate does not take fields over from another '
            "field manager"
        )
        assert refused.left == "nothing was applied: the cluster is as it was"
        live = cluster.get("deployment.apps/web")
        assert live["metadata"]["generation"] == generation
        limits = live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["memory"] == "256Mi"
        command = re.search(r"`(kubectl apply [^`]+)`", conflict.hint).group(1).split()
        taken = cluster.kube.kubectl(*command[1:-1], str(cluster.root / command[-1]))
        assert taken.returncode == 0, taken.stderr
        assert cluster.deploy().ok


@pytest.mark.kube
def test_an_interrupted_deploy_removes_what_it_created(cluster: Cluster) -> None:
    cluster.write(web_spec(smoke=60))
    outcomes: list[deploy.Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(cluster.deploy()))
    try:
        worker.start()
        wait_for(lambda: cluster.get("deployment.apps/web") is not None)
        interrupt.request()
        worker.join(timeout=60)
    finally:
        interrupt.reset()
    [outcome] = outcomes
    assert outcome.interrupted and [d.rule for d in outcome.diagnostics] == ["MG509"]
    assert outcome.left.startswith("removed what this deploy created: Deployment")
    assert cluster.records()[-1]["result"] == "interrupted"
    wait_for(lambda: cluster.names() == set())


def run_cli_in(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MODELGATE_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "validator.cli", *args],
        cwd=cluster.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.kube
def test_deploying_the_kserve_example_reports_kserves_reason(cluster: Cluster) -> None:
    """models/churn-kserve.yaml (with neither oidc nor tls: this cluster has no mesh), KServe
    failing to load the model: exit 1 with KServe's own reason at once, the InferenceService
    removed, a ledger record. The command is given longer than the spec's readiness timeout,
    which it would wait out for a failure that is not final."""
    spec = (PROJECT / "models" / "churn-kserve.yaml").read_text(encoding="utf-8")
    spec = spec.replace("auth: {type: oidc}\n    tls: true", "auth: {type: none}\n    tls: false")
    cluster.write(spec, "churn-kserve")
    timeout = float(re.search(r"readinessTimeoutSeconds: (\d+)", spec).group(1)) + 60
    started = time.monotonic()
    with cluster.playing(lambda r: FAILED):
        failed = run_cli_in(
            cluster, "deploy", "models/churn-kserve.yaml", "--target", "kubernetes",
            "--env", "staging", timeout=timeout,
        )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "MG502 endpoint not available: InferenceService churn-kserve: Ready=False" in (
        failed.stderr
    )
    assert "model: ModelLoadFailed: Failed to load model" in failed.stderr
    assert time.monotonic() - started < 60  # final: no wait for the readiness timeout
    assert f"removed what this deploy created: InferenceService {cluster.namespace}/" in (
        " ".join(failed.stderr.split())
    )
    [record] = cluster.records("churn-kserve")
    assert record["result"] == "failed" and "ModelLoadFailed" in record["error"]


def test_a_missing_kubeconfig_is_named_before_kubectl_is_asked(
    scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl either: the kubeconfig comes first
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    spec = scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "deploy", str(spec), "--target", "kubernetes")
    assert result.code == 1
    assert (
        f"MG512 model not deployed: no cluster to deploy to: KUBECONFIG names {missing}, "
        "which does not exist"
    ) in result.err
    assert "\\n" not in result.err and "memcache.go" not in result.err


def test_context_and_namespace_options_need_the_kubernetes_target(scaffold: Scaffold) -> None:
    spec = scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "deploy", str(spec), "--context", "x")
    assert result.code == 2 and "--context and --namespace are for --target kubernetes" in (
        result.err
    )


def test_kubectl_retries_are_left_out_of_its_error() -> None:
    stderr = "\n".join(
        [
            'E1207 15:04:05.123456   42 memcache.go:265] "Unhandled Error" err="couldn\'t get'
            ' current server API group list"',
        ]
        * 5
        + ["The connection to the server localhost:8080 was refused - did you specify the right"
           " host or port?"]
    )  # fmt: skip
    assert kubectl.said(stderr) == (
        "The connection to the server localhost:8080 was refused - did you specify the right "
        "host or port?"
    )


@pytest.mark.kube
def test_context_selects_the_identity_and_namespace_must_be_the_rendered_one(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = cluster.kube
    # the kubeconfig's current context is the deployer's, who may do nothing here
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_for(kube.deployer)))
    cluster.write(web_spec())
    deploy_web = ("deploy", "models/web.yaml", "--target", "kubernetes", "--env", "staging")

    unknown = run_cli_in(cluster, *deploy_web, "--context", "nope")
    assert unknown.returncode == 1
    assert (
        "MG512 model not deployed: no cluster to deploy to: the kubeconfig has no context "
        f"nope (its contexts: {kube.admin.context}"
    ) in unknown.stderr
    elsewhere = run_cli_in(
        cluster, *deploy_web, "--context", kube.admin.context, "--namespace", "models-staging"
    )
    assert elsewhere.returncode == 1
    assert (
        f"MG513 model not deployed: rendered/staging/web puts it in namespace "
        f"{cluster.namespace}, not models-staging (--namespace)"
    ) in elsewhere.stderr
    assert cluster.names() == set()  # nothing was applied

    forbidden = run_cli_in(cluster, *deploy_web)
    assert forbidden.returncode == 1 and "forbidden" in forbidden.stderr
    with cluster.playing(serving(GOOD)):
        done = run_cli_in(
            cluster,
            *deploy_web,
            "--context",
            kube.admin.context,
            "--namespace",
            cluster.namespace,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.names() == WEB_OBJECTS

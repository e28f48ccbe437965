"""Least privilege for `modelgate deploy --target kubernetes`: render ships, per environment,
the Role a deployer needs in its namespace (rendered/ENV/_rbac/), granting exactly the kinds
rendered there (apply, read, remove what a failed deploy created, prune by label) plus the
smoke test's port-forward. Against the real API server
(tests/kube_env.py), the deployer identity applies and reads every rendered model with exactly
that Role, each verb it grants is needed, and without it a deploy fails with a clear finding."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from validator.deploy.kubernetes import FIELD_MANAGER, WORKLOAD_KINDS
from validator.render import view

from . import kube_env
from .conftest import PROJECT, Scaffold, run_cli
from .test_kube_apiserver import ensure_namespace, objects_in

RENDERED = PROJECT / "rendered"
ENVIRONMENTS = ("staging", "production")
# what every environment's Role grants beside the rendered kinds: the smoke test's port-forward
# and the record of what serves (a ConfigMap per model)
PORT_FORWARD = {
    ("", resource): set(verbs)
    for resource, verbs in (*view.PORT_FORWARD.items(), *view.RECORD.items())
}


def role(rendered: Path, environment: str) -> dict[str, Any]:
    return objects_in(rendered / environment / "_rbac" / "role.yaml")[0]


def rights(role_document: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, over all the Role's rules."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role_document["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def model_folders(rendered: Path, environment: str) -> list[Path]:
    """The models' folders, not those a cluster admin applies (_rbac/, _admission/)."""
    admins = ("_rbac", "_admission")
    return sorted(
        p for p in (rendered / environment).iterdir() if p.is_dir() and p.name not in admins
    )


def rendered_kinds(rendered: Path, environment: str) -> set[tuple[str, str]]:
    """(apiGroup, resource) of every object rendered for the environment's models."""
    return {
        (document["apiVersion"].rpartition("/")[0], view.plural(document["kind"]))
        for folder in model_folders(rendered, environment)
        for path in folder.glob("*.yaml")
        for document in objects_in(path)
    }


# --- what is rendered -------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_role_grants_exactly_the_kinds_rendered_and_the_port_forward(environment: str) -> None:
    granted = rights(role(RENDERED, environment))
    rendered = rendered_kinds(RENDERED, environment)
    assert len(rendered) >= 5
    expected = {key: {"create", "delete", "get", "list", "patch"} for key in rendered}
    for key, verbs in PORT_FORWARD.items():
        expected[key] = expected.get(key, set()) | verbs
    assert granted == expected
    everything = {word for key, verbs in granted.items() for word in (*key, *verbs)}
    assert "*" not in everything and "secrets" not in everything
    assert {"delete", "list"} & granted[("", "pods")] == {"list"}  # port-forward: no delete


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_binding_names_the_deployer_group_in_the_namespace(environment: str) -> None:
    binding = objects_in(RENDERED / environment / "_rbac" / "rolebinding.yaml")[0]
    namespace = role(RENDERED, environment)["metadata"]["namespace"]
    assert binding["metadata"]["namespace"] == namespace == f"models-{environment}"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role(RENDERED, environment)["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "modelgate:deployers"}
    ]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_argo_cd_does_not_sync_the_role(environment: str) -> None:
    """The Role is for whoever deploys by hand or from CI; an admin applies it, and the
    admission policies. Argo CD makes Applications of the folders whose application.json its
    generator reads, which neither _rbac/ nor _admission/ has (and were one written in _rbac/
    by hand, the generator would leave it out)."""
    application_set = objects_in(RENDERED / "argocd" / f"{environment}.yaml")[0]
    files = application_set["spec"]["generators"][0]["git"]["files"]
    assert files == [
        {"path": f"rendered/{environment}/*/application.json"},
        {"path": f"rendered/{environment}/_rbac/application.json", "exclude": True},
    ]
    assert not list((RENDERED / environment / "_rbac").glob("*.json"))
    folders = {path.parent.name for path in (RENDERED / environment).glob("*/application.json")}
    assert not list((RENDERED / environment / "_admission").glob("*.json"))
    not_models = {"_rbac", "_admission"}
    assert folders == {p.name for p in (RENDERED / environment).iterdir()} - not_models


def test_the_role_follows_what_a_repository_renders(scaffold: Scaffold) -> None:
    """Only the iris model (a Seldon Model): the Role grants Models and nothing of Deployments."""
    scaffold.iris()
    values = scaffold.root / "templates" / "values.yaml"
    values.write_text(
        values.read_text().replace('deployerGroup: "modelgate:deployers"', "deployerGroup: ml-ci")
    )
    result = run_cli("render", cwd=scaffold.root)
    assert result.code == 0, result.err
    rendered = scaffold.root / "rendered"
    granted = rights(role(rendered, "staging"))
    assert set(granted) - set(PORT_FORWARD) == {("mlops.seldon.io", "models")}
    binding = objects_in(rendered / "staging" / "_rbac" / "rolebinding.yaml")[0]
    assert binding["subjects"][0]["name"] == "ml-ci"


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("Deployment", "deployments"),
        ("NetworkPolicy", "networkpolicies"),
        ("Ingress", "ingresses"),
        ("Service", "services"),
        ("InferenceService", "inferenceservices"),
    ],
)
def test_plural(kind: str, resource: str) -> None:
    assert view.plural(kind) == resource


# --- against the real API server --------------------------------------------------------------


def allowed(
    kube: kube_env.KubeEnv, namespace: str, verb: str, resource: str, group: str = ""
) -> bool:
    """What the API server's authorizer says the deployer may do now."""
    resource, _, subresource = resource.partition("/")
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    status, answer = kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        review,
        identity=kube.deployer,
    )
    assert status == 201, answer
    return answer["status"]["allowed"]


def settle(
    kube: kube_env.KubeEnv, namespace: str, verb: str, resource: str, group: str, to: bool
) -> None:
    """Until the authorizer (which reads RBAC objects from a cache) sees a Role change."""
    deadline = time.monotonic() + 20
    while allowed(kube, namespace, verb, resource, group) != to:
        assert time.monotonic() < deadline, f"RBAC never showed {verb} {resource} = {to}"
        time.sleep(0.05)


def served(kube: kube_env.KubeEnv, folder: Path) -> list[str]:
    """The kinds of a folder the server does not serve (no CRD at hand)."""
    return [
        f"{d['apiVersion']} {d['kind']}"
        for path in sorted(folder.glob("*.yaml"))
        for d in objects_in(path)
        if kube.resource(d["apiVersion"], d["kind"]) is None
    ]


@pytest.mark.kube
def test_plurals_are_the_servers(kube: kube_env.KubeEnv) -> None:
    kinds = {
        (d["apiVersion"], d["kind"])
        for environment in ENVIRONMENTS
        for folder in model_folders(RENDERED, environment)
        for path in folder.glob("*.yaml")
        for d in objects_in(path)
    }
    for api_version, kind in sorted(kinds):
        resource = kube.resource(api_version, kind)
        if resource is not None:
            assert resource.plural == view.plural(kind), kind


@pytest.mark.kube
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_with_exactly_the_role_the_deployer_applies_and_reads_every_model(
    kube: kube_env.KubeEnv, environment: str
) -> None:
    """As the kubernetes target does it: server-side apply of rendered/ENV/NAME with modelgate's
    field manager, then `kubectl get` of each workload for its readiness."""
    rbac = RENDERED / environment / "_rbac"
    namespace = role(RENDERED, environment)["metadata"]["namespace"]
    ensure_namespace(kube, namespace)
    ensure_namespace(kube, view.ARGOCD_NAMESPACE)  # the Argo CD project and the sync Role
    assert not allowed(kube, namespace, "create", "deployments", "apps")
    granted = kube.kubectl("apply", "--server-side", "-f", str(rbac))
    assert granted.returncode == 0, granted.stderr
    applied: list[list[str]] = []
    skipped: list[str] = []
    try:
        settle(kube, namespace, "create", "deployments", "apps", to=True)
        for folder in model_folders(RENDERED, environment):
            if served(kube, folder):
                skipped.append(f"{folder.relative_to(PROJECT)}: {', '.join(served(kube, folder))}")
                continue
            manifests = [arg for path in sorted(folder.glob("*.yaml")) for arg in ("-f", str(path))]
            done = kube.kubectl(  # the manifests, as the kubernetes target applies them
                "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", *manifests,
                identity=kube.deployer,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            applied.append(manifests)
            for path in sorted(folder.glob("*.yaml")):
                for document in objects_in(path):
                    if document["kind"] not in WORKLOAD_KINDS:
                        continue
                    read = kube.kubectl(
                        "get", document["kind"].lower(), document["metadata"]["name"],
                        "-n", namespace, "-o", "json", identity=kube.deployer,
                    )  # fmt: skip
                    assert read.returncode == 0, read.stderr
        assert applied
        for (group, resource), verbs in PORT_FORWARD.items():
            assert all(allowed(kube, namespace, verb, resource, group) for verb in verbs)
        for verb, resource, group, expected in (
            ("delete", "deployments", "apps", True),
            ("list", "deployments", "apps", True),
            ("create", "deployments", "apps", True),
            ("update", "deployments", "apps", False),
            ("delete", "pods", "", False),
            ("get", "secrets", "", False),
            ("create", "roles", "rbac.authorization.k8s.io", False),
        ):
            assert allowed(kube, namespace, verb, resource, group) is expected, (verb, resource)
        assert not allowed(kube, "kube-system", "create", "deployments", "apps")
    finally:
        for manifests in applied:
            kube.kubectl("delete", "--wait=false", *manifests)
        kube.kubectl("delete", "-f", str(rbac))
    if skipped:
        warnings.warn(f"not applied (no CRD at hand): {'; '.join(skipped)}", stacklevel=1)


def deployment_in(namespace: str) -> dict[str, Any]:
    document = objects_in(RENDERED / "staging" / "fraud-onnx" / "deployment.yaml")[0]
    document = copy.deepcopy(document)
    document["metadata"]["namespace"] = namespace
    return document


@pytest.mark.kube
@pytest.mark.parametrize("verb", ["create", "delete", "get", "list", "patch"])
def test_every_verb_the_role_grants_is_needed(kube: kube_env.KubeEnv, verb: str) -> None:
    """create for a first apply, patch for every later one, get for readiness, delete to remove
    what a failed deploy created, list to find what to prune: a Role without one of them
    breaks that step of a deploy."""
    namespace = f"rbac-without-{verb}"
    ensure_namespace(kube, namespace)
    deployment = deployment_in(namespace)
    reduced = copy.deepcopy(role(RENDERED, "staging"))
    reduced["metadata"]["namespace"] = namespace
    for rule in reduced["rules"]:
        if rule["resources"] == ["deployments"]:
            rule["verbs"].remove(verb)
    binding = objects_in(RENDERED / "staging" / "_rbac" / "rolebinding.yaml")[0]
    binding["metadata"]["namespace"] = namespace
    for document in (reduced, binding):
        status, answer = kube.apply(document)
        assert status in (200, 201), answer
    settle(kube, namespace, verb, "deployments", "apps", to=False)
    if verb in ("patch", "delete"):  # only an object that exists is patched or deleted
        status, answer = kube.apply(deployment)
        assert status in (200, 201), answer
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    name = deployment["metadata"]["name"]
    if verb in ("get", "delete"):
        method = verb.upper()
        status, answer = kube.request(method, f"{deployments}/{name}", identity=kube.deployer)
    elif verb == "list":
        selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmodelgate"
        status, answer = kube.request("GET", f"{deployments}?{selector}", identity=kube.deployer)
    else:
        status, answer = kube.apply(deployment, identity=kube.deployer)
    assert status == 403
    assert f'cannot {verb} resource "deployments" in API group "apps"' in answer["message"]


def deploy_as_deployer(kube: kube_env.KubeEnv, root: Path) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "MODELGATE_DEBUG"},
        "KUBECONFIG": str(kube.kubeconfig_for(kube.deployer)),
        "PATH": f"{kube.bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    deploy = ["deploy", "models/fraud-onnx.yaml", "--target", "kubernetes", "--env", "staging"]
    return subprocess.run(
        [sys.executable, "-m", "validator.cli", *deploy],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.kube
def test_a_deploy_without_the_role_fails_cleanly_and_with_it_reaches_readiness(
    kube: kube_env.KubeEnv, tmp_path: Path
) -> None:
    """The kubernetes target as the deployer, in a namespace of its own: refused with the
    server's reason and what to do (MG501) before the Role is applied; after, it applies,
    reads status until its readiness timeout (no controller runs here: MG502) and removes
    what it created."""
    root = tmp_path / "repo"
    for folder in ("models", "templates", "policies", "docs/models"):
        shutil.copytree(PROJECT / folder, root / folder)
    values = root / "templates" / "values.yaml"
    # this cluster has no service mesh: declare none, and ask the spec for nothing of it
    values.write_text(
        values.read_text()
        .replace('"models-{environment}"', '"e2e-{environment}"')
        .replace("  mesh: istio\n", "  mesh: none\n")
    )
    # an organisation's own namespaces are its policy's to allow (MG-SEC-181)
    (root / "policies" / "e2e.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: e2e}\n"
        "extends: [modelgate]\nparameters:\n"
        '  renderedNamespaces: {"*": ["e2e-{environment}"], argocd: [argocd]}\n'
    )
    spec = root / "models" / "fraud-onnx.yaml"  # no controller makes it ready: wait briefly
    for other in (root / "models").glob("*.yaml"):
        if other != spec:
            other.unlink()
    spec.write_text(
        spec.read_text()
        .replace("readinessTimeoutSeconds: 180", "readinessTimeoutSeconds: 2")
        .replace("auth: {type: mtls}\n    tls: true", "auth: {type: none}\n    tls: false")
        .replace("environments: [staging, production]", "environments: [staging]")
    )
    rendered = run_cli("render", cwd=root)
    assert rendered.code == 0, rendered.err
    ensure_namespace(kube, "e2e-staging")
    ensure_namespace(kube, view.ARGOCD_NAMESPACE)  # the Argo CD project and the sync Role

    refused = deploy_as_deployer(kube, root)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "MG501" in refused.stderr and "(Forbidden)" in refused.stderr
    assert "applies rendered/staging/_rbac/" in refused.stderr

    granted = kube.kubectl("apply", "--server-side", "-f", str(root / "rendered/staging/_rbac"))
    assert granted.returncode == 0, granted.stderr
    settle(kube, "e2e-staging", "create", "deployments", "apps", to=True)
    waited = deploy_as_deployer(kube, root)
    assert waited.returncode == 1, waited.stderr
    assert "Traceback" not in waited.stderr and "MG501" not in waited.stderr
    assert "MG502" in waited.stderr
    assert "Deployment fraud-onnx: no status reported yet" in waited.stderr
    # the Role lets it remove every object it created (delete), and nothing is left
    said = " ".join(waited.stderr.split())
    removed = "removed what this deploy created: ConfigMap e2e-staging/fraud-onnx-model-config, "
    assert removed in said
    assert "left in the cluster" not in said
    left = kube.kubectl("get", "deployments,services,configmaps", "-n", "e2e-staging", "-o", "name")
    assert "fraud-onnx" not in left.stdout

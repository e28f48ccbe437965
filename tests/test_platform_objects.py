"""What a platform engineer finds reading the rendered objects together: pods that cannot
reach their peers, Istio policies outside the mesh, unbounded disk, PodDisruptionBudgets that
block drains, KServe pods on one node, downloads without credentials, KServe's own storage
initializer, GPU pods without the taint's toleration. The project's own output, and the
output rules (check/policy/cluster_checks.py) on it, with the platform templates/values.yaml
declares."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import policy, workspace
from validator.check.policy import cluster_checks, rendered
from validator.check.policy.examples import example_objects
from validator.quantities import to_bytes

from .conftest import PROJECT, Scaffold
from .test_exposure import VALUES, assert_refused, at, copy_spec, declare, position, refusals

SIDECARS = {"exposure": {"mesh": "istio", "istio": {"mode": "sidecar-cni"}}}
BUILTIN, _ = policy.load_policy(PROJECT)
AMBIENT = VALUES.replace("mode: sidecar-cni", "mode: ambient")


@pytest.fixture(scope="module")
def objects() -> dict[str, rendered.OutputObject]:
    """Every Kubernetes object the project's specs render, by its path under rendered/."""
    result = workspace.validate(workspace.discover(PROJECT, []), PROJECT)
    rendering = render.render_all(result.valid_documents(), PROJECT)
    assert rendering.diagnostics == []
    return {
        str(file.path): rendered.OutputObject(str(file.path), yaml.safe_load(file.content))
        for file in rendering.files
        if file.path.suffix == ".yaml" and file.path.parts[1] != "docker"
    }


def spec_objects(objects: dict, environment: str, name: str) -> list[rendered.OutputObject]:
    folder = f"rendered/{environment}/{name}/"
    return [obj for path, obj in objects.items() if path.startswith(folder)]


def run(check: str, found: list[rendered.OutputObject], values: Any = None, spec: Any = None):
    """(path, where, message) of each finding of the built-in rule with the named check."""
    [rule] = [rule for rule in BUILTIN.output_rules if rule.check == check]
    context = rendered.OutputContext(BUILTIN.parameters, spec, values or {})
    return [
        (obj.path, where, message)
        for obj, where, message in cluster_checks.NAMED_CHECKS[check](rule, found, context)
    ]


def spec_data(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "models" / f"{name}.yaml").read_text(encoding="utf-8"))


# -- 1. the network -------------------------------------------------------------------------


def test_churn_pipelines_components_reach_the_predictor_and_the_feature_store(
    objects: dict,
) -> None:
    found = spec_objects(objects, "staging", "churn-pipeline")
    spec = spec_data("churn-pipeline")
    values = yaml.safe_load(VALUES)
    assert run("network_peers", found, values, spec) == []
    [policy] = [obj for obj in found if obj.kind == "NetworkPolicy"]
    egress = policy.data["spec"]["egress"]
    feast = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "feast"}}}
    assert {"to": [feast], "ports": [{"port": 6566, "protocol": "TCP"}]} in egress


def test_the_policy_main_rendered_leaves_every_component_cut_off(objects: dict) -> None:
    """DNS and HTTPS alone (what churn-pipeline had): the transformer reaches neither the
    predictor nor the feature store, the explainer not the predictor, the sidecars not istiod."""
    found = copy.deepcopy(spec_objects(objects, "staging", "churn-pipeline"))
    [policy] = [obj for obj in found if obj.kind == "NetworkPolicy"]
    policy.data["spec"]["egress"] = policy.data["spec"]["egress"][:2]
    messages = [m for _, _, m in run("network_peers", found, SIDECARS, spec_data("churn-pipeline"))]
    assert messages == [
        "NetworkPolicy churn-pipeline lets the predictor pods of InferenceService "
        "churn-pipeline reach nothing of istiod (port 15012)",
        "NetworkPolicy churn-pipeline lets the transformer pods of InferenceService "
        "churn-pipeline reach nothing of the predictor (port 8080)",
        "NetworkPolicy churn-pipeline lets the transformer pods of InferenceService "
        "churn-pipeline reach nothing of feast (port 6566, spec.transformer.peers)",
        "NetworkPolicy churn-pipeline lets the transformer pods of InferenceService "
        "churn-pipeline reach nothing of feast (port 6566, named in its args or env)",
        "NetworkPolicy churn-pipeline lets the transformer pods of InferenceService "
        "churn-pipeline reach nothing of istiod (port 15012)",
        "NetworkPolicy churn-pipeline lets the explainer pods of InferenceService "
        "churn-pipeline reach nothing of the predictor (port 8080)",
        "NetworkPolicy churn-pipeline lets the explainer pods of InferenceService "
        "churn-pipeline reach nothing of istiod (port 15012)",
    ]


def test_a_component_naming_an_undeclared_service_is_refused_at_render(
    scaffold: Scaffold,
) -> None:
    scaffold.with_policies()
    text = copy_spec(scaffold, "churn-pipeline").replace(
        "    peers:                                # the feature store the args name\n"
        "      - {namespace: feast, port: 6566}\n",
        "",
    )
    scaffold.write_spec("churn-pipeline", text)
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    assert not result.failed(), result.diagnostics
    judged = render.Renderer(scaffold.root, policy=policy.load_policy(scaffold.root)[0])
    rendering = render.render_all(result.valid_documents(), scaffold.root, renderer=judged)
    found = {(d.path, d.rule) for d in rendering.diagnostics if d.rule.startswith("MG-")}
    assert found == {("rendered/staging/churn-pipeline/networkpolicy.yaml", "MG-SEC-150")}
    [message] = {d.message for d in rendering.diagnostics if "staging" in d.path}
    assert "feast (port 6566, named in its args or env)" in message


# -- 2. the mesh ----------------------------------------------------------------------------


def test_sidecar_namespaces_get_injection_and_the_pods_reach_istiod(objects: dict) -> None:
    appset = objects["rendered/argocd/staging.yaml"].data
    labels = appset["spec"]["template"]["spec"]["syncPolicy"]["managedNamespaceMetadata"]
    assert labels["labels"]["istio-injection"] == "enabled"
    assert labels["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for path, obj in objects.items():
        if obj.kind == "NetworkPolicy":
            istiod = {"port": 15012, "protocol": "TCP"}
            assert any(istiod in rule.get("ports", []) for rule in obj.data["spec"]["egress"]), path


def test_an_application_set_without_the_mesh_label_is_refused() -> None:
    [appset] = [o for o in example_objects({}) if o.kind == "ApplicationSet"]
    assert run("mesh_enrollment", [appset], {}) == []
    [(_, where, message)] = run("mesh_enrollment", [appset], SIDECARS)
    assert where == ["spec", "template", "spec"]
    assert "without istio-injection=enabled" in message
    enrolled = example_objects(
        {
            "applicationset": {
                "spec": {
                    "template": {
                        "spec": {
                            "syncPolicy": {
                                "managedNamespaceMetadata": {
                                    "labels": {"istio-injection": "enabled"}
                                }
                            }
                        }
                    }
                }
            }
        }
    )
    assert run("mesh_enrollment", enrolled, SIDECARS) == []


def test_ambient_admits_hbone_and_ztunnels_probes_and_labels_the_namespace(
    scaffold: Scaffold,
) -> None:
    declare(scaffold, AMBIENT)
    copy_spec(scaffold, "fraud-onnx")
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    assert not result.failed(), result.diagnostics
    rendering = render.render_all(result.valid_documents(), scaffold.root)
    assert rendering.diagnostics == []
    files = {
        str(f.path): yaml.safe_load(f.content) for f in rendering.files if f.path.suffix == ".yaml"
    }
    appset = files["rendered/argocd/staging.yaml"]["spec"]["template"]["spec"]
    assert (
        appset["syncPolicy"]["managedNamespaceMetadata"]["labels"]["istio.io/dataplane-mode"]
        == "ambient"
    )
    policy = files["rendered/staging/fraud-onnx/networkpolicy.yaml"]["spec"]
    assert {"port": 15008, "protocol": "TCP"} in policy["ingress"][0]["ports"]
    assert {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]} in policy["ingress"]
    assert not any(
        {"port": 15012, "protocol": "TCP"} in rule.get("ports", []) for rule in policy["egress"]
    )


def test_oidc_in_ambient_mode_is_refused(scaffold: Scaffold) -> None:
    declare(scaffold, AMBIENT)
    text = copy_spec(scaffold, "churn-kserve")
    assert_refused(
        refusals(scaffold, "churn-kserve", text),
        at(text, "type: oidc", "MG210", "auth.type oidc needs the mesh to check each request"),
    )


@pytest.mark.parametrize(
    ("istio", "needle", "message"),
    [
        (
            "  istio: {mode: sidecar, namespace: istio-system}\n",
            "mode: sidecar",
            "exposure.istio.mode must be one of sidecar-cni, ambient",
        ),
        (
            "",
            "mesh: istio",
            "exposure.mesh istio needs exposure.istio.mode: how the model namespaces join the mesh",
        ),
        (
            "  istio: {mode: ambient, namespace: Istio_System}\n",
            "namespace: Istio_System",
            "exposure.istio.namespace must be a namespace",
        ),
    ],
)
def test_a_mesh_without_a_mode_cni_needs_is_refused_where_it_is_written(
    scaffold: Scaffold, istio: str, needle: str, message: str
) -> None:
    values = VALUES.replace("  istio: {mode: sidecar-cni, namespace: istio-system}\n", istio)
    declare(scaffold, values)
    copy_spec(scaffold, "iris")
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    line, col = position(values, needle) if needle != "mode: sidecar" else _flow(values, needle)
    found = [(d.path, d.line, d.col, d.rule, d.message) for d in result.diagnostics]
    assert found == [("templates/values.yaml", line, col, "MG215", message)]


def _flow(text: str, needle: str) -> tuple[int, int]:
    """The position of the value after `needle`'s key inside a flow mapping."""
    [line] = [n for n, row in enumerate(text.splitlines(), 1) if needle + "," in row]
    return line, text.splitlines()[line - 1].index(needle) + needle.index(": ") + 3


# -- 3. to 8. disk, disruption, spread, credentials, storage initializer, GPUs ---------------


def test_every_disk_volume_is_sized_and_paid_for_by_the_servers_limit(objects: dict) -> None:
    found = spec_objects(objects, "staging", "chat-assistant")
    [deployment] = [obj for obj in found if obj.kind == "Deployment"]
    pod = deployment.data["spec"]["template"]["spec"]
    sizes = {v["name"]: v["emptyDir"].get("sizeLimit") for v in pod["volumes"]}
    assert sizes == {"tmp": "1Gi", "model-cache": "20Gi"}
    limit = to_bytes(pod["containers"][0]["resources"]["limits"]["ephemeral-storage"])
    assert limit is not None and limit >= (1 + 20) * 2**30
    assert run("ephemeral_storage", found) == []
    pod["volumes"][0]["emptyDir"] = {}
    assert [w for _, w, _ in run("ephemeral_storage", found)] == [
        ["spec", "template", "spec", "volumes", 0, "emptyDir"]
    ]


def test_budgets_let_unhealthy_pods_go(objects: dict) -> None:
    budgets = [obj for obj in objects.values() if obj.kind == "PodDisruptionBudget"]
    assert budgets
    assert {obj.data["spec"]["unhealthyPodEvictionPolicy"] for obj in budgets} == {"AlwaysAllow"}


def test_each_kserve_component_spreads_its_own_pods(objects: dict) -> None:
    [isvc] = [
        o
        for o in spec_objects(objects, "staging", "churn-pipeline")
        if o.kind == "InferenceService"
    ]
    for component in ("predictor", "transformer", "explainer"):
        constraints = isvc.data["spec"][component]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        assert all(c["labelSelector"]["matchLabels"]["component"] == component for c in constraints)
    assert run("topology_spread", [isvc]) == []


def test_the_storage_initializer_reads_the_stores_secret_as_files(objects: dict) -> None:
    for name in ("churn-pipeline", "iris-kserve"):
        found = spec_objects(objects, "staging", name)
        [isvc] = [o for o in found if o.kind == "InferenceService"]
        predictor = isvc.data["spec"]["predictor"]
        [fetch] = [c for c in predictor["initContainers"] if c["name"] == "storage-initializer"]
        folder = "/var/run/secrets/modelgate/artifact-store"
        assert fetch["env"] == [
            {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": f"{folder}/credentials"},
            {"name": "AWS_CONFIG_FILE", "value": f"{folder}/config"},
        ]
        assert {"name": "artifact-store-credentials", "mountPath": folder, "readOnly": True} in (
            fetch["volumeMounts"]
        )
        assert {
            "name": "artifact-store-credentials",
            "secret": {"secretName": "model-artifacts-s3", "defaultMode": 0o440},
        } in predictor["volumes"]
        assert fetch["securityContext"]["allowPrivilegeEscalation"] is False
        assert run("artifact_credentials", found) == []
        fetch["volumeMounts"] = fetch["volumeMounts"][:1]
        [(_, where, message)] = run("artifact_credentials", found)
        assert where == ["spec", "predictor", "initContainers", 0]
        assert "downloads s3://" in message


def test_a_service_account_is_a_credential_path_too(scaffold: Scaffold) -> None:
    declare(
        scaffold,
        VALUES.replace(
            "  s3: {secret: model-artifacts-s3}", "  s3: {serviceAccount: model-artifacts-reader}"
        ),
    )
    copy_spec(scaffold, "churn-pipeline")
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    rendering = render.render_all(result.valid_documents(), scaffold.root)
    assert rendering.diagnostics == []
    [isvc] = [
        yaml.safe_load(f.content)
        for f in rendering.files
        if str(f.path) == "rendered/staging/churn-pipeline/inferenceservice.yaml"
    ]
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "model-artifacts-reader"
    assert "env" not in predictor["initContainers"][0]
    assert [v["name"] for v in predictor["volumes"]] == ["kserve-provision-location"]


def test_an_hf_model_on_kserve_is_fetched_by_modelgates_hardened_initializer(
    scaffold: Scaffold,
) -> None:
    text = (PROJECT / "tests" / "upstream" / "llama3-8b.yaml").read_text(encoding="utf-8")
    path = scaffold.write_spec("llama3-8b", text)
    result = workspace.validate([path], scaffold.root, policies=False)
    rendering = render.render_all(result.valid_documents(), scaffold.root)
    [isvc] = [
        yaml.safe_load(f.content) for f in rendering.files if f.path.name == "inferenceservice.yaml"
    ]
    predictor = isvc["spec"]["predictor"]
    [fetch] = predictor["initContainers"]
    assert fetch["name"] == "storage-initializer"
    assert fetch["args"][0].startswith("hf://meta-llama/")
    assert fetch["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert predictor["model"]["volumeMounts"][-1]["mountPath"] == "/mnt/models"


def test_gpu_pods_tolerate_their_vendors_taint(objects: dict) -> None:
    found = spec_objects(objects, "production", "chat-assistant")
    [deployment] = [obj for obj in found if obj.kind == "Deployment"]
    pod = deployment.data["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert run("gpu_tolerations", found) == []
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}]
    [(_, where, message)] = run("gpu_tolerations", found)
    assert where == ["spec", "template", "spec"]
    assert "nvidia.com/gpu:NoSchedule" in message


def test_a_serverless_transformer_reaches_the_predictors_queue_proxy(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    text = copy_spec(scaffold, "churn-pipeline")
    text = text.replace("deploymentMode: RawDeployment", "deploymentMode: Serverless").replace(
        "    autoscaler: keda                      # KServe makes a KEDA ScaledObject "
        "(autoscalerClass keda)\n",
        "",
    )
    scaffold.write_spec("churn-pipeline", text)
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    assert not result.failed(), result.diagnostics
    judged = render.Renderer(scaffold.root, policy=policy.load_policy(scaffold.root)[0])
    rendering = render.render_all(result.valid_documents(), scaffold.root, renderer=judged)
    assert [d for d in rendering.diagnostics if d.rule.startswith("MG-")] == []
    files = {str(f.path): f.content for f in rendering.files}
    egress = yaml.safe_load(files["rendered/staging/churn-pipeline/networkpolicy.yaml"])["spec"][
        "egress"
    ]
    predictor = {"serving.kserve.io/inferenceservice": "churn-pipeline", "component": "predictor"}
    [to_predictor] = [
        rule for rule in egress if rule["to"] == [{"podSelector": {"matchLabels": predictor}}]
    ]
    assert [port["port"] for port in to_predictor["ports"]] == [8080, 8012]
    activator = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "knative-serving"}},
        "podSelector": {"matchLabels": {"app": "activator"}},
    }
    assert {"to": [activator], "ports": [{"port": 8012, "protocol": "TCP"}]} in egress


MISSHAPEN = [
    {"deployment": {"spec": {"template": {"spec": {"containers": [{"resources": []}]}}}}},
    {
        "deployment": {
            "spec": {"template": {"spec": {"containers": [{"resources": {"limits": 7}}]}}}
        }
    },
    {
        "deployment": {
            "spec": {"template": {"spec": {"volumes": [{"emptyDir": []}], "tolerations": 3}}}
        }
    },
    {"deployment": {"spec": {"template": {"spec": {"topologySpreadConstraints": ["x"]}}}}},
    {"inferenceservice": {"spec": {"predictor": {"model": {"readinessProbe": {"httpGet": "x"}}}}}},
    {"inferenceservice": {"spec": {"transformer": {"containers": [{"args": "x", "env": [3]}]}}}},
    {"inferenceservice-networkpolicy": {"spec": {"egress": [{"to": "x", "ports": {"port": 1}}]}}},
    {"inferenceservice-networkpolicy": {"spec": {"ingress": [{"from": [{"ipBlock": 1}]}]}}},
    {"applicationset": {"spec": {"template": {"spec": {"syncPolicy": []}}}}},
]


@pytest.mark.parametrize("patch", MISSHAPEN)
def test_misshapen_template_output_is_judged_without_failing(patch: dict) -> None:
    """Templates come from pull requests: whatever shape they render, the checks report
    findings, never an exception (which would be an internal error, exit 3)."""
    found = example_objects(patch)
    for check in ("network_peers", "ephemeral_storage", "topology_spread", "gpu_tolerations",
                  "artifact_credentials", "mesh_enrollment"):  # fmt: skip
        run(check, found, SIDECARS, {"spec": {"transformer": {"peers": []}}})

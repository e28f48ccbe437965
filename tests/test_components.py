"""Components and platforms render where they should: a KServe transformer and explainer
beside the predictor, a runtime definition as a ServingRuntime, runtimeVersion, ModelMesh,
the autoscaler a spec chooses (KServe's autoscalerClass, Knative's class, a KEDA ScaledObject
in place of a Deployment's HPA) and triton in Seldon mode as a Seldon Core v2 Model. Every
custom resource is checked against the real KServe and Seldon CRDs."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest
import yaml

from validator.render import crds as crd_files
from validator.render import kube_schemas

from .conftest import PROJECT, Scaffold, crd_dirs, located, run_cli
from .test_capabilities import (
    CANARY,
    DIGEST,
    EXPLAINER,
    MODELMESH,
    MULTI_MODEL_RUNTIME,
    NO_SCALING,
    RUNTIME,
    SERVERLESS,
    TRANSFORMER,
    engine_line,
    spec_line,
    write,
)


@pytest.fixture(scope="module")
def crds() -> kube_schemas.Schemas:
    return crd_files.load_dirs(crd_dirs())


def rendered(
    scaffold: Scaffold, base: str, replacements: dict[str, str], crds: kube_schemas.Schemas
) -> dict[str, dict[str, Any]]:
    """The staging manifests the spec renders to, by file name, each one checked against its
    schema (the CRDs for KServe and Seldon kinds), the spec and every rendered object having
    passed the project's policies (its rules and outputRules)."""
    if not (scaffold.root / "policies").exists():
        shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    if base == "kserve-artifact":  # its s3:// pickle is not scanned: production refuses it
        replacements = {**STAGING, **replacements}
    path, _ = write(scaffold, base, replacements)
    folders = [argument for folder in crd_dirs() for argument in ("--crds", str(folder))]
    result = run_cli("--root", str(scaffold.root), "render", *folders, str(path))
    assert result.code == 0, result.out + result.err
    folder = scaffold.root / "rendered" / "staging" / path.stem
    manifests = {
        file.name: yaml.safe_load(file.read_text(encoding="utf-8"))
        for file in sorted(folder.glob("*.yaml"))  # application.json is the ApplicationSet's
    }
    for name, manifest in manifests.items():
        problem, found = kube_schemas.check(manifest, crds)
        assert problem is None, (name, problem)
        assert found, f"{name}: no schema for {manifest['apiVersion']} {manifest['kind']}"
    return manifests


def annotations(manifest: dict[str, Any]) -> dict[str, str]:
    return manifest["metadata"]["annotations"]


PIPELINE = spec_line(RUNTIME + "  " + TRANSFORMER + "  " + EXPLAINER)
# ModelMesh fetches the model into its runtime's pods, where nothing checks the pickle's
# digest: production takes no such pickle by default (MG-SEC-009); these run in staging
STAGING = {"environments: [staging, production]": "environments: [staging]"}


def test_a_transformer_and_an_explainer_run_beside_the_predictor_on_the_specs_runtime(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(scaffold, "kserve-artifact", PIPELINE, crds)
    isvc = files["inferenceservice.yaml"]["spec"]
    model = isvc["predictor"]["model"]
    assert model["runtime"] == "churn-kserve"  # spec.runtime, named like the spec
    assert model["storageUri"] == "s3://growth-models/churn/model.joblib"
    transformer = isvc["transformer"]
    [container] = transformer["containers"]
    assert container["image"] == f"registry.example.com/ml/churn-features{DIGEST}"
    assert container["args"] == ["--feature_store=feast:6566"]
    assert container["resources"] == {  # and disk bounded (MG-OPS-130)
        "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "256Mi"},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # scaled like the predictor
    assert (transformer["minReplicas"], transformer["maxReplicas"]) == (2, 8)
    assert (transformer["scaleMetric"], transformer["scaleTarget"]) == ("cpu", 70)
    [explainer] = isvc["explainer"]["containers"]
    assert explainer["image"] == f"registry.example.com/ml/churn-explainer{DIGEST}"

    runtime = files["servingruntime.yaml"]
    assert runtime["kind"] == "ServingRuntime"
    assert runtime["metadata"]["name"] == "churn-kserve"
    assert runtime["metadata"]["namespace"] == "models-staging"
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "sklearn", "version": "1"}]
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
    assert runtime["spec"]["multiModel"] is False
    [server] = runtime["spec"]["containers"]
    assert server["image"] == f"registry.example.com/ml/sklearnserver{DIGEST}"
    assert server["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]


TENSORFLOW = {
    "    sha256: " + "c" * 64 + "\n    format: sklearn\n": "    format: tensorflow\n",
    "s3://growth-models/churn/model.joblib": "s3://growth-models/churn/savedmodel",
    "    protocol: v2\n": "    protocol: v1\n",
}


def test_a_transformer_is_probed_at_its_own_servers_paths(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    """A transformer is a KServe model server whatever serves the predictor: it is probed at
    the Open Inference Protocol's health paths, not at TensorFlow Serving's model path the
    predictor is probed at, nor at a path spec.probes gives the predictor."""
    files = rendered(scaffold, "kserve-artifact", {**TENSORFLOW, **spec_line(TRANSFORMER)}, crds)
    isvc = files["inferenceservice.yaml"]["spec"]
    model = isvc["predictor"]["model"]
    assert model["readinessProbe"]["httpGet"]["path"] == "/v1/models/churn-kserve"
    assert model["livenessProbe"]["httpGet"]["path"] == "/v1/models/churn-kserve"
    [container] = isvc["transformer"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"

    override = "probes:\n    readiness: {path: /v2/models/churn-kserve/ready}\n"
    files = rendered(scaffold, "kserve-artifact", spec_line(TRANSFORMER + "  " + override), crds)
    isvc = files["inferenceservice.yaml"]["spec"]
    ready = isvc["predictor"]["model"]["readinessProbe"]["httpGet"]["path"]
    assert ready == "/v2/models/churn-kserve/ready"
    [container] = isvc["transformer"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_engine_runtime_names_the_defined_runtime(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(
        scaffold,
        "kserve-artifact",
        {**engine_line("v2", "runtime: churn-kserve"), **spec_line(RUNTIME)},
        crds,
    )
    assert files["inferenceservice.yaml"]["spec"]["predictor"]["model"]["runtime"] == (
        "churn-kserve"
    )
    assert files["servingruntime.yaml"]["metadata"]["name"] == "churn-kserve"


def test_a_defined_runtime_under_another_name_is_refused(scaffold: Scaffold) -> None:
    """The ServingRuntime a spec defines is named like the spec: under another spec's name
    the one field manager would overwrite that spec's runtime without a conflict."""
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    path, text = write(
        scaffold, "kserve-artifact", {**engine_line("v2", "runtime: iris"), **spec_line(RUNTIME)}
    )
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    line, col = located(text, "runtime: iris", "iris")
    assert result.code == 1
    assert f"models/churn-kserve.yaml:{line}:{col}: MG302" in result.out, result.out


def test_runtime_version_picks_the_tag_of_a_cluster_runtime(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(
        scaffold,
        "kserve-artifact",
        engine_line("v2", "runtime: kserve-sklearnserver\n    runtimeVersion: 1.3.2"),
        crds,
    )
    model = files["inferenceservice.yaml"]["spec"]["predictor"]["model"]
    assert (model["runtime"], model["runtimeVersion"]) == ("kserve-sklearnserver", "1.3.2")


def test_no_runtime_definition_renders_no_serving_runtime(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(scaffold, "kserve-artifact", {}, crds)
    assert "servingruntime.yaml" not in files
    isvc = files["inferenceservice.yaml"]
    assert annotations(isvc)["serving.kserve.io/autoscalerClass"] == "hpa"
    assert "transformer" not in isvc["spec"] and "explainer" not in isvc["spec"]
    assert "runtimeVersion" not in isvc["spec"]["predictor"]["model"]


def test_modelmesh_puts_the_model_in_a_multi_model_runtime(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    runtime = spec_line(MULTI_MODEL_RUNTIME.replace("v1, v2", "grpc-v2, v2") + "    replicas: 3\n")
    files = rendered(
        scaffold, "kserve-artifact", {**MODELMESH, **NO_SCALING, **STAGING, **runtime}, crds
    )
    isvc = files["inferenceservice.yaml"]
    assert annotations(isvc)["serving.kserve.io/deploymentMode"] == "ModelMesh"
    assert "networking.kserve.io/visibility" not in isvc["metadata"]["labels"]
    # the runtime's pods run it: the predictor is the model alone
    assert isvc["spec"] == {
        "predictor": {
            "model": {
                "modelFormat": {"name": "sklearn"},
                "runtime": "churn-kserve",
                "protocolVersion": "v2",
                "storageUri": "s3://growth-models/churn/model.joblib",
            }
        }
    }
    spec = files["servingruntime.yaml"]["spec"]
    assert spec["multiModel"] is True
    assert spec["grpcDataEndpoint"] == "port:8085"
    assert spec["replicas"] == 3  # the runtime's pods, shared by every ModelMesh model
    [server] = spec["containers"]
    assert server["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    assert "ports" not in server
    # the shared pods are not this model's: no mesh policy selects them for it
    assert set(files) == {"inferenceservice.yaml", "servingruntime.yaml"}


def test_keda_scales_a_kserve_raw_deployment_through_its_autoscaling_metrics(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(
        scaffold,
        "kserve-artifact",
        {
            **PIPELINE,
            "metric: cpu": "autoscaler: keda\n    metric: rps",
            "target: 70": "target: 25",
        },
        crds,
    )
    isvc = files["inferenceservice.yaml"]
    assert annotations(isvc)["serving.kserve.io/autoscalerClass"] == "keda"
    predictor = isvc["spec"]["predictor"]
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    [metric] = predictor["autoScaling"]["metrics"]
    assert metric["type"] == "External"
    external = metric["external"]
    assert external["metric"]["backend"] == "prometheus"
    assert external["metric"]["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert external["metric"]["query"] == (
        'sum(modelgate:requests_per_second{namespace="models-staging",'
        'pod=~"churn-kserve-predictor-[a-z0-9]+-[a-z0-9]+"})'
    )
    assert external["target"] == {"type": "Value", "value": "25"}
    [transformer_metric] = isvc["spec"]["transformer"]["autoScaling"]["metrics"]
    assert "churn-kserve-transformer-" in transformer_metric["external"]["metric"]["query"]


def test_keda_on_cpu_in_kserve_is_a_resource_metric(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(
        scaffold, "kserve-artifact", {"metric: cpu": "autoscaler: keda\n    metric: cpu"}, crds
    )
    [metric] = files["inferenceservice.yaml"]["spec"]["predictor"]["autoScaling"]["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }


@pytest.mark.parametrize(
    ("autoscaler", "metric", "knative_class"),
    [
        ("knative", "rps", "kpa.autoscaling.knative.dev"),
        ("hpa", "cpu", "hpa.autoscaling.knative.dev"),
    ],
)
def test_serverless_names_knatives_autoscaler_class(
    scaffold: Scaffold, crds: kube_schemas.Schemas, autoscaler: str, metric: str, knative_class: str
) -> None:
    files = rendered(
        scaffold,
        "kserve-artifact",
        {
            **SERVERLESS,
            **CANARY,
            "metric: cpu": f"autoscaler: {autoscaler}\n    metric: {metric}",
            "target: 70": "target: 40",
        },
        crds,
    )
    isvc = files["inferenceservice.yaml"]
    assert annotations(isvc)["autoscaling.knative.dev/class"] == knative_class
    assert "serving.kserve.io/autoscalerClass" not in annotations(isvc)
    predictor = isvc["spec"]["predictor"]
    # min-scale, max-scale, metric and target: KServe writes them from its own fields
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == (metric, 40)
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 8)
    assert predictor["canaryTrafficPercent"] == 10


@pytest.mark.parametrize(
    ("metric", "trigger"),
    [
        (
            "concurrency",
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                    "query": 'sum(modelgate:requests_in_flight{namespace="models-staging",'
                    'pod=~"chat-assistant-[a-z0-9]+-[a-z0-9]+"})',
                    "threshold": "16",
                },
            },
        ),
        ("cpu", {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "16"}}),
    ],
)
def test_keda_replaces_the_hpa_of_a_deployment(
    scaffold: Scaffold, crds: kube_schemas.Schemas, metric: str, trigger: dict[str, Any]
) -> None:
    files = rendered(
        scaffold,
        "chat-assistant",
        {"    metric: concurrency\n": f"    autoscaler: keda\n    metric: {metric}\n"},
        crds,
    )
    assert "hpa.yaml" not in files
    scaled = files["scaledobject.yaml"]
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert scaled["metadata"]["name"] == "chat-assistant"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chat-assistant",
    }
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 6)
    assert scaled["spec"]["triggers"] == [trigger]
    assert "replicas" not in files["deployment.yaml"]["spec"]  # KEDA's HPA owns the count


def test_an_hpa_deployment_renders_no_scaled_object(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    files = rendered(scaffold, "chat-assistant", {}, crds)
    assert "hpa.yaml" in files and "scaledobject.yaml" not in files


def test_triton_in_seldon_mode_is_a_seldon_model_on_triton_servers(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    from .test_capabilities import ACCEPTED

    crd_dirs(seldon=True)  # the Model is checked against Seldon's CRD
    _, replacements = ACCEPTED["Triton in Seldon mode"]
    files = rendered(scaffold, "fraud-onnx", replacements, crds)
    assert set(files) == {"model.yaml"}  # no Deployment, ConfigMap, Service or HPA
    model = files["model.yaml"]
    assert (model["apiVersion"], model["kind"]) == ("mlops.seldon.io/v1alpha1", "Model")
    assert model["spec"] == {
        "storageUri": "s3://risk-models/fraud/2024-11-02/",  # the Triton model folder
        "requirements": ["onnx", "triton"],
        "memory": "4Gi",
        "replicas": 2,
        "minReplicas": 2,
        "maxReplicas": 10,
    }


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("transformer", TRANSFORMER),
        ("explainer", EXPLAINER),
        ("runtime", RUNTIME),
    ],
)
def test_every_component_image_is_judged_like_the_model_image(
    scaffold: Scaffold, field: str, text: str
) -> None:
    """Pinned by digest (MG-SEC-001), from an allowed registry (MG-SEC-002), at its position."""
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    tagged = re.sub(
        r"registry\.example\.com/ml/([-a-z]+)@sha256:d+", r"docker.io/someone/\1:v1", text
    )
    path, written = write(scaffold, "kserve-artifact", spec_line(tagged))
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out
    line = written[: written.index("image: docker.io")].count("\n") + 1
    for rule in ("MG-SEC-001", "MG-SEC-002"):
        assert f"models/{path.name}:{line}:12: {rule} " in result.out, result.out


def test_smoke_requests_reach_a_transformer_first(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    """The kubernetes target forwards to the component KServe routes requests to first."""
    from validator.deploy.kubernetes import _service

    with_transformer = rendered(scaffold, "kserve-artifact", PIPELINE, crds)
    manifests = [with_transformer["inferenceservice.yaml"], with_transformer["servingruntime.yaml"]]
    assert _service(None, manifests) == ("models-staging", "svc/churn-kserve-transformer", 80)  # type: ignore[arg-type]
    modelmesh = rendered(
        scaffold,
        "kserve-artifact",
        {
            **MODELMESH,
            **NO_SCALING,
            **STAGING,
            **spec_line(MULTI_MODEL_RUNTIME.replace("v1, v2", "v2") + "    replicas: 2\n"),
        },
        crds,
    )
    assert _service(None, [modelmesh["inferenceservice.yaml"]]) == (  # type: ignore[arg-type]
        "models-staging",
        "svc/modelmesh-serving",  # ModelMesh's REST proxy, shared by the namespace's models
        8008,
    )
    predictor_only = rendered(scaffold, "kserve-artifact", {}, crds)["inferenceservice.yaml"]
    assert _service(None, [predictor_only]) == ("models-staging", "svc/churn-kserve-predictor", 80)  # type: ignore[arg-type]


def test_the_output_rules_judge_a_serving_runtimes_containers(scaffold: Scaffold) -> None:
    """A template that renders the runtime's container without its security context is caught
    by the output rules, like a Deployment's container would be."""
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    template = scaffold.root / "templates" / "kserve" / "servingruntime.yaml.j2"
    text = template.read_text(encoding="utf-8")
    security = "      securityContext:{{ runtime.container_security | toyaml(8) }}\n"
    assert security in text
    template.write_text(text.replace(security, ""), encoding="utf-8")
    path, _ = write(scaffold, "kserve-artifact", {**STAGING, **spec_line(RUNTIME)})
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 1, result.out
    found = result.out + result.err
    assert "rendered/staging/churn-kserve/servingruntime.yaml:" in found
    assert "MG-SEC-111 " in found, found


API_SERVER_CASES = {
    "transformer, explainer, runtime and KEDA": ("kserve-artifact", {
        **PIPELINE, "metric: cpu": "autoscaler: keda\n    metric: rps"}),
    "ModelMesh on a multi-model runtime": ("kserve-artifact", {
        **MODELMESH, **NO_SCALING,
        **spec_line(MULTI_MODEL_RUNTIME.replace("v1, v2", "grpc-v2, v2") + "    replicas: 3\n")}),
    "Knative's HPA class in Serverless": ("kserve-artifact", {
        **SERVERLESS, **CANARY, "metric: cpu": "autoscaler: hpa\n    metric: cpu"}),
    "triton in Seldon mode": ("fraud-onnx", None),
}  # fmt: skip


@pytest.mark.kube
@pytest.mark.parametrize("case", sorted(API_SERVER_CASES))
def test_a_real_api_server_accepts_and_keeps_every_component_field(
    scaffold: Scaffold, kube: Any, case: str
) -> None:
    """A server-side dry run with strict field validation (the KServe and Seldon CRDs served)
    takes every rendered object and gives back every field it was sent."""
    from .test_capabilities import ACCEPTED
    from .test_kube_apiserver import dry_run_problems, manifest_files

    base, replacements = API_SERVER_CASES[case]
    if replacements is None:
        replacements = ACCEPTED["Triton in Seldon mode"][1]
    path, _ = write(scaffold, base, replacements)
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 0, result.out + result.err
    folder = scaffold.root / "rendered" / "staging" / path.stem
    problems = [
        problem
        for file in manifest_files(folder)
        if file.name not in ("peerauthentication.yaml", "requestauthentication.yaml",
                             "authorizationpolicy.yaml")  # no Istio CRD at hand
        for problem in dry_run_problems(kube, file, file.name)
    ]  # fmt: skip
    assert problems == []

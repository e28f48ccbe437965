"""Rendered manifests do what they say: read field by field, each one works the way a cluster,
Argo CD and the engine will read it (replicas left to the autoscaler, caches where the
engine writes, the file Triton loads, the health paths the server answers, namespaces that
enforce Pod Security, network policies both ways, replicas spread)."""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import load

from .conftest import PROJECT


def spec_data(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "models" / f"{name}.yaml").read_text(encoding="utf-8"))


def rendered(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The spec's production manifests by file name (rendered into memory)."""
    name = data["metadata"]["name"]
    document, problems = load.load_text(yaml.safe_dump(data), f"models/{name}.yaml")
    assert document is not None and not problems
    rendering = render.render_document(document, PROJECT)
    assert rendering.diagnostics == []
    folder = PurePosixPath("rendered", "production", name)
    return {
        f.path.name: yaml.safe_load(f.content) for f in rendering.files if f.path.parent == folder
    }


def pod(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return manifests["deployment.yaml"]["spec"]["template"]["spec"]


def server(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return pod(manifests)["containers"][0]


def custom_container(protocol: str) -> dict[str, Any]:
    data = spec_data("churn-kserve")
    data["spec"]["engine"] = {"name": "docker", "protocol": protocol}
    data["spec"].pop("rollout", None)
    return data


@pytest.mark.parametrize("example", ["chat-assistant", "fraud-onnx"])
def test_the_autoscaler_owns_replicas(example: str) -> None:
    """A Deployment that sets `replicas` beside an HPA is reset to it on every Argo CD sync."""
    manifests = rendered(spec_data(example))
    assert "replicas" not in manifests["deployment.yaml"]["spec"]
    target = manifests["hpa.yaml"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", example)
    assert manifests["hpa.yaml"]["spec"]["minReplicas"] == 2


def test_vllm_caches_weights_on_its_writable_volume() -> None:
    """Under a read-only root filesystem vLLM can only download into a mounted volume."""
    container = server(rendered(spec_data("chat-assistant")))
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {item["name"]: item.get("value") for item in container["env"]}
    mounts = [mount["mountPath"] for mount in container["volumeMounts"]]
    for variable in ("HF_HOME", "VLLM_CACHE_ROOT"):
        assert any(env[variable].startswith(mount + "/") for mount in mounts), variable
    assert env["VLLM_NO_USAGE_STATS"] == "1"


def test_the_spec_environment_wins_over_the_engine_defaults() -> None:
    data = spec_data("chat-assistant")
    data["spec"]["engine"]["env"].append({"name": "HF_HOME", "value": "/models-cache/hf"})
    env = [item for item in server(rendered(data))["env"] if item["name"] == "HF_HOME"]
    assert env == [{"name": "HF_HOME", "value": "/models-cache/hf"}]


def test_tgi_caches_weights_on_its_writable_volume() -> None:
    data = spec_data("chat-assistant")
    data["spec"]["engine"].update(name="tgi", version="2.4.0")
    data["spec"]["engine"].pop("args")
    container = server(rendered(data))
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert {"name": "model-cache", "mountPath": env["HF_HOME"]} in container["volumeMounts"]


@pytest.mark.parametrize(
    ("format_", "artifact"),
    [("onnx", "s3://risk-models/fraud/model.onnx"), ("pytorch", "s3://risk/fraud/torchscript")],
)
def test_triton_loads_the_file_the_initializer_fetched(format_: str, artifact: str) -> None:
    """The storage initializer keeps the object's name inside the directory it is given;
    config.pbtxt must name that file, or Triton looks for model.onnx / model.pt."""
    data = spec_data("fraud-onnx")
    data["spec"]["model"].update(format=format_, artifact=artifact)
    manifests = rendered(data)
    fetch = pod(manifests)["initContainers"][0]
    assert fetch["args"] == [artifact, "/models/fraud-onnx/1"]
    config = manifests["configmap.yaml"]["data"]["config.pbtxt"]
    assert f'default_model_filename: "{artifact.rsplit("/", 1)[1]}"' in config.splitlines()


def test_triton_metrics_port_is_declared_and_reachable_by_scrapers() -> None:
    manifests = rendered(spec_data("fraud-onnx"))
    container = server(manifests)
    assert {"name": "metrics", "containerPort": 8002, "protocol": "TCP"} in container["ports"]
    assert "--metrics-port=8002" in container["args"]
    scraped = [
        rule
        for rule in manifests["networkpolicy.yaml"]["spec"]["ingress"]
        if rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    ]
    assert scraped and "modelgate.dev/metrics-scrapers" in str(scraped[0]["from"])


@pytest.mark.parametrize(
    ("protocol", "live", "ready"),
    [
        ("v1", "/", "/v1/models/churn-kserve"),
        ("v2", "/v2/health/live", "/v2/health/ready"),
        ("openai", "/health", "/health"),
    ],
)
def test_custom_containers_are_probed_on_their_protocol_paths(
    protocol: str, live: str, ready: str
) -> None:
    """A v1 server has no /v2/health/ready: probed there it would never become Ready."""
    container = server(rendered(custom_container(protocol)))
    assert container["livenessProbe"]["httpGet"]["path"] == live
    assert container["readinessProbe"]["httpGet"]["path"] == ready
    assert container["startupProbe"]["httpGet"]["path"] == ready


def test_kserve_custom_container_is_probed_on_its_protocol_path() -> None:
    data = spec_data("churn-kserve")
    data["spec"]["engine"]["protocol"] = "v1"
    manifests = rendered(data)
    predictor = manifests["inferenceservice.yaml"]["spec"]["predictor"]
    probe = predictor["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/v1/models/churn-kserve"


def test_namespaces_argo_cd_creates_enforce_pod_security() -> None:
    text = (PROJECT / "rendered" / "argocd" / "production.yaml").read_text(encoding="utf-8")
    sync = yaml.safe_load(text)["spec"]["template"]["spec"]["syncPolicy"]
    assert "CreateNamespace=true" in sync["syncOptions"]
    labels = sync["managedNamespaceMetadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def egress_ports(manifests: dict[str, dict[str, Any]]) -> list[list[dict[str, Any]]]:
    policy = manifests["networkpolicy.yaml"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    return [rule["ports"] for rule in policy["egress"]]


def test_network_policy_limits_egress_to_dns_artifact_downloads_and_istiod() -> None:
    manifests = rendered(spec_data("fraud-onnx"))
    rules = manifests["networkpolicy.yaml"]["spec"]["egress"]
    assert egress_ports(manifests) == [
        [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        [{"port": 443, "protocol": "TCP"}],
        [{"port": 15012, "protocol": "TCP"}],  # the sidecar's istiod (exposure.istio)
    ]
    assert rules[2]["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
            "podSelector": {"matchLabels": {"app": "istiod"}},
        }
    ]
    assert rules[1]["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
    ], "the cloud metadata service stays out of reach"


def test_a_model_image_that_downloads_nothing_reaches_only_dns_and_istiod() -> None:
    manifests = rendered(custom_container("v2"))
    assert egress_ports(manifests) == [
        [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        [{"port": 15012, "protocol": "TCP"}],
    ]


def test_values_narrow_egress_to_the_artifact_stores(tmp_path: Path) -> None:
    values = render.load_values(PROJECT)
    narrowed = copy.deepcopy(values)
    narrowed["egress"] = {"artifacts": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
    data = spec_data("fraud-onnx")
    document, _ = load.load_text(yaml.safe_dump(data), "models/fraud-onnx.yaml")
    assert document is not None
    files = render.render_document(document, PROJECT, values=narrowed).files
    policy = next(f for f in files if f.path.name == "networkpolicy.yaml")
    egress = yaml.safe_load(policy.content)["spec"]["egress"]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_replicas_spread_over_nodes_and_zones() -> None:
    spread = pod(rendered(spec_data("fraud-onnx")))["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread] == [
        ("kubernetes.io/hostname", "ScheduleAnyway"),
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ]
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "fraud-onnx"
        }


def test_no_empty_env_for_the_server_to_drop() -> None:
    """The API server drops `env: []`; Argo CD would then report the Deployment out of sync."""
    assert "env" not in server(rendered(spec_data("fraud-onnx")))


def test_no_empty_args_for_the_server_to_drop() -> None:
    """A custom container with no `engine.args` rendered `args: []`, which the API server drops
    (found by tests/test_kube_apiserver.py): Argo CD would report it out of sync forever."""
    assert "args" not in server(rendered(custom_container("v2")))

"""Pod-level fields (issue 15): annotations, the GPU vendor and product, scheduling, probes and
volumes. Each renders where it should (read back from the rendered manifests, which the
Kubernetes schemas and the real KServe CRD accept), each refusal is at its file:line:col, and a
schema error in the new fields carries its position. The example specs are the bases:
chat-assistant (vLLM, a Deployment), churn-kserve (a KServe custom container), fraud-onnx
(Triton) and iris (a Seldon Model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from validator.render import crds as crd_files
from validator.render import kube_schemas

from . import kube_env
from .conftest import PROJECT, Scaffold, crd_dirs, located, run_cli
from .test_kube_apiserver import dry_run_problems, objects_in

BASES = {
    name: (PROJECT / "models" / f"{name}.yaml").read_text(encoding="utf-8")
    for name in ("iris", "chat-assistant", "churn-kserve", "fraud-onnx")
}
BEFORE_COMPLIANCE = "  compliance:\n"
GPU_LINE = "    gpu: 1\n"
# churn-kserve with its model as an artifact on a KServe runtime instead of an image
AS_ARTIFACT = {
    "    image: registry.example.com/ml/churn-sklearn@sha256:"
    "3b1f0c9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c\n": (
        "    artifact: s3://models/churn/model.joblib\n    sha256: " + "a" * 64 + "\n"
    ),
}
SERVERLESS = {"deploymentMode: RawDeployment": "deploymentMode: Serverless"}


@pytest.fixture(scope="module")
def crds() -> kube_schemas.Schemas:
    return crd_files.load_dirs(crd_dirs())


def write(scaffold: Scaffold, base: str, replacements: dict[str, str]) -> tuple[Path, str]:
    text = BASES[base]
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in {base}.yaml"
        text = text.replace(old, new, 1)
    return scaffold.write_spec(base, text), text


def spec_block(block: str) -> dict[str, str]:
    """`block` (YAML under spec, indented by two) inserted before spec.compliance."""
    return {BEFORE_COMPLIANCE: block + BEFORE_COMPLIANCE}


def rendered(scaffold: Scaffold, path: Path, environment: str = "staging") -> dict[str, Any]:
    """Render one spec with the real CLI; its manifests for `environment` by file stem."""
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 0, result.out + result.err
    folder = scaffold.root / "rendered" / environment / path.stem
    return {
        file.stem: yaml.safe_load(file.read_text(encoding="utf-8"))
        for file in sorted(folder.glob("*.yaml"))
    }


def accepted(manifest: dict[str, Any], schemas: kube_schemas.Schemas) -> None:
    problem, found = kube_schemas.check(manifest, schemas)
    assert (problem, found) == (None, True), problem


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def volumes_of(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in pod.get("volumes", [])}


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {mount["name"]: mount["mountPath"] for mount in container.get("volumeMounts", [])}


GPU_POD = {
    "  description: Small": (
        "  annotations:\n"
        '    prometheus.io/scrape: "true"\n'
        "    runbook: https://runbooks.example.com/chat\n"
        "  description: Small"
    ),
    GPU_LINE: GPU_LINE + "    acceleratorProduct: NVIDIA-A100-SXM4-80GB\n",
    **spec_block(
        "  scheduling:\n"
        "    nodeSelector: {cloud.google.com/gke-nodepool: gpu-a100}\n"
        "    tolerations:\n"
        "      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}\n"
        "      - {key: spot, operator: Equal, value: 'true', effect: NoExecute,"
        " tolerationSeconds: 30}\n"
        "    affinity:\n"
        "      nodeAffinity:\n"
        "        preferredDuringSchedulingIgnoredDuringExecution:\n"
        "          - weight: 20\n"
        "            preference:\n"
        "              matchExpressions: [{key: gpu-memory, operator: Gt, values: ['40']}]\n"
        "      podAntiAffinity:\n"
        "        requiredDuringSchedulingIgnoredDuringExecution:\n"
        "          - topologyKey: kubernetes.io/hostname\n"
        "            labelSelector: {matchLabels: {app.kubernetes.io/name: chat-assistant}}\n"
        "    topologySpread:\n"
        "      - {maxSkew: 2, topologyKey: topology.kubernetes.io/zone,"
        " whenUnsatisfiable: DoNotSchedule}\n"
        "  probes:\n"
        "    readiness: {path: /ready, periodSeconds: 10, timeoutSeconds: 5}\n"
        "    liveness: {initialDelaySeconds: 30, failureThreshold: 5}\n"
        "    startup: {periodSeconds: 10}\n"
        "  volumes:\n"
        "    cache: {sizeLimit: 80Gi}\n"
        "    shm: {sizeLimit: 8Gi}\n"
    ),
}


def test_a_gpu_deployment_renders_every_pod_field_into_its_pod_spec(scaffold: Scaffold) -> None:
    path, _ = write(scaffold, "chat-assistant", GPU_POD)
    manifests = rendered(scaffold, path)
    deployment = manifests["deployment"]
    accepted(deployment, kube_schemas.Schemas())
    pod = pod_of(deployment)
    [server] = pod["containers"]
    selector = {"app.kubernetes.io/name": "chat-assistant"}

    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-nodepool": "gpu-a100",
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    }
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
    ]
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [
        {
            "weight": 20,
            "preference": {
                "matchExpressions": [{"key": "gpu-memory", "operator": "Gt", "values": ["40"]}]
            },
        }
    ]
    assert pod["affinity"]["podAntiAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}}
        ]
    }
    # the spec's constraints replace the default two, each over the model's own pods
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": selector},
        }
    ]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert server["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 30,
        "periodSeconds": 10,
        "failureThreshold": 5,
    }
    # the startup probe checks readiness, and covers the 600 s the deploy waits
    assert server["startupProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 60,
    }
    volumes = volumes_of(pod)
    assert volumes["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "80Gi"}
    assert mounts_of(server) == {
        "tmp": "/tmp",
        "shm": "/dev/shm",
        "model-cache": "/models-cache",
    }
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    # annotations reach the pods and every object rendered for the spec
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == (
        "true"
    )
    for name in ("deployment", "service", "hpa", "pdb", "networkpolicy", "ingress"):
        assert manifests[name]["metadata"]["annotations"]["runbook"] == (
            "https://runbooks.example.com/chat"
        ), name


def test_a_deployment_spreads_over_nodes_and_zones_unless_the_spec_says_otherwise(
    scaffold: Scaffold,
) -> None:
    path, _ = write(scaffold, "fraud-onnx", {})
    spread = pod_of(rendered(scaffold, path)["deployment"])["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    path, _ = write(scaffold, "fraud-onnx", spec_block("  scheduling: {topologySpread: []}\n"))
    deployment = rendered(scaffold, path)["deployment"]
    assert "topologySpreadConstraints" not in pod_of(deployment)
    accepted(deployment, kube_schemas.Schemas())


def test_the_model_cache_is_sized_by_the_spec_else_by_the_values(scaffold: Scaffold) -> None:
    path, _ = write(scaffold, "fraud-onnx", {})
    assert volumes_of(pod_of(rendered(scaffold, path)["deployment"]))["models"]["emptyDir"] == {
        "sizeLimit": "20Gi"  # templates/values.yaml modelCacheSize
    }
    path, _ = write(scaffold, "fraud-onnx", spec_block("  volumes: {cache: {sizeLimit: 5Gi}}\n"))
    pod = pod_of(rendered(scaffold, path)["deployment"])
    assert volumes_of(pod)["models"]["emptyDir"] == {"sizeLimit": "5Gi"}
    assert "shm" not in volumes_of(pod)


def test_a_long_readiness_timeout_lengthens_the_default_startup_probe(
    scaffold: Scaffold,
) -> None:
    longer = {"readinessTimeoutSeconds: 600": "readinessTimeoutSeconds: 1800"}
    path, _ = write(scaffold, "chat-assistant", longer)
    [server] = pod_of(rendered(scaffold, path)["deployment"])["containers"]
    startup = server["startupProbe"]
    assert (startup["periodSeconds"], startup["failureThreshold"]) == (5, 360)


@pytest.mark.parametrize(
    ("vendor", "resource", "label", "product"),
    [
        (None, "nvidia.com/gpu", "nvidia.com/gpu.product", "NVIDIA-L4"),
        ("amd", "amd.com/gpu", "amd.com/gpu.product-name", "AMD_Instinct_MI300X_OAM"),
        ("intel", "gpu.intel.com/i915", "gpu.intel.com/product", "Max_1550"),
    ],
)
def test_gpus_are_requested_from_their_vendors_device_plugin(
    scaffold: Scaffold,
    crds: kube_schemas.Schemas,
    vendor: str | None,
    resource: str,
    label: str,
    product: str,
) -> None:
    choice = f"    accelerator: {vendor}\n" if vendor else ""
    asked = f"    gpu: 2\n{choice}    acceleratorProduct: {product}\n"
    path, _ = write(scaffold, "churn-kserve", {"memory: 2Gi}\n": "memory: 2Gi}\n" + asked})
    isvc = rendered(scaffold, path)["inferenceservice"]
    accepted(isvc, crds)
    predictor = isvc["spec"]["predictor"]
    [container] = predictor["containers"]
    gpus = {k: v for k, v in container["resources"]["limits"].items() if "gpu" in k}
    assert gpus == {resource: "2"}
    assert container["resources"]["requests"][resource] == "2"
    assert predictor["nodeSelector"] == {label: product}


KSERVE_POD = {
    **AS_ARTIFACT,
    **SERVERLESS,
    "  description: Customer": (
        "  annotations: {example.com/cost-center: growth}\n  description: Customer"
    ),
    "metric: cpu": "metric: concurrency",
    "target: 70": "target: 10",
    **spec_block(
        "  scheduling:\n"
        "    nodeSelector: {pool: cpu-large}\n"
        "    tolerations: [{key: dedicated, operator: Equal, value: ml}]\n"
        "    affinity:\n"
        "      podAntiAffinity:\n"
        "        preferredDuringSchedulingIgnoredDuringExecution:\n"
        "          - weight: 100\n"
        "            podAffinityTerm:\n"
        "              topologyKey: kubernetes.io/hostname\n"
        "              labelSelector:\n"
        "                matchExpressions: [{key: team, operator: In, values: [growth]}]\n"
        "    topologySpread:\n"
        "      - {maxSkew: 1, topologyKey: kubernetes.io/hostname,"
        " whenUnsatisfiable: ScheduleAnyway}\n"
        "  probes:\n"
        "    readiness: {path: /v2/models/churn-kserve/ready}\n"
        "    startup: {periodSeconds: 10, failureThreshold: 30}\n"
        "  volumes: {shm: {sizeLimit: 1Gi}}\n"
    ),
}


def test_an_inference_service_predictor_takes_scheduling_probes_shm_and_annotations(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    path, _ = write(scaffold, "churn-kserve", KSERVE_POD)
    isvc = rendered(scaffold, path)["inferenceservice"]
    accepted(isvc, crds)
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert predictor["nodeSelector"] == {"pool": "cpu-large"}
    assert predictor["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml"}]
    assert predictor["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ][0]["podAffinityTerm"]["topologyKey"] == ("kubernetes.io/hostname")
    [spread] = predictor["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    # over the pods KServe labels with the InferenceService's name and the component
    assert spread["labelSelector"] == {
        "matchLabels": {
            "serving.kserve.io/inferenceservice": "churn-kserve",
            "component": "predictor",
        }
    }
    assert predictor["annotations"] == {"example.com/cost-center": "growth"}
    assert isvc["metadata"]["annotations"]["example.com/cost-center"] == "growth"
    # beside /dev/shm, the volume the model is fetched into and its digest checked in before
    # the runtime starts (the spec names its sha256; tests/test_provenance.py)
    assert predictor["volumes"] == [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "kserve-provision-location", "emptyDir": {"sizeLimit": "20Gi"}},
        # the artifact store's credentials, as files (templates/values.yaml artifactCredentials)
        {
            "name": "artifact-store-credentials",
            "secret": {"defaultMode": 288, "secretName": "model-artifacts-s3"},
        },
    ]
    # the runtime's container is merged with `model`: the mounts and the probes go there
    assert mounts_of(model) == {"shm": "/dev/shm", "kserve-provision-location": "/mnt/models"}
    assert model["readinessProbe"]["httpGet"] == {
        "path": "/v2/models/churn-kserve/ready",
        "port": 8080,
    }
    assert model["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert model["startupProbe"] == {
        "httpGet": {"path": "/v2/models/churn-kserve/ready", "port": 8080},
        "periodSeconds": 10,
        "failureThreshold": 30,
    }


def test_a_custom_container_on_kserve_gets_the_probes_the_spec_names(
    scaffold: Scaffold, crds: kube_schemas.Schemas
) -> None:
    path, _ = write(
        scaffold,
        "churn-kserve",
        spec_block("  probes:\n    readiness: {path: /ready}\n    liveness: {path: /alive}\n"),
    )
    isvc = rendered(scaffold, path)["inferenceservice"]
    accepted(isvc, crds)
    [container] = isvc["spec"]["predictor"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/alive", "port": 8080}
    assert "startupProbe" not in container  # KServe: only where the spec asks for one
    for absent in ("nodeSelector", "tolerations", "affinity", "volumes", "annotations"):
        assert absent not in isvc["spec"]["predictor"], absent


def test_compose_sizes_dev_shm_and_checks_the_readiness_path(scaffold: Scaffold) -> None:
    path, _ = write(
        scaffold,
        "churn-kserve",
        spec_block("  probes: {readiness: {path: /ready}}\n  volumes: {shm: {sizeLimit: 2Gi}}\n"),
    )
    rendered(scaffold, path)
    compose = yaml.safe_load(
        (scaffold.root / "rendered/docker/churn-kserve/compose.yaml").read_text(encoding="utf-8")
    )
    service = compose["services"]["model"]
    assert service["shm_size"] == "2g"
    assert "http://127.0.0.1:8080/ready'" in service["healthcheck"]["test"][-1]
    assert service["read_only"] is True


# (base, replacements, code, text around the refused value or key, the refused value or key)
REFUSED = {
    "/dev/shm larger than the memory limit": (
        "chat-assistant",
        spec_block("  volumes: {shm: {sizeLimit: 32Gi}}\n"),
        "MG230",
        "sizeLimit: 32Gi",
        "32Gi",
    ),
    "a startup probe that gives up before the deploy does": (
        "chat-assistant",
        spec_block("  probes:\n    startup: {periodSeconds: 5, failureThreshold: 60}\n"),
        "MG230",
        "failureThreshold: 60",
        "60",
    ),
    "a startup probe on KServe that gives up before the deploy does": (
        "churn-kserve",
        spec_block("  probes:\n    startup: {initialDelaySeconds: 10, failureThreshold: 10}\n"),
        "MG230",
        "failureThreshold: 10",
        "10",
    ),
    "a GPU vendor without a GPU": (
        "churn-kserve",
        {"memory: 2Gi}\n": "memory: 2Gi}\n    accelerator: amd\n"},
        "MG230",
        "accelerator: amd",
        "amd",
    ),
    "a GPU model with gpu 0": (
        "churn-kserve",
        {"memory: 2Gi}\n": "memory: 2Gi}\n    gpu: 0\n    acceleratorProduct: NVIDIA-L4\n"},
        "MG230",
        "acceleratorProduct: NVIDIA-L4",
        "NVIDIA-L4",
    ),
    "a GPU model the node selector contradicts": (
        "chat-assistant",
        {
            GPU_LINE: GPU_LINE + "    acceleratorProduct: NVIDIA-L4\n",
            **spec_block("  scheduling: {nodeSelector: {nvidia.com/gpu.product: NVIDIA-A10G}}\n"),
        },
        "MG230",
        "acceleratorProduct: NVIDIA-L4",
        "NVIDIA-L4",
    ),
    "a label modelgate writes": (
        "chat-assistant",
        {"    domain: support\n": "    domain: support\n    app.kubernetes.io/name: chat\n"},
        "MG231",
        "    app.kubernetes.io/name: chat",
        "app.kubernetes.io/name",
    ),
    "an annotation under modelgate.dev/": (
        "iris",
        {"  labels:\n": "  annotations: {modelgate.dev/source: elsewhere.yaml}\n  labels:\n"},
        "MG231",
        "modelgate.dev/source",
        "modelgate.dev/source",
    ),
    "KServe's deployment mode as an annotation": (
        "churn-kserve",
        {
            "  description: Customer": (
                "  annotations:\n    serving.kserve.io/deploymentMode: Serverless\n"
                "  description: Customer"
            )
        },
        "MG231",
        "serving.kserve.io/deploymentMode: Serverless",
        "serving.kserve.io/deploymentMode",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_settings_that_cannot_hold_together_are_refused_where_they_are_written(
    scaffold: Scaffold, case: str
) -> None:
    base, replacements, code, needle, at = REFUSED[case]
    path, text = write(scaffold, base, replacements)
    line, col = located(text, needle, at)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    assert f"models/{base}.yaml:{line}:{col}: {code} " in result.out, result.out
    assert result.out.count(f": {code} ") == 1, result.out
    assert "Traceback" not in result.out + result.err


def test_a_startup_probe_that_covers_the_readiness_timeout_passes(scaffold: Scaffold) -> None:
    path, _ = write(
        scaffold,
        "chat-assistant",
        spec_block(
            "  probes:\n    startup: {initialDelaySeconds: 60, periodSeconds: 9, "
            "failureThreshold: 60}\n  volumes: {shm: {sizeLimit: 24Gi}}\n"
        ),
    )
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 0, result.out + result.err


# (base, replacements, code, text around the position, where in it, words of the message)
SCHEMA_ERRORS = {
    "a value beside operator Exists": (
        "chat-assistant",
        spec_block("  scheduling:\n    tolerations: [{key: gpu, operator: Exists, value: x}]\n"),
        "MG201",
        "value: x",
        "x",
        "operator Exists tolerates any value",
    ),
    "tolerationSeconds for NoSchedule": (
        "chat-assistant",
        spec_block(
            "  scheduling:\n    tolerations:\n"
            "      - {key: gpu, effect: NoSchedule, tolerationSeconds: 60}\n"
        ),
        "MG201",
        "effect: NoSchedule",
        "NoSchedule",
        "only applies to effect NoExecute",
    ),
    "an annotation key that is no Kubernetes key": (
        "chat-assistant",
        {"  description: Small": "  annotations: {'bad key!': x}\n  description: Small"},
        "MG201",
        "'bad key!'",
        "'bad key!'",
        "annotation keys are an optional DNS prefix",
    ),
    "a node affinity operator Kubernetes does not have": (
        "chat-assistant",
        spec_block(
            "  scheduling:\n    affinity:\n      nodeAffinity:\n"
            "        requiredDuringSchedulingIgnoredDuringExecution:\n"
            "          nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Within}]}]\n"
        ),
        "MG201",
        "operator: Within",
        "Within",
        "operator",
    ),
    "a misspelt probe field": (
        "chat-assistant",
        spec_block("  probes:\n    readiness: {paht: /ready}\n"),
        "MG202",
        "paht",
        "paht",
        "did you mean 'path'",
    ),
    "a size that is no Kubernetes quantity": (
        "chat-assistant",
        spec_block("  volumes: {shm: {sizeLimit: 2GB}}\n"),
        "MG201",
        "sizeLimit: 2GB",
        "2GB",
        "spec.volumes.shm.sizeLimit",
    ),
    "a GPU vendor modelgate does not know": (
        "chat-assistant",
        {GPU_LINE: GPU_LINE + "    accelerator: habana\n"},
        "MG201",
        "accelerator: habana",
        "habana",
        "spec.resources.accelerator",
    ),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_ERRORS))
def test_schema_errors_in_the_new_fields_carry_their_positions(
    scaffold: Scaffold, case: str
) -> None:
    base, replacements, code, needle, at, words = SCHEMA_ERRORS[case]
    path, text = write(scaffold, base, replacements)
    line, col = located(text, needle, at)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    assert f"models/{base}.yaml:{line}:{col}: {code} " in result.out, result.out
    assert words in result.out


POLICY_FINDINGS = {
    "a toleration of the control plane's taint": (
        spec_block(
            "  scheduling:\n    tolerations:\n"
            "      - {key: node-role.kubernetes.io/control-plane, operator: Exists}\n"
        ),
        "MG-SEC-040",
        "key: node-role.kubernetes.io/control-plane",
        "node-role",
    ),
    "a toleration of every taint": (
        spec_block("  scheduling:\n    tolerations:\n      - {operator: Exists}\n"),
        "MG-SEC-040",
        "- {operator: Exists}",
        "{operator",
    ),
    "an annotation of a tool nobody allowed": (
        {
            "  description: Small": (
                "  annotations:\n    serving.kserve.io/autoscalerClass: external\n"
                "  description: Small"
            )
        },
        "MG-SEC-041",
        "serving.kserve.io/autoscalerClass",
        "serving",
    ),
    "opting out of the mesh": (
        {
            "  description: Small": (
                '  annotations:\n    sidecar.istio.io/inject: "false"\n  description: Small'
            )
        },
        "MG-SEC-042",
        'sidecar.istio.io/inject: "false"',
        '"false"',
    ),
    "a label of a tool nobody allowed": (
        {"    domain: support\n": "    domain: support\n    istio.io/rev: canary\n"},
        "MG-SEC-043",
        "istio.io/rev: canary",
        "istio.io/rev",
    ),
}


@pytest.mark.parametrize("case", sorted(POLICY_FINDINGS))
def test_the_built_in_policies_judge_scheduling_labels_and_annotations(
    scaffold: Scaffold, case: str
) -> None:
    replacements, rule, needle, at = POLICY_FINDINGS[case]
    path, text = write(scaffold.with_policies(), "chat-assistant", replacements)
    line, col = located(text, needle, at)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    assert f"models/chat-assistant.yaml:{line}:{col}: {rule} " in result.out, result.out


def test_an_allowed_prefix_does_not_allow_opting_out_of_the_mesh(scaffold: Scaffold) -> None:
    """An organisation may allow a prefix; what switches protection off stays refused, and
    emptying a built-in list is reported as a weakening."""
    scaffold.with_policies()
    (scaffold.root / "policies" / "acme.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: acme}\n"
        "extends: [modelgate]\nparameters:\n"
        "  allowedAnnotations: [linkerd.io/, config.linkerd.io/]\n  systemNodeKeys: []\n",
        encoding="utf-8",
    )
    path, text = write(
        scaffold,
        "chat-assistant",
        {
            "  description: Small": (
                "  annotations:\n    linkerd.io/inject: disabled\n"
                "    config.linkerd.io/proxy-cpu-limit: '1'\n  description: Small"
            ),
            **spec_block(
                "  scheduling: {nodeSelector: {node-role.kubernetes.io/control-plane: ''}}\n"
            ),
        },
    )
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    line, col = located(text, "linkerd.io/inject: disabled", "disabled")
    assert f"models/chat-assistant.yaml:{line}:{col}: MG-SEC-042 " in result.out, result.out
    assert "MG-SEC-041" not in result.out and "MG-SEC-040" not in result.out, result.out
    assert "systemNodeKeys drops" in result.out + result.err


def test_a_template_that_tolerates_every_taint_is_refused_by_render(scaffold: Scaffold) -> None:
    """What the spec may not ask for (MG-SEC-040), a template edit may not write either."""
    template = scaffold.root / "templates" / "_k8s" / "deployment.yaml.j2"
    text = template.read_text(encoding="utf-8")
    line = "      automountServiceAccountToken: false\n"
    template.write_text(
        text.replace(line, line + '      tolerations: [{operator: "Exists"}]\n'), encoding="utf-8"
    )
    path, _ = write(scaffold.with_policies(), "fraud-onnx", {})
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 1, result.out + result.err
    assert "rendered/staging/fraud-onnx/deployment.yaml:" in result.err
    assert " MG-SEC-140 rendered pods must stay off control-plane and system nodes" in result.err
    assert not (scaffold.root / "rendered" / "staging" / "fraud-onnx").exists()


def test_a_gpu_vendor_without_a_gpu_is_one_finding(scaffold: Scaffold) -> None:
    """No GPU asked for: the vendor has no effect (MG230), whatever image would run it."""
    path, _ = write(scaffold, "chat-assistant", {GPU_LINE: "    gpu: 0\n    accelerator: amd\n"})
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out
    assert " MG230 " in result.out and " MG229 " not in result.out, result.out


@pytest.mark.kube
@pytest.mark.parametrize(
    ("base", "replacements", "workload"),
    [
        ("chat-assistant", GPU_POD, "deployment.yaml"),
        ("churn-kserve", KSERVE_POD, "inferenceservice.yaml"),
    ],
    ids=["deployment", "inferenceservice"],
)
def test_a_real_api_server_keeps_every_pod_field(
    kube: kube_env.KubeEnv,
    scaffold: Scaffold,
    base: str,
    replacements: dict[str, str],
    workload: str,
) -> None:
    """A server-side dry run accepts what the pod fields render and keeps every field of it."""
    if workload == "inferenceservice.yaml":
        kube.serves_or_skip("serving.kserve.io/v1beta1", "InferenceService")
    path, _ = write(scaffold, base, replacements)
    rendered(scaffold, path)
    folder = scaffold.root / "rendered" / "staging" / base
    served = [
        file
        for file in sorted(folder.glob("*.yaml"))
        if any(kube.resource(d["apiVersion"], d["kind"]) for d in objects_in(file))
    ]
    assert workload in {file.name for file in served}, kube.crd_problem
    problems = [
        problem
        for file in served
        for problem in dry_run_problems(kube, file, str(file.relative_to(scaffold.root)))
    ]
    assert problems == []

"""Settings an engine (or its deployment mode) cannot honour are refused where they are written,
exit 1, instead of rendering into something that silently does nothing; what it can honour
passes. The example specs are the bases: iris (mlserver, a Seldon Model), chat-assistant
(vllm, a Deployment with an HPA), churn-kserve (kserve in RawDeployment mode, a model image),
fraud-onnx (triton, a Deployment), tiny-llama (llamacpp, a CPU build), and kserve-artifact
(churn-kserve loading an artifact on a runtime)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from validator.check import capabilities
from validator.engines import ARTIFACT, ENGINES, EVERY_ACCELERATOR, IMAGE, engine_for

from .conftest import PROJECT, Scaffold, located, run_cli

BASES = {
    name: (PROJECT / "models" / f"{name}.yaml").read_text(encoding="utf-8")
    for name in ("iris", "chat-assistant", "churn-kserve", "fraud-onnx", "tiny-llama")
}
DIGEST = "@sha256:" + "d" * 64
CHURN_IMAGE = (
    "image: registry.example.com/ml/churn-sklearn@sha256:"
    "3b1f0c9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
)
BASES["kserve-artifact"] = BASES["churn-kserve"].replace(
    CHURN_IMAGE,
    f"artifact: s3://growth-models/churn/model.joblib\n    sha256: {'c' * 64}",
)
SERVERLESS = {"deploymentMode: RawDeployment": "deploymentMode: Serverless"}
CANARY = {"  endpoint:\n": "  rollout:\n    canaryTrafficPercent: 10\n  endpoint:\n"}
UNDER_ENGINE = "    protocol: {}\n"  # a line to add engine settings after


def engine_line(protocol: str, added: str) -> dict[str, str]:
    line = UNDER_ENGINE.format(protocol)
    return {line: f"{line}    {added}\n"}


def spec_line(added: str) -> dict[str, str]:
    return {"  compliance:\n": f"  {added}\n  compliance:\n"}


def write(scaffold: Scaffold, base: str, replacements: dict[str, str]) -> tuple[Path, str]:
    text = BASES[base]
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in {base}.yaml"
        text = text.replace(old, new, 1)
    name = "churn-kserve" if base == "kserve-artifact" else base
    return scaffold.write_spec(name, text), text


# ModelMesh's shared Service is authenticated as templates/values.yaml declares (auth none)
MODELMESH = {
    "deploymentMode: RawDeployment": "deploymentMode: ModelMesh",
    "auth: {type: oidc}": "auth: {type: none}",
}
NO_SCALING = {
    "  scaling:\n    minReplicas: 2\n    maxReplicas: 8\n    metric: cpu\n    target: 70\n": ""
}
RUNTIME = (
    "runtime:\n"
    f"    image: registry.example.com/ml/sklearnserver{DIGEST}\n"
    "    formats: [{name: sklearn, version: '1'}]\n"
    "    protocols: [v1, v2]\n"
)
MULTI_MODEL_RUNTIME = RUNTIME + "    multiModel: true\n"
TRANSFORMER = (
    f"transformer:\n    image: registry.example.com/ml/churn-features{DIGEST}\n"
    "    args: [--feature_store=feast:6566]\n"
    "    resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: '1', memory: 1Gi}}\n"
)
EXPLAINER = f"explainer:\n    image: registry.example.com/ml/churn-explainer{DIGEST}\n"
TRITON_SELDON = engine_line("v2", "deploymentMode: Seldon")


# (base spec, replacements, code, text around the refused value, the refused value or key)
REFUSED = {
    "scale to zero with an HPA": (
        "chat-assistant",
        {"minReplicas: 2": "minReplicas: 0"},
        "MG220",
        "minReplicas: 0",
        "0",
    ),
    "scale to zero in KServe RawDeployment": (
        "churn-kserve",
        {"minReplicas: 2": "minReplicas: 0"},
        "MG220",
        "minReplicas: 0",
        "0",
    ),
    "scale to zero of a Seldon Model": (
        "iris",
        {"minReplicas: 2": "minReplicas: 0"},
        "MG220",
        "minReplicas: 0",
        "0",
    ),
    "canary in KServe RawDeployment": (
        "churn-kserve",
        CANARY,
        "MG221",
        "canaryTrafficPercent: 10",
        "10",
    ),
    "canary on a Deployment": ("chat-assistant", CANARY, "MG221", "canaryTrafficPercent: 10", "10"),
    "rps in KServe RawDeployment": (
        "churn-kserve",
        {"metric: cpu": "metric: rps"},
        "MG222",
        "metric: rps",
        "rps",
    ),
    "cpu in KServe Serverless": ("churn-kserve", SERVERLESS, "MG222", "metric: cpu", "cpu"),
    "a metric for a Seldon Model": (
        "iris",
        {"    maxReplicas: 3\n": "    maxReplicas: 3\n    metric: rps\n"},
        "MG222",
        "metric: rps",
        "rps",
    ),
    "a KServe target below 1": (
        "churn-kserve",
        {"target: 70": "target: 0.5"},
        "MG223",
        "target: 0.5",
        "0.5",
    ),
    "a fractional cpu target on an HPA": (
        "chat-assistant",
        {"metric: concurrency": "metric: cpu", "target: 16": "target: 70.5"},
        "MG223",
        "target: 70.5",
        "70.5",
    ),
    "a KServe RawDeployment target over 100": (
        "churn-kserve",
        {"target: 70": "target: 150"},
        "MG223",
        "target: 150",
        "150",
    ),
    "a target for a Seldon Model": (
        "iris",
        {"    maxReplicas: 3\n": "    maxReplicas: 3\n    target: 50\n"},
        "MG223",
        "target: 50",
        "50",
    ),
    "openai on KServe": (
        "churn-kserve",
        {"protocol: v2": "protocol: openai"},
        "MG224",
        "protocol: openai",
        "openai",
    ),
    "v2 on vLLM": (
        "chat-assistant",
        {"protocol: openai": "protocol: v2"},
        "MG224",
        "protocol: v2",
        "v2",
    ),
    "a model image on vLLM": (
        "chat-assistant",
        {"artifact: hf://Qwen/Qwen2.5-0.5B-Instruct": f"image: registry.example.com/qwen{DIGEST}"},
        "MG225",
        "image: registry.example.com/qwen",
        "registry",
    ),
    "an artifact on the docker engine": (
        "iris",
        {"    name: mlserver\n    version: 1.7.1\n": "    name: docker\n"},
        "MG225",
        "artifact: models/",
        "models/",
    ),
    "sha256 beside a model image": (
        "churn-kserve",
        {"    format: sklearn\n": f"    sha256: {'e' * 64}\n    format: sklearn\n"},
        "MG225",
        "sha256: eee",
        "eee",
    ),
    "treeSha256 beside a model image": (
        "churn-kserve",
        {"    format: sklearn\n": f"    treeSha256: {'e' * 64}\n    format: sklearn\n"},
        "MG225",
        "treeSha256: eee",
        "eee",
    ),
    "an engine version on KServe": (
        "churn-kserve",
        {"    name: kserve\n": "    name: kserve\n    version: 0.14.0\n"},
        "MG226",
        "version: 0.14.0",
        "0.14.0",
    ),
    "a runtime on vLLM": (
        "chat-assistant",
        engine_line("openai", "runtime: vllm_server"),
        "MG226",
        "runtime: vllm_server",
        "vllm_server",
    ),
    "a runtime beside a model image": (
        "churn-kserve",
        engine_line("v2", "runtime: kserve-sklearnserver"),
        "MG226",
        "runtime: kserve-sklearnserver",
        "kserve-",
    ),
    "an engine image beside a model image": (
        "churn-kserve",
        engine_line("v2", f"image: registry.example.com/kserve/server{DIGEST}"),
        "MG226",
        "image: registry.example.com/kserve",
        "registry",
    ),
    "an engine image on a Seldon Model": (
        "iris",
        engine_line("v2", f"image: registry.example.com/mlserver{DIGEST}"),
        "MG226",
        "image: registry.example.com/mlserver",
        "registry",
    ),
    "a deployment mode on vLLM": (
        "chat-assistant",
        engine_line("openai", "deploymentMode: Serverless"),
        "MG226",
        "deploymentMode: Serverless",
        "Serverless",
    ),
    "a batch size on vLLM": (
        "chat-assistant",
        engine_line("openai", "maxBatchSize: 8"),
        "MG226",
        "maxBatchSize: 8",
        "8",
    ),
    "a signature on a Seldon Model": (
        "iris",
        {
            '    version: "1.0.0"\n': '    version: "1.0.0"\n    signature:\n'
            "      inputs: [{name: input-0, datatype: FP64, shape: [4]}]\n"
            "      outputs: [{name: predict, datatype: INT64, shape: [1]}]\n"
        },
        "MG226",
        "    signature:",
        "signature",
    ),
    "env on a Seldon Model": (
        "iris",
        engine_line("v2", "env: [{name: LOG_LEVEL, value: debug}]"),
        "MG227",
        "    env: [",
        "env",
    ),
    "args on a Seldon Model": (
        "iris",
        engine_line("v2", 'args: ["--debug"]'),
        "MG227",
        "    args: [",
        "args",
    ),
    "security on a Seldon Model": (
        "iris",
        spec_line("security: {runAsUser: 10001}"),
        "MG227",
        "  security:",
        "security",
    ),
    "a service account on a Seldon Model": (
        "iris",
        spec_line("serviceAccountName: model-reader"),
        "MG227",
        "serviceAccountName: model-reader",
        "model-reader",
    ),
    "a GPU on a Seldon Model": (
        "iris",
        {"memory: 512Mi}\n": "memory: 512Mi}\n    gpu: 1\n"},
        "MG227",
        "    gpu: 1",
        "1",
    ),
    "scheduling on a Seldon Model": (
        "iris",
        spec_line("scheduling: {nodeSelector: {pool: cpu}}"),
        "MG227",
        "  scheduling:",
        "scheduling",
    ),
    "probes on a Seldon Model": (
        "iris",
        spec_line("probes: {readiness: {path: /ready}}"),
        "MG227",
        "  probes:",
        "probes",
    ),
    "volumes on a Seldon Model": (
        "iris",
        spec_line("volumes: {shm: {sizeLimit: 1Gi}}"),
        "MG227",
        "  volumes:",
        "volumes",
    ),
    "a GPU vendor on a Seldon Model": (
        "iris",
        {"memory: 512Mi}\n": "memory: 512Mi}\n    accelerator: amd\n"},
        "MG227",
        "    accelerator: amd",
        "amd",
    ),
    "a model cache on KServe": (
        "churn-kserve",
        spec_line("volumes: {cache: {sizeLimit: 50Gi}}"),
        "MG226",
        "volumes: {cache",
        "cache",
    ),
    "a model cache for a custom container": (
        "churn-kserve",
        {
            "    name: kserve\n    protocol: v2\n    deploymentMode: RawDeployment\n": (
                "    name: docker\n    protocol: v2\n"
            ),
            "  compliance:\n": "  volumes:\n    cache: {sizeLimit: 50Gi}\n  compliance:\n",
        },
        "MG226",
        "    cache: {",
        "cache",
    ),
    "AMD GPUs for vLLM's own image": (
        "chat-assistant",
        {"    gpu: 1\n": "    gpu: 1\n    accelerator: amd\n"},
        "MG229",
        "accelerator: amd",
        "amd",
    ),
    "Intel GPUs for vLLM's own image": (
        "chat-assistant",
        {"    gpu: 1\n": "    gpu: 1\n    accelerator: intel\n"},
        "MG229",
        "accelerator: intel",
        "intel",
    ),
    "a GPU for llama.cpp's CPU build": (
        "tiny-llama",
        {"memory: 512Mi}\n": "memory: 512Mi}\n    gpu: 1\n"},
        "MG229",
        "    gpu: 1",
        "1",
    ),
    "AMD GPUs for llama.cpp's CPU build": (
        "tiny-llama",
        {"memory: 512Mi}\n": "memory: 512Mi}\n    gpu: 1\n    accelerator: amd\n"},
        "MG229",
        "accelerator: amd",
        "amd",
    ),
    "no GPU for vLLM's CUDA build": (
        "chat-assistant",
        {"    gpu: 1\n": "    gpu: 0\n"},
        "MG256",
        "    gpu: 0",
        "0",
    ),
    "host network": (
        "chat-assistant",
        spec_line("security: {hostNetwork: true}"),
        "MG228",
        "hostNetwork: true",
        "true",
    ),
    "a transformer on vLLM": (
        "chat-assistant",
        spec_line(TRANSFORMER),
        "MG226",
        "  transformer:",
        "transformer",
    ),
    "an explainer in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, **spec_line(EXPLAINER)},
        "MG226",
        "  explainer:",
        "explainer",
    ),
    "a runtime definition on Triton": (
        "fraud-onnx",
        spec_line(RUNTIME),
        "MG226",
        "  runtime:",
        "runtime",
    ),
    "a runtime definition beside a model image": (
        "churn-kserve",
        spec_line(RUNTIME),
        "MG226",
        "  runtime:",
        "runtime",
    ),
    "a runtime that does not serve the model's format": (
        "kserve-artifact",
        spec_line(RUNTIME.replace("name: sklearn", "name: onnx")),
        "MG235",
        "    formats: [{name: onnx",
        "formats",
    ),
    "a runtime that does not speak the endpoint's protocol": (
        "kserve-artifact",
        spec_line(RUNTIME.replace("protocols: [v1, v2]", "protocols: [v1]")),
        "MG235",
        "protocols: [v1]",
        "protocols",
    ),
    "a multi-model runtime outside ModelMesh": (
        "kserve-artifact",
        spec_line(MULTI_MODEL_RUNTIME),
        "MG235",
        "multiModel: true",
        "true",
    ),
    "a single-model runtime in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, **spec_line(RUNTIME)},
        "MG235",
        "  runtime:",
        "runtime",
    ),
    "runtime replicas on a single-model runtime": (
        "kserve-artifact",
        spec_line(RUNTIME + "    replicas: 3\n"),
        "MG226",
        "replicas: 3",
        "3",
    ),
    "a model image in ModelMesh": (
        "churn-kserve",
        {**MODELMESH, **NO_SCALING},
        "MG225",
        "image: registry.example.com/ml/churn",
        "registry",
    ),
    "a GPU in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, "memory: 2Gi}\n": "memory: 2Gi}\n    gpu: 1\n"},
        "MG227",
        "    gpu: 1",
        "1",
    ),
    "env in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, **engine_line("v2", "env: [{name: LOG_LEVEL, value: debug}]")},
        "MG227",
        "    env: [",
        "env",
    ),
    "canary in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, **CANARY},
        "MG221",
        "canaryTrafficPercent: 10",
        "10",
    ),
    "replica bounds in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, "    metric: cpu\n    target: 70\n": ""},
        "MG226",
        "minReplicas: 2",
        "2",
    ),
    "keda in KServe Serverless": (
        "churn-kserve",
        {**SERVERLESS, "    metric: cpu\n": "    autoscaler: keda\n"},
        "MG234",
        "autoscaler: keda",
        "keda",
    ),
    "keda on a Seldon Model": (
        "iris",
        {"    maxReplicas: 3\n": "    maxReplicas: 3\n    autoscaler: keda\n"},
        "MG234",
        "autoscaler: keda",
        "keda",
    ),
    "knative on a Deployment": (
        "chat-assistant",
        {"    metric: concurrency\n": "    autoscaler: knative\n    metric: concurrency\n"},
        "MG234",
        "autoscaler: knative",
        "knative",
    ),
    "rps with Knative's HPA class": (
        "churn-kserve",
        {**SERVERLESS, "metric: cpu": "autoscaler: hpa\n    metric: rps"},
        "MG222",
        "metric: rps",
        "rps",
    ),
    "scale to zero with KEDA": (
        "chat-assistant",
        {"minReplicas: 2": "minReplicas: 0", "    metric: concurrency\n": "    autoscaler: keda\n"},
        "MG220",
        "minReplicas: 0",
        "0",
    ),
    "a runtime version on Triton": (
        "fraud-onnx",
        engine_line("v2", "runtimeVersion: 24.08-py3"),
        "MG226",
        "runtimeVersion: 24.08",
        "24.08",
    ),
    "a runtime version beside a model image": (
        "churn-kserve",
        engine_line("v2", "runtimeVersion: 1.3.2"),
        "MG226",
        "runtimeVersion: 1.3.2",
        "1.3.2",
    ),
    "a runtime version beside a defined runtime": (
        "kserve-artifact",
        {**engine_line("v2", "runtimeVersion: 1.3.2"), **spec_line(RUNTIME)},
        "MG226",
        "runtimeVersion: 1.3.2",
        "1.3.2",
    ),
    "a runtime version in ModelMesh": (
        "kserve-artifact",
        {**MODELMESH, **NO_SCALING, **engine_line("v2", "runtimeVersion: 1.3.2")},
        "MG226",
        "runtimeVersion: 1.3.2",
        "1.3.2",
    ),
    "a Seldon mode on KServe": (
        "churn-kserve",
        {"deploymentMode: RawDeployment": "deploymentMode: Seldon"},
        "MG226",
        "deploymentMode: Seldon",
        "Seldon",
    ),
    "a signature on Triton in Seldon mode": (
        "fraud-onnx",
        TRITON_SELDON,
        "MG226",
        "    signature:",
        "signature",
    ),
    "a batch size on Triton in Seldon mode": (
        "fraud-onnx",
        TRITON_SELDON,
        "MG226",
        "maxBatchSize: 64",
        "64",
    ),
    "an engine version on Triton in Seldon mode": (
        "fraud-onnx",
        TRITON_SELDON,
        "MG226",
        'version: "24.08"',
        '"24.08"',
    ),
    "a model file on Triton in Seldon mode": (
        "fraud-onnx",
        TRITON_SELDON,
        "MG225",
        "sha256: 9d5f2c0e",
        "9d5f2c0e",
    ),
    "args on Triton in Seldon mode": (
        "fraud-onnx",
        engine_line("v2", 'deploymentMode: Seldon\n    args: ["--log-verbose=1"]'),
        "MG227",
        "    args: [",
        "args",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_setting_the_engine_cannot_honour_is_refused_where_it_is_written(
    scaffold: Scaffold, case: str
) -> None:
    base, replacements, code, needle, at = REFUSED[case]
    path, text = write(scaffold, base, replacements)
    line, col = located(text, needle, at)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    assert f"models/{path.name}:{line}:{col}: {code} " in result.out, result.out
    assert "Traceback" not in result.out + result.err


def test_the_gpu_refusals_name_the_vendors(scaffold: Scaffold) -> None:
    amd = {"memory: 512Mi}\n": "memory: 512Mi}\n    gpu: 1\n    accelerator: amd\n"}
    path, _ = write(scaffold, "tiny-llama", amd)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert "llamacpp's image is a CPU-only build: it would never use the amd GPU" in result.out
    assert "  " not in result.out.split(" MG229 ")[1].splitlines()[0], result.out
    path, _ = write(
        scaffold, "chat-assistant", {"    gpu: 1\n": "    gpu: 1\n    accelerator: intel\n"}
    )
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert "vllm's image is built for nvidia GPUs, not intel" in result.out, result.out
    assert "or use nvidia GPUs (spec.resources.accelerator)" in result.out, result.out


def test_a_gpu_on_a_cpu_build_is_not_rendered(scaffold: Scaffold) -> None:
    path, _ = write(scaffold, "tiny-llama", {"memory: 512Mi}\n": "memory: 512Mi}\n    gpu: 1\n"})
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 1 and " MG229 " in result.out + result.err, result.out + result.err
    assert not list((scaffold.root / "rendered").rglob("tiny-llama/deployment.yaml"))


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_record_holds_specs_to_the_gpus_its_image_can_use(name: str) -> None:
    """Each vendor with one GPU, and no GPU at all, on the engine's own image: refused exactly
    where the record says the image cannot use it; a spec's own image may use any."""
    record = ENGINES[name]
    model = (
        {"image": "registry.example.com/m@sha256:" + "a" * 64}
        if IMAGE in record.packaging and ARTIFACT not in record.packaging
        else {"artifact": "s3://b/m"}
    )
    for vendor in EVERY_ACCELERATOR:
        spec = {
            "engine": {"name": name},
            "model": model,
            "resources": {"gpu": 1, "accelerator": vendor},
        }
        found = [r.rule for r in capabilities.accelerator(spec, engine_for(spec))]
        refused = record.pod and "image" not in model and vendor not in record.gpus.vendors
        assert found == (["MG229"] if refused else []), (name, vendor)
        spec["engine"]["image"] = "registry.example.com/e@sha256:" + "b" * 64
        assert list(capabilities.accelerator(spec, engine_for(spec))) == [], (name, vendor)
    for resources in ({}, {"gpu": 0}):
        spec = {"engine": {"name": name}, "model": model, "resources": resources}
        found = [r.rule for r in capabilities.accelerator(spec, engine_for(spec))]
        refused = record.pod and "image" not in model and record.gpus.required
        assert found == (["MG256"] if refused else []), (name, resources)


ACCEPTED = {
    "scale to zero, canary and rps in KServe Serverless": (
        "churn-kserve",
        {
            **SERVERLESS,
            **CANARY,
            "minReplicas: 2": "minReplicas: 0",
            "metric: cpu": "metric: rps",
            "target: 70": "target: 5",
            "environments: [staging, production]": "environments: [staging]",
        },
    ),
    "a fractional request target on an HPA": ("chat-assistant", {"target: 16": "target: 0.5"}),
    "AMD GPUs for a ROCm build of vLLM": (
        "chat-assistant",
        {
            **engine_line("openai", f"image: registry.example.com/rocm/vllm{DIGEST}"),
            "    gpu: 1\n": "    gpu: 1\n    accelerator: amd\n",
        },
    ),
    "AMD GPUs for a custom container on KServe": (
        "churn-kserve",
        {"memory: 2Gi}\n": "memory: 2Gi}\n    gpu: 1\n    accelerator: amd\n"},
    ),
    "scheduling, probes and /dev/shm on KServe": (
        "churn-kserve",
        spec_line(
            "scheduling: {nodeSelector: {pool: cpu}}\n  probes: {readiness: {path: /ready}}\n"
            "  volumes: {shm: {sizeLimit: 1Gi}}"
        ),
    ),
    "a whole KServe RawDeployment target of 100": ("churn-kserve", {"target: 70": "target: 100.0"}),
    "an engine image for vLLM": (
        "chat-assistant",
        engine_line("openai", f"image: registry.example.com/vllm/vllm-openai{DIGEST}"),
    ),
    "replica bounds and a runtime for a Seldon Model": (
        "iris",
        {
            **engine_line("v2", "runtime: mlserver_sklearn.SKLearnModel"),
            "maxReplicas: 3": "maxReplicas: 5",
        },
    ),
    "a transformer, an explainer, a runtime and KEDA in KServe RawDeployment": (
        "kserve-artifact",
        {
            **spec_line(RUNTIME + "  " + TRANSFORMER + "  " + EXPLAINER),
            "metric: cpu": "autoscaler: keda\n    metric: rps",
        },
    ),
    "ModelMesh with a multi-model runtime and no replica bounds in production": (
        "kserve-artifact",
        {
            **MODELMESH,
            **NO_SCALING,
            **spec_line(MULTI_MODEL_RUNTIME.replace("v1, v2", "grpc-v2, v2")),
        },
    ),
    "a runtime version of a cluster runtime": (
        "kserve-artifact",
        engine_line("v2", "runtime: kserve-sklearnserver\n    runtimeVersion: 1.3.2"),
    ),
    "Knative's HPA class on cpu, with canary traffic, in KServe Serverless": (
        "churn-kserve",
        {**SERVERLESS, **CANARY, "metric: cpu": "autoscaler: hpa\n    metric: cpu"},
    ),
    "KEDA on requests in flight for vLLM": (
        "chat-assistant",
        {"    metric: concurrency\n": "    autoscaler: keda\n    metric: concurrency\n"},
    ),
    "Triton in Seldon mode": (
        "fraud-onnx",
        {
            **TRITON_SELDON,
            '    version: "24.08"\n': "",
            "    maxBatchSize: 64\n": "",
            "auth: {type: mtls}": "auth: {type: none}",
            "    metric: rps\n    target: 200\n": "",
            # a Triton model folder
            "model.onnx\n    sha256: "
            "9d5f2c0e7b14a8e3c6f1d2b3a4958677e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3\n": (
                f"\n    treeSha256: {'a' * 64}\n"
            ),
            "    signature:\n      inputs:\n        - {name: features, datatype: FP32, shape: [32]}"
            "\n      outputs:\n        - {name: probability, datatype: FP32, shape: [1]}\n": "",
        },
    ),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_a_setting_the_engine_honours_passes(scaffold: Scaffold, case: str) -> None:
    base, replacements = ACCEPTED[case]
    path, _ = write(scaffold, base, replacements)
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 0, result.out + result.err


def test_kserve_serverless_renders_knatives_own_default_metric(scaffold: Scaffold) -> None:
    """Knative refuses cpu scaling: with no metric in the spec, concurrency is rendered."""
    path, _ = write(scaffold, "churn-kserve", {**SERVERLESS, "    metric: cpu\n": ""})
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 0, result.out + result.err
    rendered = scaffold.root / "rendered/staging/churn-kserve/inferenceservice.yaml"
    manifest = rendered.read_text(encoding="utf-8")
    assert 'scaleMetric: "concurrency"' in manifest
    assert 'serving.kserve.io/deploymentMode: "Serverless"' in manifest


def test_a_waiver_does_not_accept_what_the_engine_cannot_do(scaffold: Scaffold) -> None:
    """A waiver accepts a policy finding; an engine that cannot scale to zero still cannot."""
    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    soon = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    (scaffold.root / "policies" / "waivers.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: Waivers\nwaivers:\n"
        "  - {rule: MG220, spec: chat-assistant, justification: Idle most of the week.,\n"
        f"     approver: security@example.com, expires: '{soon}'}}\n",
        encoding="utf-8",
    )
    path, text = write(
        scaffold,
        "chat-assistant",
        {
            "minReplicas: 2": "minReplicas: 0",
            "environments: [staging, production]": "environments: [staging]",
        },
    )
    line, col = located(text, "minReplicas: 0", "0")
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out
    assert f"models/chat-assistant.yaml:{line}:{col}: MG220 " in result.out
    assert "waived" not in result.out


def test_every_refused_setting_is_a_documented_capability_code() -> None:
    from validator.codes import BUILTIN_RULES

    assert {code for _, _, code, _, _ in REFUSED.values()} == {
        code for code in BUILTIN_RULES if code.startswith(("MG22", "MG234", "MG235", "MG256"))
    }

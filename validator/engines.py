"""The engine table: which templates each engine renders, and where.

Adding an engine is one folder in templates/ plus one entry here. Template paths are relative
to templates/; the output file is the template's name without ".j2".

- local:   rendered/local/NAME/      files for the local target (MLServer settings)
- cluster: rendered/ENV/NAME/        Kubernetes manifests, once per environment of the spec
- docker:  rendered/docker/NAME/     a compose file, for specs whose model is an image
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORKLOAD = (
    "_k8s/service.yaml.j2",
    "_k8s/hpa.yaml.j2",
    "_k8s/pdb.yaml.j2",
    "_k8s/networkpolicy.yaml.j2",
)


@dataclass(frozen=True)
class Engine:
    name: str
    local: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    # model format -> the engine's default runtime/implementation for it
    runtimes: dict[str, str] = field(default_factory=dict)


ENGINES: dict[str, Engine] = {
    "mlserver": Engine(
        name="mlserver",
        local=("mlserver/model-settings.json.j2", "mlserver/settings.json.j2"),
        cluster=("mlserver/model.yaml.j2",),
        runtimes={
            "sklearn": "mlserver_sklearn.SKLearnModel",
            "xgboost": "mlserver_xgboost.XGBoostModel",
            "lightgbm": "mlserver_lightgbm.LightGBMModel",
            "huggingface": "mlserver_huggingface.HuggingFaceRuntime",
        },
    ),
    "kserve": Engine(name="kserve", cluster=("kserve/inferenceservice.yaml.j2",)),
    "vllm": Engine(name="vllm", cluster=("vllm/deployment.yaml.j2", *WORKLOAD)),
    "tgi": Engine(name="tgi", cluster=("tgi/deployment.yaml.j2", *WORKLOAD)),
    "triton": Engine(
        name="triton", cluster=("triton/deployment.yaml.j2", "triton/configmap.yaml.j2", *WORKLOAD)
    ),
    "docker": Engine(name="docker", cluster=("docker/deployment.yaml.j2", *WORKLOAD)),
}
COMPOSE_TEMPLATE = "docker/compose.yaml.j2"
APPLICATIONSET_TEMPLATE = "argocd/applicationset.yaml.j2"
# Seldon's runtime requirement names per model format
SELDON_REQUIREMENTS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "huggingface": "huggingface",
    "onnx": "onnx",
    "pytorch": "pytorch",
    "tensorflow": "tensorflow",
}
TRITON_PLATFORMS = {
    "onnx": "onnxruntime_onnx",
    "pytorch": "pytorch_libtorch",
    "tensorflow": "tensorflow_savedmodel",
}


def runtime_for(spec: dict) -> str | None:
    """The runtime named in the spec, else the engine's default for the model format."""
    engine = spec["engine"]
    if engine.get("runtime"):
        return engine["runtime"]
    return ENGINES[engine["name"]].runtimes.get(spec["model"]["format"])

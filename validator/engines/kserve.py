"""KServe: an InferenceService on one of the cluster's serving runtimes."""

from . import ARTIFACT, BY_INFERENCE_SERVICE, EVERY_FORMAT, IMAGE, MESH, Engine, Scaling

# The keys under which an InferenceService component (predictor, transformer, explainer) names
# its serving runtime's container: `model`, or in the older form the framework. KServe merges
# each into the runtime's container, so each is a container the output rules judge.
RUNTIME_CONTAINERS = (
    "model", "sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "triton", "onnx",
    "pmml", "paddle", "huggingface",
)  # fmt: skip

ENGINE = Engine(
    name="kserve",
    summary="KServe: an InferenceService on a serving runtime",
    formats=EVERY_FORMAT,
    protocols=("v2", "v1"),
    default_version="0.14.0",
    # locally: the KServe model server from its SDK, with a scikit-learn model
    # (engines/_servers/kserve_server.py), on the v1 and v2 protocols
    local=("kserve/model-server.json.j2",),
    local_command=(
        "python",
        "{servers}/kserve_server.py",
        "{model_dir}/model-server.json",
        "--http_port",
        "{http_port}",
        "--grpc_port",
        "{grpc_port}",
    ),
    local_environments={"*": "kserve"},
    local_formats=("sklearn",),
    cluster=(
        "kserve/inferenceservice.yaml.j2",
        "_k8s/pdb.yaml.j2",
        "_k8s/networkpolicy.yaml.j2",
        *MESH,
    ),
    exposure=BY_INFERENCE_SERVICE,  # no API key: callers authenticate through the mesh
    pod_label="serving.kserve.io/inferenceservice",
    port_name="",
    # KServe 0.14: RawDeployment makes a Deployment and an HPA on cpu or memory utilisation
    # (scaleTarget 1-100; no scale to zero, canaryTrafficPercent ignored); Serverless makes a
    # Knative Service, whose autoscaler (KPA) takes concurrency or rps only, scales to zero
    # and splits traffic between revisions.
    modes={
        "RawDeployment": Scaling(
            autoscaler="KServe's HorizontalPodAutoscaler",
            metrics=("cpu", "memory"),
            whole_targets=("cpu", "memory"),
            target_max=100,
        ),
        "Serverless": Scaling(
            autoscaler="Knative's autoscaler",
            metrics=("concurrency", "rps"),
            whole_targets=("concurrency", "rps"),
            to_zero=True,
            canary=True,
        ),
    },
    packaging=(ARTIFACT, IMAGE),
    runtime="a ServingRuntime of the cluster",
    # KServe picks a runtime by modelFormat when a spec names none; `new` names these
    named_runtimes={
        "sklearn": "kserve-sklearnserver",
        "xgboost": "kserve-xgbserver",
        "lightgbm": "kserve-lgbserver",
        "onnx": "kserve-tritonserver",
        "pytorch": "kserve-torchserve",
        "tensorflow": "kserve-tensorflow-serving",
        "huggingface": "kserve-huggingfaceserver",
    },
)

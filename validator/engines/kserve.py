"""KServe: an InferenceService on one of the cluster's serving runtimes, or on one the spec
defines (spec.runtime, rendered as a ServingRuntime)."""

from . import (
    ALWAYS,
    ARTIFACT,
    BY_INFERENCE_SERVICE,
    BY_MODELMESH,
    COMPONENTS,
    EVERY_ACCELERATOR,
    EVERY_FORMAT,
    HPA,
    IMAGE,
    KEDA,
    KNATIVE,
    MESH,
    Engine,
    Gpus,
    Mode,
    Scaling,
)

RUNTIME = "kserve/servingruntime.yaml.j2"
# The label KServe gives the pods of each component: predictor, transformer, explainer
COMPONENT_LABEL = "component"

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
        RUNTIME,
        "_k8s/pdb.yaml.j2",
        "_k8s/networkpolicy.yaml.j2",
        *MESH,
    ),
    exposure=BY_INFERENCE_SERVICE,  # no API key: callers authenticate through the mesh
    pod_label="serving.kserve.io/inferenceservice",  # on the pods of every component
    port_name="",
    # the cluster's serving runtimes run the model, built for whichever vendor it installs
    gpus=Gpus(EVERY_ACCELERATOR),
    # RawDeployment makes a Deployment scaled by an HPA on cpu or memory utilisation
    # (scaleTarget 1-100; no scale to zero, canaryTrafficPercent ignored), or, with the
    # annotation serving.kserve.io/autoscalerClass: keda (KServe 0.15+), by a KEDA
    # ScaledObject made from predictor.autoScaling. Serverless makes a Knative Service, whose
    # autoscaler (KPA) takes concurrency or rps only, scales to zero and splits traffic between
    # revisions; Knative's HPA class scales it on cpu or memory instead, never to zero.
    # ModelMesh loads the model into the shared pods of a multi-model ServingRuntime, which
    # decides how many pods there are; it makes copies of a model as requests need them (no
    # pods of this model's own: no disruption budget or network policy for it).
    modes={
        "RawDeployment": Mode(
            (
                Scaling(
                    autoscaler="KServe's HorizontalPodAutoscaler",
                    name=HPA,
                    metrics=("cpu", "memory"),
                    whole_targets=("cpu", "memory"),
                    target_max=100,
                ),
                Scaling(
                    autoscaler="KServe's KEDA ScaledObject",
                    name=KEDA,
                    metrics=("rps", "concurrency", "cpu", "memory"),
                    whole_targets=("cpu", "memory"),
                ),
            )
        ),
        "Serverless": Mode(
            (
                Scaling(
                    autoscaler="Knative's autoscaler",
                    name=KNATIVE,
                    metrics=("concurrency", "rps"),
                    whole_targets=("concurrency", "rps"),
                    to_zero=True,
                    canary=True,
                ),
                Scaling(
                    autoscaler="Knative's HorizontalPodAutoscaler class",
                    name=HPA,
                    metrics=("cpu", "memory"),
                    whole_targets=("cpu", "memory"),
                    target_max=100,
                    canary=True,
                ),
            )
        ),
        "ModelMesh": Mode(
            (
                Scaling(
                    autoscaler="ModelMesh, in the pods of its ServingRuntime",
                    replicas=False,
                ),
            ),
            # one model among many in the runtime's pods: no components, no pod of its own
            # (the runtime's container runs it), no custom container, no runtime version
            overrides={
                "packaging": (ARTIFACT,),
                "pod": False,
                "components": (),
                "multi_model": True,
                "runtime_version": False,
                "protocols": ("v2",),  # ModelMesh's gRPC inference API and its REST proxy
                "exposure": BY_MODELMESH,  # behind the Service every ModelMesh model shares
                # ModelMesh's puller fetches the model into the runtime's pods: no init
                # container of the spec's, and no Hugging Face revision in a storage URI
                "fetch": "",
                "revision_in_uri": False,
                "cluster": ("kserve/inferenceservice.yaml.j2", RUNTIME),
            },
        ),
    },
    packaging=(ARTIFACT, IMAGE),
    # The InferenceService names its own init container `storage-initializer`, which fetches
    # storageUri into /mnt/models (KServe then injects none: its own has no security context,
    # which Pod Security "restricted" refuses, and takes its credentials from the service
    # account), and the digest check after it where the spec names one.
    fetch=ALWAYS,
    model_images=True,
    model_volume="kserve-provision-location",
    model_mount="/mnt/models",
    model_dir="/mnt/models",
    revision_in_uri=True,
    runtime="a ServingRuntime of the cluster, or of spec.runtime",
    components=COMPONENTS,
    runtime_definition="a ServingRuntime",
    runtime_version=True,
    workload="{name}-predictor",  # in RawDeployment mode, with NAME-transformer beside it
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
    # joblib.load or pickle.load (sklearnserver), torch.load (TorchServe's .mar handlers,
    # transformers' pytorch_model.bin)
    pickle_runtimes=("kserve-sklearnserver", "kserve-torchserve", "kserve-huggingfaceserver"),
    # TensorFlow Serving's REST API has no Open Inference Protocol health paths; it answers
    # for a model, by the name KServe gives it (the InferenceService's), once it is loaded.
    # The other runtimes run KServe's or Seldon's model server, or Triton: they answer both.
    runtime_health={
        "kserve-tensorflow-serving": ("/v1/models/{name}", "/v1/models/{name}"),
    },
)

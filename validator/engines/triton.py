"""Triton Inference Server: a Deployment with its model repository in a ConfigMap, or a
Seldon Core v2 Model on the cluster's Triton servers (deploymentMode: Seldon)."""

from . import (
    ALWAYS,
    ARTIFACT,
    BY_SELDON,
    DEPLOYMENT,
    DEPLOYMENT_MODE,
    GIB,
    WORKLOAD,
    Engine,
    GpuMemory,
    Gpus,
    Mode,
    Scaling,
)

ENGINE = Engine(
    name="triton",
    summary="Triton Inference Server",
    formats=("onnx", "pytorch", "tensorflow", "custom"),
    protocols=("v2",),
    default_version="24.08",
    versions=("2*.*",),
    image="nvidia/tritonserver:{version}-py3",
    port=8000,
    metrics_port=8002,
    cache="/models",
    gpus=Gpus(("nvidia",)),  # its image is a CUDA build; it serves on CPUs too
    # locally: the tritonserver binary PyTriton bundles, on a model repository laid out from
    # rendered/local/NAME/ (engines/_servers/triton_server.py). Only its Python backend is
    # bundled: the local config.pbtxt names it where the cluster's names the ONNX Runtime
    # platform, the rest is the same configuration, judged by the real server.
    local=("triton/model-server.json.j2", "triton/config.pbtxt.j2"),
    local_command=(
        "python",
        "{servers}/triton_server.py",
        "{model_dir}",
        "{workdir}",
        "--http-port",
        "{http_port}",
        "--grpc-port",
        "{grpc_port}",
    ),
    local_environments={"*": "triton"},
    local_formats=("onnx",),
    cluster=("triton/deployment.yaml.j2", "triton/configmap.yaml.j2", *WORKLOAD),
    model_config="triton/config.pbtxt.j2",
    fetch=ALWAYS,  # the storage initializer fills the model repository before Triton starts
    model_volume="models",
    model_dir="/models/{name}/1",
    folder_by_name=True,
    revision_in_uri=True,
    # No API key: Triton fences API groups behind a shared-secret header only through a beta
    # flag (--http-restricted-api) that carries the secret on its command line.
    batching=True,
    platforms={
        "onnx": "onnxruntime_onnx",
        "pytorch": "pytorch_libtorch",
        "tensorflow": "tensorflow_savedmodel",
    },
    # An ONNX, PyTorch or TensorFlow model instance on one GPU (instance_group's default:
    # one instance on each GPU, every one a full copy); no KV cache.
    gpu_memory=GpuMemory(
        kv_cache=False,
        default_tensor_parallel=1,
        reserve=GIB,
        reserve_source=(
            "the CUDA context and ONNX Runtime's CUDA execution provider arena and cuDNN "
            "workspace (onnxruntime.ai, CUDA Execution Provider) for one model instance"
        ),
    ),
    modes={
        DEPLOYMENT: DEPLOYMENT_MODE,
        # A Seldon Model scheduled onto the cluster's Triton servers: the artifact is a Triton
        # model folder (its config.pbtxt inside, or none where Triton completes it), the
        # servers' installation is what runs, and Seldon scales it between the replica bounds.
        "Seldon": Mode(
            (Scaling(autoscaler="Seldon, on inference lag"),),
            overrides={
                "cluster": ("triton/model.yaml.j2",),
                "exposure": BY_SELDON,
                "pod": False,
                "image": "",
                "versions": (),
                "model_config": "",
                # the servers fetch the model: no init container, no revision in a storage URI
                "fetch": "",
                "revision_in_uri": False,
                "batching": False,
                "metrics_port": 0,
                "packaging": (ARTIFACT,),
                "folder_artifact": True,
                "cache": "",  # the servers keep the models they load
                "gpu_memory": None,  # the servers' own GPUs, sized by their installation
                # the capability a Seldon Triton server lists for each backend
                "requirements": {
                    "onnx": "onnx",
                    "pytorch": "pytorch",
                    "tensorflow": "tensorflow",
                    "custom": "python",
                },
            },
        ),
    },
)

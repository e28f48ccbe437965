"""Triton Inference Server: a Deployment with its model repository in a ConfigMap."""

from . import WORKLOAD, Engine

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
    storage_initializer=True,
    # No API key: Triton fences API groups behind a shared-secret header only through a beta
    # flag (--http-restricted-api) that carries the secret on its command line.
    batching=True,
    platforms={
        "onnx": "onnxruntime_onnx",
        "pytorch": "pytorch_libtorch",
        "tensorflow": "tensorflow_savedmodel",
    },
)

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
    cache="/models",
    accelerators=("nvidia",),  # its image is a CUDA build
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

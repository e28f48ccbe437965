"""Triton Inference Server: a Deployment with its model repository in a ConfigMap."""

from . import ALWAYS, WORKLOAD, Engine

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
)

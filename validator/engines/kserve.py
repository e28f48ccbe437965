"""KServe: an InferenceService on one of the cluster's serving runtimes."""

from . import BY_INFERENCE_SERVICE, EVERY_FORMAT, MESH, Engine

ENGINE = Engine(
    name="kserve",
    summary="KServe: an InferenceService on a serving runtime",
    formats=EVERY_FORMAT,
    protocols=("v2", "v1"),
    default_version="0.14.0",
    cluster=("kserve/inferenceservice.yaml.j2", *MESH),
    exposure=BY_INFERENCE_SERVICE,  # no API key: callers authenticate through the mesh
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

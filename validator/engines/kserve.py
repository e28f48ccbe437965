"""KServe: an InferenceService on one of the cluster's serving runtimes."""

from . import EVERY_FORMAT, Engine

ENGINE = Engine(
    name="kserve",
    summary="KServe: an InferenceService on a serving runtime",
    formats=EVERY_FORMAT,
    protocols=("v2", "v1"),
    default_version="0.14.0",
    cluster=(
        "kserve/inferenceservice.yaml.j2",
        "_k8s/pdb.yaml.j2",
        "_k8s/networkpolicy.yaml.j2",
    ),
    pod_label="serving.kserve.io/inferenceservice",
    port_name="",
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

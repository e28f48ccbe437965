"""MLServer: the embedded local engine, and a Seldon Core v2 Model in clusters."""

from . import BY_SELDON, CPU_ONLY, Engine, Mode, Scaling

ENGINE = Engine(
    name="mlserver",
    summary="MLServer: a process here, a Seldon Core v2 Model in clusters",
    formats=("sklearn", "xgboost", "lightgbm", "huggingface", "custom"),
    protocols=("v2",),
    default_version="1.7.1",
    versions=("1.6.*", "1.7.*"),
    local=("mlserver/model-settings.json.j2", "mlserver/settings.json.j2"),
    local_command=("mlserver", "start", "{model_dir}"),
    local_env={
        "MLSERVER_HTTP_PORT": "{http_port}",
        "MLSERVER_GRPC_PORT": "{grpc_port}",
        "MLSERVER_METRICS_DIR": "{workdir}",
        "MLSERVER_ENVIRONMENTS_DIR": "{workdir}",
    },
    # the xgboost and lightgbm runtimes bring 700 MB (xgboost's GPU build and NCCL): they come
    # with the first deploy that needs them, not with every `make venv`
    local_environments={"xgboost": "mlserver-boosting", "lightgbm": "mlserver-boosting"},
    cluster=("mlserver/model.yaml.j2",),
    exposure=BY_SELDON,  # no API key: MLServer has no check of its own
    # A Seldon Model runs on the cluster's MLServer servers: it carries replica bounds, which
    # Seldon scales between on inference lag, and no pod of its own.
    modes={"Seldon": Mode((Scaling(autoscaler="Seldon, on inference lag"),))},
    runtime="the MLServer implementation class",
    pod=False,
    gpus=CPU_ONLY,  # no pod of its own: the Seldon servers' GPUs are theirs (MG227)
    runtimes={
        "sklearn": "mlserver_sklearn.SKLearnModel",
        "xgboost": "mlserver_xgboost.XGBoostModel",
        "lightgbm": "mlserver_lightgbm.LightGBMModel",
        "huggingface": "mlserver_huggingface.HuggingFaceRuntime",
    },
    # joblib.load (mlserver-sklearn); transformers' torch.load of pytorch_model.bin files
    pickle_runtimes=("mlserver_sklearn.SKLearnModel", "mlserver_huggingface.HuggingFaceRuntime"),
    # the capability a Seldon server must list to be scheduled this model
    requirements={
        "sklearn": "sklearn",
        "xgboost": "xgboost",
        "lightgbm": "lightgbm",
        "huggingface": "huggingface",
        "onnx": "onnx",
        "pytorch": "pytorch",
        "tensorflow": "tensorflow",
    },
)

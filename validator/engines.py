"""The engine table: which templates each engine renders, per target.

Adding an engine is one folder in templates/ plus one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Engine:
    name: str
    # target -> template file names inside templates/<engine>/ (".j2" is dropped on output)
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # model format -> the engine's default runtime/implementation for it
    runtimes: dict[str, str] = field(default_factory=dict)


ENGINES: dict[str, Engine] = {
    "mlserver": Engine(
        name="mlserver",
        templates={"local": ("model-settings.json.j2", "settings.json.j2")},
        runtimes={
            "sklearn": "mlserver_sklearn.SKLearnModel",
            "xgboost": "mlserver_xgboost.XGBoostModel",
            "lightgbm": "mlserver_lightgbm.LightGBMModel",
            "huggingface": "mlserver_huggingface.HuggingFaceRuntime",
        },
    ),
    "kserve": Engine(name="kserve"),
    "vllm": Engine(name="vllm"),
    "tgi": Engine(name="tgi"),
    "triton": Engine(name="triton"),
    "docker": Engine(name="docker"),
}


def runtime_for(spec: dict) -> str | None:
    """The runtime named in the spec, else the engine's default for the model format."""
    engine = spec["engine"]
    if engine.get("runtime"):
        return engine["runtime"]
    return ENGINES[engine["name"]].runtimes.get(spec["model"]["format"])

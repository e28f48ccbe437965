"""Text Generation Inference: Hugging Face's LLM server (a Deployment)."""

from . import STORES, WORKLOAD, Engine, Gpus

ENGINE = Engine(
    name="tgi",
    summary="Text Generation Inference: Hugging Face's LLM server",
    formats=("huggingface",),
    protocols=("openai",),
    default_version="2.4.0",
    versions=("2.*", "3.*"),
    image="huggingface/text-generation-inference:{version}",
    port=8080,
    live="/health",
    ready="/health",
    llm=True,
    cache="/data",
    gpus=Gpus(("nvidia",), required=True),  # its image is a CUDA build that needs a GPU
    cluster=("tgi/deployment.yaml.j2", *WORKLOAD),
    # the launcher downloads hf:// models itself, at REVISION; an artifact from a store is
    # fetched into the cache volume first and served from there
    fetch=STORES,
    model_volume="model-cache",
    model_dir="/data/model",
    revision_env="REVISION",  # the launcher's --revision; the tokenizer comes with the model
    # the root filesystem is read-only: weights go to the cache volume mounted at /data
    cluster_env={"HF_HOME": "/data", "USAGE_STATS": "off"},
    # the router checks `Authorization: Bearer KEY` on all but /health and /info, since
    # 2.3.0 (huggingface/text-generation-inference#2315)
    api_key_env="API_KEY",
    api_key_since="2.3.0",
)

"""vLLM: an OpenAI-compatible server for large language models (a Deployment)."""

from . import STORES, WORKLOAD, Engine, Gpus

ENGINE = Engine(
    name="vllm",
    summary="vLLM: OpenAI-compatible LLM server",
    formats=("huggingface",),
    protocols=("openai",),
    default_version="0.6.3",
    versions=("0.*",),
    image="vllm/vllm-openai:v{version}",
    port=8000,
    live="/health",
    ready="/health",
    llm=True,
    cache="/models-cache",
    gpus=Gpus(("nvidia",), required=True),  # its image is a CUDA build that needs a GPU
    cluster=("vllm/deployment.yaml.j2", *WORKLOAD),
    # it downloads hf:// models itself, at the revision given; an artifact from a store is
    # fetched into the cache volume first and served from there
    fetch=STORES,
    model_volume="model-cache",
    model_dir="/models-cache/model",
    # the tokenizer is read from the same repository, at the same commit
    revision_args=("--revision", "--tokenizer-revision"),
    # the root filesystem is read-only: weights and compiled kernels go to the cache volume
    cluster_env={
        "HF_HOME": "/models-cache/huggingface",
        "VLLM_CACHE_ROOT": "/models-cache/vllm",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    },
    # the OpenAI server checks `Authorization: Bearer KEY` on /v1 (health stays open)
    api_key_env="VLLM_API_KEY",
    api_key_since="0.3.0",
)

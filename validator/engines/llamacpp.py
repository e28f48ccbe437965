"""llama.cpp: its OpenAI-compatible server on GGUF models, for CPUs and edge devices."""

from . import ALWAYS, CPU_ONLY, MIB, WORKLOAD, Engine, GpuMemory

ENGINE = Engine(
    name="llamacpp",
    summary="llama.cpp: OpenAI-compatible server for GGUF models, on CPUs and edge devices",
    formats=("gguf",),
    protocols=("openai",),
    default_version="b6000",
    versions=("b*",),  # llama.cpp's build numbers, as its server images are tagged
    image="ggml-org/llama.cpp:server-{version}",
    port=8080,
    live="/health",
    ready="/health",  # 503 while the model loads, 200 once it can generate
    # locally: llama-cpp-python's server (the same llama.cpp, compiled at install) on the
    # repository's GGUF file (engines/_servers/llamacpp_server.py)
    local=("llamacpp/model-server.json.j2",),
    local_command=(
        "python",
        "{servers}/llamacpp_server.py",
        "{model_dir}/model-server.json",
        "--port",
        "{http_port}",
    ),
    local_environments={"*": "llamacpp"},
    cluster=("llamacpp/deployment.yaml.j2", *WORKLOAD),
    # the storage initializer fetches the GGUF file into /models (its digest checked) before
    # the server starts
    fetch=ALWAYS,
    model_volume="models",
    model_dir="/models/{name}",
    cache="/models",
    gpus=CPU_ONLY,  # the server-bNNNN images are its CPU build
    # no API key: modelgate does not yet pass one to llama-server
    # llama-server's arguments (common/arg.cpp, common.h at b6000) on a GPU build named by
    # spec.engine.image: --ctx-size cells (4096, 0: the model's), rounded up to 256
    # (llama_kv_cache), shared by the --parallel slots; the K and V cache types; the
    # decoder layers -ngl offloads (0 by default at b6000), split over every GPU it sees.
    gpu_memory=GpuMemory(
        context_flags=("--ctx-size", "-c"),
        default_context=4096,
        context_padding=256,
        batch_flags=("--parallel", "-np"),
        default_batch=1,
        kv_dtype_flags=("--cache-type-k", "-ctk"),
        kv_value_dtype_flags=("--cache-type-v", "-ctv"),
        kv_dtypes={
            "f32": 4,
            "f16": 2,
            "bf16": 2,
            "q8_0": 34 / 32,
            "q4_0": 18 / 32,
            "q4_1": 20 / 32,
            "iq4_nl": 18 / 32,
            "q5_0": 22 / 32,
            "q5_1": 24 / 32,
        },
        default_kv_dtype="f16",
        gpu_layer_flags=("--n-gpu-layers", "-ngl", "--gpu-layers"),
        default_gpu_layers=0,
        reserve=512 * MIB,
        reserve_source=(
            "llama.cpp's compute buffer for a micro-batch of 512 tokens (-ub, common.h) "
            "and the CUDA context, per GPU: its log's 'CUDA0 compute buffer size' is "
            "100-400 MiB for 1B-70B models"
        ),
    ),
)

"""llama.cpp: its OpenAI-compatible server on GGUF models, for CPUs and edge devices."""

from . import ALWAYS, CPU_ONLY, WORKLOAD, Engine

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
)

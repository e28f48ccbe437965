"""llama.cpp's OpenAI-compatible server (llama-cpp-python) on one GGUF model, on loopback.

    python llamacpp_server.py SETTINGS.json --port P [--host ADDRESS]

SETTINGS.json is what modelgate renders into rendered/local/NAME/ (templates/llamacpp/): the
model's name, which the API serves it as (`"model": NAME` in a request), and its artifact,
relative to the settings file. The model is loaded before the server listens: /v1/models
answers once it can generate (this server has no /health). It binds 127.0.0.1 unless --host
says otherwise (a container image binds 0.0.0.0 of its own network namespace).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

LOOPBACK = "127.0.0.1"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    options = parser.parse_args(argv)
    settings = json.loads(options.settings.read_text(encoding="utf-8"))
    artifact = (options.settings.parent / settings["uri"]).resolve()
    model = ModelSettings(
        model=str(artifact),
        model_alias=settings["name"],
        n_ctx=0,  # the model's own context length
        n_threads=1,
        n_threads_batch=1,
        seed=0,
        verbose=False,
    )
    server = ServerSettings(host=options.host, port=options.port)
    app = create_app(server_settings=server, model_settings=[model])
    uvicorn.run(app, host=options.host, port=options.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

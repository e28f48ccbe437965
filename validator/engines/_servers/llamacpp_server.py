"""llama.cpp's OpenAI-compatible server (llama-cpp-python) on one GGUF model, on loopback.

    python llamacpp_server.py SETTINGS.json --port P [--host ADDRESS]

SETTINGS.json is what modelgate renders into rendered/local/NAME/ (templates/llamacpp/): the
model's name, which the API serves it as (`"model": NAME` in a request), and its artifact,
relative to the settings file. The model is loaded before the server listens: /v1/models
answers once it can generate (this server has no /health). It binds 127.0.0.1 unless --host
says otherwise (a container image binds 0.0.0.0 of its own network namespace).

A request that names another model is answered 404, as vLLM answers it: llama-cpp-python
serves its only model under any name, so a smoke request with a misspelt model would pass
here and fail on the cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

LOOPBACK = "127.0.0.1"
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


class ServedName:
    """Refuses, with vLLM's 404, a POST under /v1/ whose JSON body names a model other than
    the one served; a body without "model" is the served one's, as vLLM takes it."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        asked = _model_named(body)
        if asked is not None and asked != self.name:
            await _not_found(send, asked)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _model_named(body: bytes) -> str | None:
    try:
        request = json.loads(body)
    except ValueError:
        return None  # the server itself answers what is not JSON
    model = request.get("model") if isinstance(request, dict) else None
    return model if isinstance(model, str) else None


async def _not_found(send: Send, model: str) -> None:
    error = {
        "message": f"The model `{model}` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }
    body = json.dumps({"object": "error", **error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    app = ServedName(create_app(server_settings=server, model_settings=[model]), settings["name"])
    uvicorn.run(app, host=options.host, port=options.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

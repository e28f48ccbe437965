"""The name an OpenAI-protocol server answers to is the spec's metadata.name: modelgate
renders it (vLLM's --served-model-name, llama.cpp's model alias), and a request for any other
model is answered 404 by vLLM. A smoke request that names another model, or an engine argument
that serves the model under another name, would pass a check that never calls the model
the way clients do, or fail only in the cluster; both are refused here, at their position.
"""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..engines import vllm
from .load import Document

OTHER_MODEL = "MG285"
OWN_ARGUMENT = "MG286"
OPENAI = "openai"
# vLLM's arguments engines/vllm.py's command_line writes from the spec
RENDERED_FLAGS = ("--model", "--served-model-name", "--port")


def check(document: Document) -> list[Diagnostic]:
    spec = document.data["spec"]
    if spec["engine"]["protocol"] != OPENAI:
        return []
    return [*_smoke_models(document), *_own_arguments(document)]


def _smoke_models(document: Document) -> list[Diagnostic]:
    name = document.data["metadata"]["name"]
    problems = []
    for index, request in enumerate(document.data["spec"].get("smoke", {}).get("requests", [])):
        body = request.get("body")
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model != name:
            problems.append(
                document.finding(
                    ["spec", "smoke", "requests", index, "body", "model"],
                    OTHER_MODEL,
                    f"smoke request '{request.get('name', index)}' calls model '{model}', and "
                    f"the server serves this one as '{name}' (vLLM answers 404)",
                    f"set body.model to '{name}'",
                )
            )
    return problems


def _own_arguments(document: Document) -> list[Diagnostic]:
    engine = document.data["spec"]["engine"]
    if engine["name"] != vllm.ENGINE.name:
        return []
    problems = []
    for index, argument in enumerate(engine.get("args", [])):
        flag = argument.split("=", 1)[0]
        if flag in RENDERED_FLAGS:
            problems.append(
                document.finding(
                    ["spec", "engine", "args", index],
                    OWN_ARGUMENT,
                    f"{flag} is set by modelgate from the spec (the model, its name as "
                    "clients call it, the port): a second one would serve something else",
                    f"remove {argument} from spec.engine.args",
                )
            )
    return problems

"""A client calls an OpenAI-protocol model by the spec's name (vLLM's --served-model-name):
a smoke request for another model, or an engine argument that serves it under another name,
is refused at validation, where it would pass on a lenient stand-in and 404 in the cluster."""

from __future__ import annotations

import json

from .conftest import PROJECT, Scaffold, located, run_cli

CHAT = (PROJECT / "models" / "chat-assistant.yaml").read_text(encoding="utf-8")


def _findings(scaffold: Scaffold, text: str, rule: str) -> list[dict]:
    path = scaffold.write_spec("chat-assistant", text)
    done = run_cli("--root", str(scaffold.root), "validate", str(path), "--format", "json")
    return [each for each in json.loads(done.out)["diagnostics"] if each["rule"] == rule]


def test_a_smoke_request_for_another_model_is_refused_at_its_line(scaffold: Scaffold) -> None:
    text = CHAT.replace("model: chat-assistant\n", "model: Qwen/Qwen2.5-0.5B-Instruct\n", 1)
    (finding,) = _findings(scaffold, text, "MG285")
    assert (finding["line"], finding["col"]) == located(
        text, "model: Qwen/Qwen2.5-0.5B-Instruct", "Qwen/"
    )
    assert "'chat-assistant'" in finding["message"] and "404" in finding["message"]


def test_the_spec_as_committed_calls_its_own_name(scaffold: Scaffold) -> None:
    assert _findings(scaffold, CHAT, "MG285") == []
    assert _findings(scaffold, CHAT, "MG286") == []


def test_a_served_model_name_in_the_engine_args_is_refused(scaffold: Scaffold) -> None:
    text = CHAT.replace('args: ["', 'args: ["--served-model-name=qwen", "', 1)
    (finding,) = _findings(scaffold, text, "MG286")
    assert (finding["line"], finding["col"]) == located(text, '"--served-model-name', '"--')
    assert "--served-model-name" in finding["message"]

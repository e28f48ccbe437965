"""chat-assistant on the local target runs on vLLM itself (its CPU build, locks/engine-vllm.txt)
with the arguments its Deployment renders, on its stand-in (a random-weight Qwen2 made by
models/artifacts/tiny-qwen2-hf/make.py), under its own name: the smoke requests pass, and a
chat completion and a streamed one answer. vLLM takes about a minute to be ready: the module
starts it once and keeps it for its tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from validator.check import fit
from validator.check.fit import memory
from validator.check.fit.model import DTYPE_BYTES
from validator.deploy import environments
from validator.engines.vllm import ENGINE as VLLM

from .conftest import PROJECT, STAND_IN_SCRIPTS, Scaffold, tree_sha256
from .test_deploy_engines import Example, engine_processes, post

pytestmark = pytest.mark.engine


def _scaffold(root: Path) -> Scaffold:
    (root / "models").mkdir(parents=True)
    shutil.copytree(PROJECT / "templates", root / "templates")
    shutil.copytree(PROJECT / "docs" / "models", root / "docs" / "models")
    for script in STAND_IN_SCRIPTS:
        (root / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / script, root / script)
    return Scaffold(root)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Example, str, str]]:
    example = Example(_scaffold(tmp_path_factory.mktemp("repo")), "chat-assistant")
    code, out, err = example.deploy("--keep")
    try:
        assert code == 0, out + err
        yield example, example.kept_url(), out
    finally:
        if code == 0:
            example.stop()
        leftovers = engine_processes(example.name)
        assert leftovers == [], "a vLLM process outlived its deploy"


def test_the_smoke_requests_pass_on_vllm_under_the_specs_name(chat) -> None:
    _, _, out = chat
    assert "smoke pass  hello" in out, out
    assert "smoke-tested on a stand-in: models/artifacts/tiny-qwen2-hf/model" in out
    assert "on vllm" in out
    assert environments.installed("vllm") is not None


def test_the_report_names_the_gpu_arguments_left_out(chat) -> None:
    _, _, out = chat
    assert "left out of the local run: --gpu-memory-utilization=0.90: the CPU build" in out


def test_the_wait_for_vllm_is_shown_with_progress(chat) -> None:
    """vLLM takes a minute and more to be ready: the deploy says how long it has waited."""
    example, _, out = chat
    assert f"{example.name}: waiting for the model to be ready: 30 s of 600 s" in out, out


def test_a_chat_completion_answers(chat) -> None:
    example, url, _ = chat
    body = {
        "model": example.name,
        "messages": [{"role": "user", "content": "Say hello in one word."}],
        "max_tokens": 4,
        "temperature": 0,
    }
    answer = post(f"{url}/v1/chat/completions", body)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == example.name
    assert answer["usage"]["completion_tokens"] >= 1


def test_a_streamed_completion_answers_in_chunks(chat) -> None:
    example, url, _ = chat
    body = {"model": example.name, "prompt": "Hello", "max_tokens": 4, "stream": True}
    request = urllib.request.Request(
        f"{url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        events = [line for line in answer.read().decode().splitlines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert len(chunks) >= 2 and all(c["object"] == "text_completion" for c in chunks)


def test_a_request_for_another_model_gets_vllms_404(chat) -> None:
    _, url, _ = chat
    body = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "Hello", "max_tokens": 1}
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{url}/v1/completions", body)
    assert refused.value.code == 404


def test_vllm_sizes_its_kv_cache_by_the_fits_arithmetic(chat) -> None:
    """The GPU fit's KV cache per token (validator/check/fit, read from the stand-in's own
    config.json) against vLLM's: the CPU build fills VLLM_CPU_KVCACHE_SPACE with blocks and
    says how many tokens they hold; tokens x the fit's bytes per token is that space, within
    5 %, in the dtype vLLM says it serves."""
    example, _, _ = chat
    state = json.loads((example.root / ".modelgate" / "run" / f"{example.name}.json").read_text())
    log = Path(state["log"]).read_text(encoding="utf-8", errors="replace")
    tokens = re.search(r"CPU KV cache size: ([\d,]+) tokens", log)
    dtype = re.search(r"\bdtype=torch\.(\w+)", log)
    assert tokens and dtype, log[-3000:]
    served = DTYPE_BYTES[dtype.group(1)]
    folder = "models/artifacts/tiny-qwen2-hf/model"
    model = fit.local_model(example.root, folder, "huggingface")
    args = yaml.safe_load(example.text)["spec"]["engine"]["args"]
    chosen = memory.settings(VLLM.gpu_memory, args, model, gpus=1)
    per_token = memory.need(
        VLLM.gpu_memory, model, replace(chosen, key_bytes=served, value_bytes=served)
    ).kv_per_token
    space = float(VLLM.local_env["VLLM_CPU_KVCACHE_SPACE"]) * 2**30
    held = int(tokens.group(1).replace(",", "")) * per_token
    assert abs(held - space) / space <= 0.05, (held, space, per_token, dtype.group(1))


def test_the_stand_in_is_made_again_byte_for_byte(tmp_path: Path) -> None:
    """With the vLLM environment's pinned versions, its script makes the folder whose
    treeSha256 chat-assistant pins."""
    stand_in = yaml.safe_load((PROJECT / "models" / "chat-assistant.yaml").read_text())["spec"][
        "smoke"
    ]["standIn"]
    python = environments.ensure("vllm") / "bin" / "python"
    made = tmp_path / "model"
    subprocess.run([python, PROJECT / stand_in["script"], made], check=True, capture_output=True)
    assert tree_sha256(made) == stand_in["treeSha256"]


# --- What only vLLM itself refuses: caught by the run, in vLLM's own words ------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Example]:
    example = Example(_scaffold(tmp_path / "repo"), "chat-assistant")
    yield example
    leftovers = engine_processes(example.name)
    assert leftovers == [], "a vLLM process outlived its failed deploy"


def _refused(example: Example) -> str:
    code, out, err = example.deploy()
    assert code == 1, out + err
    assert "model not deployed: the engine exited" in out + err
    assert "smoke pass" not in out
    return out + err


def test_a_flag_vllm_does_not_know_fails_the_run_with_vllms_message(fresh: Example) -> None:
    fresh.edit('args: ["', 'args: ["--tokenizer-revison=main", "')
    said = _refused(fresh)
    assert "unrecognized arguments: --tokenizer-revison=main" in said


def test_a_max_model_len_over_the_models_limit_fails_the_run(fresh: Example) -> None:
    """The stand-in keeps the real model's 32,768 positions, so the limit is judged as in the
    cluster."""
    fresh.edit("--max-model-len=4096", "--max-model-len=65536")
    said = _refused(fresh)
    assert "65536" in said and "32768" in said and "max_model_len" in said

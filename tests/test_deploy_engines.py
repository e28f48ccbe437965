"""Deploys on the local target of each engine besides the embedded MLServer, for real: the
example specs of models/ (XGBoost on MLServer, the KServe model server, Triton, llama.cpp),
each engine from its own environment (installed on first use, cached afterwards).

Each test deploys, waits for the model's own readiness, smoke-tests with the engine's real
protocol, and checks that no process of the engine (its helpers included) survives: the
processes are found by their working directory, the deploy's work directory.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from validator.deploy import environments, ledger

from .conftest import PROJECT, Scaffold, run_cli, tree_sha256
from .test_stand_ins import GGUF, ON_LLAMACPP, STAND_IN_START
from .test_stand_ins import SCRIPT as GGUF_SCRIPT

pytestmark = pytest.mark.engine

TIMEOUT_S = 300  # a first deploy installs the engine's environment


def engine_processes(name: str) -> list[int]:
    """Live processes (keeper, engine, the engine's helpers) working in a work directory of
    the deploys of `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if Path(cwd).name.startswith(f"modelgate-{name}-") and state != "Z":
            found.append(int(entry.name))
    return found


class Example:
    """A spec of models/ in a scratch repository, under a name of its own (no two tests
    share processes), with its artifact."""

    def __init__(self, scaffold: Scaffold, spec: str) -> None:
        self.root = scaffold.root
        self.name = f"{spec}-{uuid.uuid4().hex[:6]}"
        text = (PROJECT / "models" / f"{spec}.yaml").read_text(encoding="utf-8")
        self.text = text.replace(f"name: {spec}\n", f"name: {self.name}\n", 1).replace(
            f"model: {spec}\n",
            f"model: {self.name}\n",  # the name an OpenAI request names
        )
        self.path = scaffold.write_spec(self.name, self.text)
        spec = yaml.safe_load(self.text)["spec"]
        stand_in = spec["smoke"].get("standIn", {})
        artifact = spec["model"]["artifact"]
        files = [artifact, *(stand_in[field] for field in ("artifact", "script") if stand_in)]
        for path in (path for path in files if "://" not in path):
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            if (PROJECT / path).is_dir():  # a model folder (Hugging Face's layout)
                shutil.copytree(PROJECT / path, self.root / path, dirs_exist_ok=True)
            else:
                shutil.copyfile(PROJECT / path, self.root / path)
        self.artifact = self.root / artifact

    def edit(self, old: str, new: str) -> None:
        assert old in self.text, old
        self.text = self.text.replace(old, new)
        self.path.write_text(self.text, encoding="utf-8")

    def deploy(self, *options: str) -> tuple[int, str, str]:
        done = run_cli(
            "--root", str(self.root), "deploy", str(self.path), *options, timeout=TIMEOUT_S
        )
        return done.code, done.out, done.err

    def stop(self) -> None:
        assert run_cli("--root", str(self.root), "stop", self.name).code == 0

    def kept_url(self) -> str:
        state = self.root / ".modelgate" / "run" / f"{self.name}.json"
        return json.loads(state.read_text())["base_url"]


@pytest.fixture
def example(scaffold: Scaffold):
    made: list[Example] = []

    def make(spec: str) -> Example:
        made.append(Example(scaffold, spec))
        return made[-1]

    yield make
    leftovers = [pid for each in made for pid in engine_processes(each.name)]
    for pid in leftovers:  # clean up before failing, so one failure does not cascade
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "an engine process outlived its deploy"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def assert_deployed(code: int, out: str, err: str, *smoke: str) -> None:
    assert code == 0, out + err
    for name in smoke:
        assert f"smoke pass  {name}" in out, out
    assert "endpoint: http://127.0.0.1:" in out


def assert_torn_down(example: Example) -> None:
    assert engine_processes(example.name) == []
    assert not (example.root / ".modelgate" / "run" / f"{example.name}.json").exists()


# --- The example models ---------------------------------------------------------------------

# the artifact each script makes, and the environment it runs in
MADE = {
    "models/artifacts/iris-xgboost/model.json": (
        "mlserver-boosting",
        "models/artifacts/iris-xgboost/train.py",
    ),
    "models/artifacts/iris-lightgbm/model.bst": (
        "mlserver-boosting",
        "models/artifacts/iris-lightgbm/train.py",
    ),
    "models/artifacts/fraud-onnx-small/model.onnx": (
        "triton",
        "models/artifacts/fraud-onnx-small/make.py",
    ),
    "models/artifacts/tiny-llama/tiny-llama.gguf": (
        "llamacpp",
        "models/artifacts/tiny-llama/make.py",
    ),
    "models/artifacts/tiny-qwen2/tiny-qwen2.gguf": (
        "llamacpp",
        "models/artifacts/tiny-qwen2/make.py",
    ),
}


@pytest.mark.parametrize("artifact", sorted(MADE), ids=lambda path: Path(path).parent.name)
def test_each_example_model_is_made_again_byte_for_byte(artifact: str, tmp_path: Path) -> None:
    """With its environment's pinned versions, each script makes the committed artifact (the
    sha256 its spec names) again."""
    environment, script = MADE[artifact]
    python = environments.ensure(environment) / "bin" / "python"
    made = tmp_path / Path(artifact).name
    subprocess.run([python, PROJECT / script, made], check=True, capture_output=True)
    committed = (PROJECT / artifact).read_bytes()
    assert hashlib.sha256(made.read_bytes()).digest() == hashlib.sha256(committed).digest()


# --- MLServer's XGBoost runtime -------------------------------------------------------------


def test_xgboost_on_mlserver_from_its_own_environment(example) -> None:
    iris = example("iris-xgboost")
    code, out, err = iris.deploy()
    assert_deployed(code, out, err, "setosa", "three-species")
    assert f"/v2/models/{iris.name}/infer" in out and "torn down" in out
    assert_torn_down(iris)
    assert environments.installed("mlserver-boosting") is not None


def test_lightgbm_on_mlserver_from_the_same_environment(example) -> None:
    iris = example("iris-lightgbm")
    code, out, err = iris.deploy("--keep")
    assert_deployed(code, out, err, "setosa", "three-species")
    url = iris.kept_url()
    flowers = [5.1, 3.5, 1.4, 0.2, 6.4, 3.2, 4.5, 1.5, 6.3, 3.3, 6.0, 2.5]
    body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": flowers}]}
    (output,) = post(f"{url}/v2/models/{iris.name}/infer", body)["outputs"]
    rows = [output["data"][row * 3 : row * 3 + 3] for row in range(3)]
    assert [row.index(max(row)) for row in rows] == [0, 1, 2]  # setosa, versicolor, virginica
    iris.stop()
    assert_torn_down(iris)


# --- KServe ---------------------------------------------------------------------------------


def test_kserve_serves_v1_and_v2_keeps_blue_green_and_stops(example) -> None:
    iris = example("iris-kserve")
    code, out, err = iris.deploy("--keep")
    assert_deployed(code, out, err, "setosa", "three-species")
    assert f"/v1/models/{iris.name}:predict" in out
    url = iris.kept_url()
    assert get(f"{url}/v1/models/{iris.name}") == (200, {"name": iris.name, "ready": True})
    assert get(f"{url}/v2/models/{iris.name}/ready")[0] == 200
    v2 = post(
        f"{url}/v2/models/{iris.name}/infer",
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.3, 3.3, 6, 2.5]}
            ]
        },
    )
    assert v2["outputs"][0]["data"] == [2]
    first = engine_processes(iris.name)
    assert first

    code, out, err = iris.deploy("--keep")  # blue/green: the new one replaces the kept one
    assert_deployed(code, out, err, "setosa")
    assert iris.kept_url() != url
    assert not set(first) & set(engine_processes(iris.name)), "the old server still runs"
    assert post(f"{iris.kept_url()}/v1/models/{iris.name}:predict", {"instances": [[5, 3, 1, 0]]})
    iris.stop()
    assert_torn_down(iris)


def test_kserve_binds_loopback_only(example) -> None:
    iris = example("iris-kserve")
    code, out, err = iris.deploy("--keep")
    assert code == 0, out + err
    try:
        pids = {str(pid) for pid in engine_processes(iris.name)}
        listening = listening_addresses(pids)
        assert listening and all(host == "127.0.0.1" for host in listening), listening
        assert len(listening) >= 2  # REST and gRPC
    finally:
        iris.stop()


def listening_addresses(pids: set[str]) -> list[str]:
    """The local addresses of the TCP sockets these processes listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                found.append(_host(address.split(":")[0], size))
    return found


def _host(hexadecimal: str, size: int) -> str:
    """/proc/net/tcp's address: 32-bit words, each in the machine's (little-endian) order."""
    raw = bytes.fromhex(hexadecimal)
    address = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4)))
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def test_kserve_model_that_does_not_load_is_not_deployed(example) -> None:
    """A folder with two models in it: KServe's model cannot choose, its load fails, and the
    server exits before the model is ever ready."""
    iris = example("iris-kserve")
    folder = iris.artifact.parent
    shutil.copyfile(iris.artifact, folder / "other.joblib")
    iris.edit("artifact: models/artifacts/iris/model.joblib", "artifact: models/artifacts/iris")
    iris.edit(
        "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n",
        f"    treeSha256: {tree_sha256(folder)}\n",
    )
    code, out, err = iris.deploy()
    assert code == 1, out + err
    assert "MG501 model not deployed: the engine exited" in err
    assert "expected one .joblib or .pkl file" in err
    assert "nothing left running" in err
    assert_torn_down(iris)


# --- Triton ---------------------------------------------------------------------------------


def test_triton_serves_the_rendered_repository_keeps_blue_green_and_stops(example) -> None:
    fraud = example("fraud-onnx-small")
    code, out, err = fraud.deploy("--keep")
    assert_deployed(code, out, err, "one-transaction", "two-transactions")
    url = fraud.kept_url()
    status, metadata = get(f"{url}/v2/models/{fraud.name}")
    assert status == 200 and metadata["platform"] == "python"
    assert [i["name"] for i in metadata["inputs"]] == ["features"]
    config = (fraud.root / "rendered/local" / fraud.name / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "max_batch_size: 8" in config
    first = engine_processes(fraud.name)
    code, out, err = fraud.deploy("--keep")
    assert_deployed(code, out, err, "one-transaction")
    assert fraud.kept_url() != url and not set(first) & set(engine_processes(fraud.name))
    fraud.stop()
    assert_torn_down(fraud)


def test_triton_itself_refuses_requests_its_configuration_does_not_allow(example) -> None:
    """The rendered config.pbtxt is what the real server judges requests by: a batch larger
    than spec.engine.maxBatchSize is refused by Triton, not by modelgate."""
    fraud = example("fraud-onnx-small")
    fraud.edit("maxBatchSize: 8", "maxBatchSize: 1")
    code, out, err = fraud.deploy()
    assert code == 1, out + err
    assert "smoke pass  one-transaction" in out and "smoke FAIL  two-transactions" in out
    assert "MG601 smoke request 'two-transactions': HTTP 400" in err
    assert "batch-size must be <= 1" in err
    assert_torn_down(fraud)


# --- llama.cpp ------------------------------------------------------------------------------


def test_llamacpp_serves_the_openai_api_keeps_blue_green_and_stops(example) -> None:
    llama = example("tiny-llama")
    code, out, err = llama.deploy("--keep")
    assert_deployed(code, out, err, "hello", "complete")
    assert "/v1/chat/completions" in out
    url = llama.kept_url()
    status, models = get(f"{url}/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == [llama.name]
    completion = post(
        f"{url}/v1/completions", {"model": llama.name, "prompt": "Hello", "max_tokens": 4}
    )
    assert completion["object"] == "text_completion" and completion["choices"]
    first = engine_processes(llama.name)
    code, out, err = llama.deploy("--keep")
    assert_deployed(code, out, err, "hello")
    assert llama.kept_url() != url and not set(first) & set(engine_processes(llama.name))
    llama.stop()
    assert_torn_down(llama)


# --- Stand-ins -------------------------------------------------------------------------------


def test_a_stand_in_is_served_in_place_of_a_model_the_local_target_cannot_run(example) -> None:
    """chat-assistant is a vLLM model on a GPU, from the Hugging Face Hub: given a stand-in on
    an engine of its own (a GGUF model on llama.cpp), the local target serves it under the
    spec's name, sends it the spec's smoke requests, and every report says the smoke tests
    ran on a stand-in. (Its own stand-in runs on vLLM: test_vllm_local.py.)"""
    chat = example("chat-assistant")
    for path in (GGUF, GGUF_SCRIPT):
        (chat.root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / path, chat.root / path)
    start = chat.text.index(STAND_IN_START)
    chat.edit(chat.text[start : chat.text.index("    requests:\n", start)], ON_LLAMACPP)
    code, out, err = chat.deploy("--keep")
    assert_deployed(code, out, err, "hello")
    assert (
        f"{chat.name}: smoke-tested on a stand-in: models/artifacts/tiny-qwen2/tiny-qwen2.gguf "
        "(gguf on llamacpp, made by models/artifacts/tiny-qwen2/make.py) in place of "
        "hf://Qwen/Qwen2.5-0.5B-Instruct (huggingface on vllm)"
    ) in out
    status, models = get(f"{chat.kept_url()}/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == [chat.name]
    smoked = run_cli("--root", str(chat.root), "smoke", chat.name)  # the kept server, again
    assert smoked.code == 0 and "smoke pass  hello" in smoked.out, smoked.out + smoked.err
    assert f"{chat.name}: smoke-tested on a stand-in: models/artifacts/tiny-qwen2/" in smoked.out
    record = ledger.history(chat.root, chat.name)[-1]
    assert record["result"] == "deployed"
    assert record["stand_in"].startswith("models/artifacts/tiny-qwen2/tiny-qwen2.gguf (gguf")
    assert (
        record["artifact"]
        == hashlib.sha256(
            (PROJECT / "models/artifacts/tiny-qwen2/tiny-qwen2.gguf").read_bytes()
        ).hexdigest()
    )
    chat.stop()
    assert_torn_down(chat)


def test_llamacpp_answers_a_request_for_another_model_404_as_vllm_does(example) -> None:
    """llama-cpp-python serves its one model under any name; vLLM answers 404 to a name it
    does not serve, and so does the local llama.cpp: a client's misspelt model fails here, not
    after merge (a smoke request's is refused before, at validation: MG285)."""
    llama = example("tiny-llama")
    code, out, err = llama.deploy("--keep")
    assert code == 0, out + err
    try:
        body = {"model": f"{llama.name}t", "messages": [{"role": "user", "content": "hi"}]}
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(f"{llama.kept_url()}/v1/chat/completions", body)
        assert refused.value.code == 404
        assert f"The model `{llama.name}t` does not exist." in refused.value.read().decode()
    finally:
        llama.stop()
    assert_torn_down(llama)


def test_llamacpp_model_that_does_not_load_is_not_deployed(example) -> None:
    llama = example("tiny-llama")
    llama.edit(re.search(r"    sha256: [0-9a-f]{64}\n", llama.text)[0], "")
    llama.artifact.write_bytes(b"GGUF but not really")
    code, out, err = llama.deploy()
    assert code == 1, out + err
    assert "MG501 model not deployed: the engine exited" in err
    assert_torn_down(llama)


# --- Environments, as deploys see them ------------------------------------------------------


def test_the_embedded_engine_installs_no_environment(
    scaffold: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` deploys iris on the embedded MLServer: nothing is installed for it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(cache))
    done = run_cli("--root", str(scaffold.root), "deploy", str(scaffold.iris()))
    assert done.code == 0, done.out + done.err
    assert "installing" not in done.out + done.err
    assert not (cache / "engines").exists()


def test_an_environment_that_cannot_be_installed_is_a_finding_at_the_engine(
    example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engines = tmp_path / "cache" / "engines"
    engines.mkdir(parents=True)
    engines.chmod(0o777)  # others may write it: not a cache to run engines from
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(engines.parent))
    iris = example("iris-kserve")
    code, out, err = iris.deploy()
    assert code == 1, out + err
    line = next(n for n, text in enumerate(iris.text.splitlines(), 1) if "name: kserve" in text)
    assert (
        f"models/{iris.name}.yaml:{line}:11: MG504 model not deployed: the kserve engine "
        "environment cannot be installed: "
    ) in err
    assert "may be written by others than this user" in err
    assert list(engines.iterdir()) == []

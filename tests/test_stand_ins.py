"""Stand-ins (spec.smoke.standIn): what validation refuses, what the local target renders and
deploys for a spec that names one, which changes touch it, and how a changed spec the local
target cannot run at all is reported (not run, never passed).

The deploy of a stand-in on its engine is in test_deploy_engines.py (it starts llama.cpp).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from validator.check import changes, stand_ins, workspace
from validator.deploy import ledger

from .conftest import IRIS_SHA256, PROJECT, Scaffold, git, run_cli

GGUF = "models/artifacts/tiny-qwen2/tiny-qwen2.gguf"
SCRIPT = "models/artifacts/tiny-qwen2/make.py"
STAND_IN_START = "    standIn:\n"
# a stand-in on an engine of its own: the tiny Qwen2 in GGUF on llama.cpp (chat-assistant's
# own runs on vLLM: tests/test_vllm_local.py)
ON_LLAMACPP = f"""    standIn:
      artifact: {GGUF}
      sha256: 3870e92149b637a8efd14b59b654c3f1d08f4bee661e649a9ce511c1c1eb25f5
      format: gguf
      engine: llamacpp
      script: {SCRIPT}
"""


def without_stand_in(text: str) -> str:
    start = text.index(STAND_IN_START)
    end = text.index("    requests:\n", start)
    return text[:start] + text[end:]


def _with_stand_in(text: str, stand_in: str) -> str:
    start = text.index(STAND_IN_START)
    return text[:start] + stand_in + without_stand_in(text)[start:]


CHAT = _with_stand_in(
    (PROJECT / "models" / "chat-assistant.yaml").read_text(encoding="utf-8"), ON_LLAMACPP
)


@pytest.fixture
def chat(scaffold: Scaffold) -> Scaffold:
    """The scaffold with the stand-in of chat-assistant and its script."""
    for path in (GGUF, SCRIPT):
        (scaffold.root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / path, scaffold.root / path)
    return scaffold


def write_chat(scaffold: Scaffold, old: str = "", new: str = "") -> Path:
    assert old in CHAT, old
    return scaffold.write_spec("chat-assistant", CHAT.replace(old, new) if old else CHAT)


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, text in enumerate(lines, 1) if needle in text)


def validate(scaffold: Scaffold, spec: Path) -> tuple[int, str]:
    done = run_cli("--root", str(scaffold.root), "validate", str(spec))
    return done.code, done.out + done.err


# --- validation -------------------------------------------------------------------------------


def test_the_example_stand_in_is_valid(chat: Scaffold) -> None:
    code, shown = validate(chat, write_chat(chat))
    assert code == 0, shown


@pytest.mark.parametrize(
    ("old", "new", "needle", "column", "message"),
    [
        (
            "engine: llamacpp",
            "engine: tgi",
            "engine: tgi",
            15,
            "MG232 the local target cannot start engine tgi, so it cannot serve this stand-in",
        ),
        (
            "engine: llamacpp",
            "engine: kserve",
            "engine: kserve",
            15,
            "MG232 engine kserve does not speak protocol openai, the spec's",
        ),
        (
            "format: gguf",
            "format: onnx",
            "format: onnx",
            15,
            "MG232 the local target serves llamacpp models of format gguf only, and the "
            "stand-in is onnx",
        ),
        (
            f"artifact: {GGUF}",
            "artifact: ../outside.gguf",
            "artifact: ../outside.gguf",
            17,
            "MG232 stand-in artifact ../outside.gguf lies outside the repository",
        ),
        (
            f"script: {SCRIPT}",
            "script: models/artifacts/tiny-qwen2/gone.py",
            "script: models/artifacts/tiny-qwen2/gone.py",
            15,
            "MG233 the stand-in's script models/artifacts/tiny-qwen2/gone.py is not a file of "
            "the repository",
        ),
        (
            "sha256: 3870e921",
            "sha256: 0870e921",
            "sha256: 0870e921",
            15,
            f"MG119 artifact {GGUF} has sha256 3870e921",
        ),
    ],
    ids=["engine-not-local", "protocol", "format", "outside", "no-script", "digest"],
)
def test_a_stand_in_the_local_target_cannot_serve_is_refused_at_its_field(
    chat: Scaffold, old: str, new: str, needle: str, column: int, message: str
) -> None:
    spec = write_chat(chat, old, new)
    code, shown = validate(chat, spec)
    assert code == 1, shown
    where = f"models/chat-assistant.yaml:{line_of(spec, needle.splitlines()[0])}:{column}: "
    assert where + message in shown, shown


def test_a_stand_in_must_be_pinned_by_its_digest(chat: Scaffold) -> None:
    spec = write_chat(chat, "      sha256: 3870e921", "      # sha256: 3870e921")
    code, shown = validate(chat, spec)
    assert code == 1
    line = line_of(spec, "standIn:")
    assert (
        f"models/chat-assistant.yaml:{line}:5: MG201 spec.smoke.standIn: pin the stand-in: set "
        "'sha256' (a file) or 'treeSha256' (a folder)"
    ) in shown


# --- what the local target runs ---------------------------------------------------------------


def test_the_served_spec_is_the_stand_in_under_the_spec_s_name_and_protocol() -> None:
    import yaml

    spec = yaml.safe_load(CHAT)["spec"]
    served = stand_ins.served_spec(spec)
    assert served["model"] == {
        "artifact": GGUF,
        "sha256": spec["smoke"]["standIn"]["sha256"],
        "format": "gguf",
        "version": spec["model"]["version"],
    }
    assert served["engine"] == {"name": "llamacpp", "protocol": "openai"}  # no vLLM args
    assert served["smoke"]["requests"] == spec["smoke"]["requests"]
    assert stand_ins.served_spec(yaml.safe_load(without_stand_in(CHAT))["spec"]) is not served


def test_render_writes_the_stand_in_s_local_files(chat: Scaffold) -> None:
    write_chat(chat)
    done = run_cli("--root", str(chat.root), "render")
    assert done.code == 0, done.out + done.err
    settings = json.loads(
        (chat.root / "rendered/local/chat-assistant/model-server.json").read_text()
    )
    assert settings == {
        "name": "chat-assistant",
        "format": "gguf",
        "uri": f"../../../{GGUF}",
        "version": "2.5.0-instruct",
    }
    assert (chat.root / "rendered/staging/chat-assistant/deployment.yaml").is_file()


# --- which changes touch it -------------------------------------------------------------------


@pytest.mark.parametrize("changed", [GGUF, SCRIPT])
def test_a_changed_stand_in_or_script_touches_the_spec(chat: Scaffold, changed: str) -> None:
    write_chat(chat)
    git(chat.root, "init", "-q", "-b", "main")
    git(chat.root, "add", "-A")
    git(chat.root, "commit", "-q", "-m", "chat")
    documents = workspace.validate(workspace.discover(chat.root, []), chat.root).valid_documents()
    watched = changes.artifacts(documents)
    assert changes.affected(documents, changes.changed_files(chat.root, "HEAD", watched)) == []
    with (chat.root / changed).open("ab") as stream:
        stream.write(b"\n")
    touched = changes.affected(documents, changes.changed_files(chat.root, "HEAD", watched))
    assert [document.path for document in touched] == ["models/chat-assistant.yaml"]


# --- a spec the local target cannot run: reported as not run ----------------------------------


def test_a_changed_spec_with_no_local_engine_and_no_stand_in_is_reported_not_run(
    committed: Scaffold,
) -> None:
    committed.write_spec("chat-assistant", without_stand_in(CHAT))
    done = run_cli(
        "--root", str(committed.root), "deploy", "--changed-since", "HEAD", "--target", "local"
    )
    assert done.code == 0, done.out + done.err
    said = (
        "chat-assistant: not run: the local target serves artifacts inside this repository, "
        "not remote URIs"
    )
    assert said in done.out
    assert (
        "and the spec names no stand-in (spec.smoke.standIn); its smoke tests did not run"
        in done.out
    )
    assert "smoke pass" not in done.out
    (record,) = ledger.history(committed.root, "chat-assistant")
    assert record["result"] == "not run" and record["target"] == "local"
    assert record["error"].startswith("the local target serves artifacts inside this repository")
    assert record["error"].endswith(
        "names no stand-in (spec.smoke.standIn); its smoke tests did not run"
    )
    assert record["endpoint"] == ""


def test_deploying_such_a_spec_by_name_fails_and_points_at_stand_ins(scaffold: Scaffold) -> None:
    spec = scaffold.write_spec("chat-assistant", without_stand_in(CHAT))
    done = run_cli("--root", str(scaffold.root), "deploy", str(spec))
    assert done.code == 1
    assert "MG503 the local target serves artifacts inside this repository" in done.err
    assert "name a stand-in the local target can serve (spec.smoke.standIn)" in done.err


IMAGE = "registry.example.com/ml/iris@sha256:" + "2f" * 32


def test_a_changed_spec_another_target_of_this_machine_runs_is_left_to_it(
    committed: Scaffold,
) -> None:
    """The pull-request workflow deploys changed specs on the local and the docker target:
    on each, a spec the other one runs is left to it, not reported as not run."""
    committed.iris(
        "iris-image",
        **{
            "    artifact: models/artifacts/iris/model.joblib\n": f"    image: {IMAGE}\n",
            f"    sha256: {IRIS_SHA256}\n": "",
            "    name: mlserver\n    version: 1.7.1\n": "    name: docker\n",
        },
    )
    on_local = run_cli(
        "--root", str(committed.root), "deploy", "--changed-since", "HEAD", "--target", "local"
    )
    assert "iris-image: left to the docker target, which runs it" in on_local.out, on_local.err
    git(committed.root, "add", "-A")
    git(committed.root, "commit", "-q", "-m", "iris-image")
    iris = committed.root / "models" / "iris.yaml"
    iris.write_text(iris.read_text().replace("description: ", "description: Changed. "))
    on_docker = run_cli(
        "--root", str(committed.root), "deploy", "--changed-since", "HEAD", "--target", "docker"
    )
    assert "iris: left to the local target, which runs it" in on_docker.out, on_docker.err
    assert "not run" not in on_local.out + on_docker.out
    assert ledger.history(committed.root, "iris-image") == []
    assert ledger.history(committed.root, "iris") == []

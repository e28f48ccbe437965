"""The docker target against a real Docker engine (started by tests/docker_env.py), with the
iris model image pulled by digest from a local registry, as a user deploys one."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from validator.check import load, schema
from validator.deploy import docker as target
from validator.deploy import ledger

from . import docker_env
from .conftest import IRIS_SPEC, PROJECT, Scaffold

pytestmark = pytest.mark.engine
SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


@pytest.fixture(scope="module")
def engine() -> Iterator[docker_env.DockerEnv]:
    try:
        env = docker_env.start()
    except docker_env.Unavailable as reason:
        pytest.skip(f"no Docker engine: {reason}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = env.host
    try:
        yield env
    finally:
        try:
            _remove_all(env.host)
        finally:
            env.close()
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous


def _remove_all(host: str) -> None:
    import docker

    client = docker.DockerClient(base_url=host)
    for container in client.containers.list(all=True, filters={"label": target.NAME_LABEL}):
        container.remove(force=True)


def containers(env: docker_env.DockerEnv) -> list[str]:
    import docker

    client = docker.DockerClient(base_url=env.host)
    return [c.name for c in client.containers.list(all=True, filters={"label": target.NAME_LABEL})]


def image_spec(image: str, **replacements: str) -> load.Document:
    """iris packaged as an image that serves itself: the docker engine's."""
    text = IRIS_SPEC.replace(
        "    artifact: models/artifacts/iris/model.joblib\n"
        "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n",
        f"    image: {image}\n",
    ).replace("    name: mlserver\n    version: 1.7.1\n", "    name: docker\n")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    document, problems = load.load_text(text, "models/iris.yaml")
    assert document is not None and not problems
    assert schema.check(document) == []
    return document


def infer(url: str) -> list:
    request = urllib.request.Request(
        f"{url}/v2/models/iris/infer",
        data=json.dumps(SETOSA).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["outputs"][0]["data"]


def test_deploy_by_digest_smoke_and_tear_down(engine, scaffold: Scaffold) -> None:
    outcome = target.deploy(image_spec(engine.image), scaffold.root)
    assert outcome.ok, [d.message for d in outcome.diagnostics]
    assert [r.passed for r in outcome.smoke] == [True, True]
    assert containers(engine) == []


def test_keep_blue_green_and_stop(engine, scaffold: Scaffold) -> None:
    first = target.deploy(image_spec(engine.image), scaffold.root, keep=True)
    assert first.ok and first.kept
    url = first.endpoint.base_url
    assert infer(url) == [0]
    assert [r.name for r in target.running(scaffold.root)] == ["iris"]
    broken = target.deploy(
        image_spec(engine.image, **{"equals: [0]}": "equals: [1]}"}), scaffold.root, keep=True
    )
    assert not broken.ok and broken.previous == url
    assert infer(url) == [0]  # the old container still serves
    assert len(containers(engine)) == 1
    upgraded = target.deploy(image_spec(engine.image), scaffold.root, keep=True)
    assert upgraded.ok and upgraded.endpoint.base_url != url
    assert len(containers(engine)) == 1
    assert target.stop(scaffold.root, "iris") == []
    assert containers(engine) == []
    assert target.stop(scaffold.root, "iris")[0].rule == "MG506"


def test_image_not_found(engine, scaffold: Scaffold) -> None:
    missing = engine.image.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
    outcome = target.deploy(image_spec(missing), scaffold.root)
    assert not outcome.ok and outcome.diagnostics[0].rule == "MG501"
    assert "not found" in outcome.diagnostics[0].message
    assert containers(engine) == []


def test_tag_only_reference_is_refused(engine, scaffold: Scaffold) -> None:
    outcome = target.deploy(image_spec(engine.image.rsplit("@", 1)[0] + ":latest"), scaffold.root)
    assert outcome.diagnostics[0].rule == "MG503"


def test_crash_at_start(engine, scaffold: Scaffold) -> None:
    document = image_spec(engine.image)
    # the container's command (spec.engine.args) dies before the model is ever loaded
    document.data["spec"]["engine"]["args"] = [
        "/opt/venv/bin/python",
        "-c",
        "import sys; print('boom'); sys.exit(3)",
    ]
    outcome = target.deploy(document, scaffold.root)
    assert not outcome.ok and outcome.diagnostics[0].rule == "MG501"
    assert "the container exited (code 3)" in outcome.diagnostics[0].message
    assert "boom" in outcome.diagnostics[0].hint
    assert containers(engine) == []


def test_never_ready_within_the_timeout(engine, scaffold: Scaffold) -> None:
    document = image_spec(
        engine.image, **{"readinessTimeoutSeconds: 60": "readinessTimeoutSeconds: 0.5"}
    )
    outcome = target.deploy(document, scaffold.root)
    assert [d.rule for d in outcome.diagnostics] == ["MG502"]
    assert containers(engine) == []


def test_wrong_smoke_output(engine, scaffold: Scaffold) -> None:
    outcome = target.deploy(
        image_spec(engine.image, **{"equals: [0]}": "equals: [2]}"}), scaffold.root
    )
    assert {d.rule for d in outcome.diagnostics} == {"MG601", "MG502"}
    assert containers(engine) == []


def test_port_already_taken(engine, scaffold: Scaffold) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        document = image_spec(
            engine.image, **{"visibility: internal": f"visibility: internal\n    port: {port}"}
        )
        outcome = target.deploy(document, scaffold.root)
    assert outcome.diagnostics[0].rule == "MG505"
    assert containers(engine) == []


def test_docker_engine_not_answering(
    scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nobody.sock'}")
    outcome = target.deploy(image_spec("127.0.0.1:5000/x@sha256:" + "0" * 64), scaffold.root)
    assert [d.rule for d in outcome.diagnostics] == ["MG508"]
    assert "not answering" in outcome.diagnostics[0].message


def test_the_cli_deploys_keeps_lists_and_stops(engine, scaffold: Scaffold) -> None:
    from .conftest import run_cli

    shutil.copytree(PROJECT / "policies", scaffold.root / "policies")
    scaffold.write_spec("iris", dump_spec(image_spec(engine.image)))
    root = str(scaffold.root)
    result = run_cli(
        "--root",
        root,
        "deploy",
        "models/iris.yaml",
        "--target",
        "docker",
        "--keep",
        cwd=scaffold.root,
    )
    assert result.code == 0, result.out + result.err
    assert "kept running" in result.out
    status = run_cli("--root", root, "status")
    assert "iris" in status.out and "docker" in status.out
    smoked = run_cli("--root", root, "smoke", "iris")  # a kept container is smoke-tested too
    assert smoked.code == 0, smoked.out + smoked.err
    assert "smoke pass  setosa" in smoked.out
    assert run_cli("--root", root, "stop", "iris", "--target", "docker").code == 0
    assert containers(engine) == []
    assert ledger.history(scaffold.root, "iris")[-1]["target"] == "docker"


def dump_spec(document: load.Document) -> str:
    import yaml

    return yaml.safe_dump(document.data, sort_keys=False)


# --- engine images: the KServe model server and llama.cpp's server, built hermetically -------
# (tests/docker_env.py: each from its engine's lock, with no network during the build)


def engine_image_spec(spec: str, name: str, image: str, engine: str = "") -> load.Document:
    """An example spec of models/ with its model packaged as `image`, under `name` (the name
    the image serves the model as), on `engine` when given."""
    text = (PROJECT / "models" / f"{spec}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"    artifact: .*\n    sha256: .*\n", f"    image: {image}\n", text)
    text = text.replace(f"name: {spec}\n", f"name: {name}\n", 1)
    if engine:
        text = re.sub(r"    name: \w+\n    version: \S+\n", f"    name: {engine}\n", text)
    document, problems = load.load_text(text, f"models/{name}.yaml")
    assert document is not None and not problems
    assert schema.check(document) == []
    return document


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_engine_image_kserve_serves_v1_and_v2(engine, scaffold: Scaffold) -> None:
    image = docker_env.engine_image(engine, "kserve")
    outcome = target.deploy(engine_image_spec("iris-kserve", "iris", image), scaffold.root, True)
    try:
        assert outcome.ok, [f"{d.message}\n{d.hint}" for d in outcome.diagnostics]
        assert [r.name for r in outcome.smoke if r.passed] == ["setosa", "three-species"]
        url = outcome.endpoint.base_url
        assert url.startswith("http://127.0.0.1:")
        tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.3, 3.3, 6, 2.5]}
        v2 = post(f"{url}/v2/models/iris/infer", {"inputs": [tensor]})
        assert v2["outputs"][0]["data"] == [2]
    finally:
        target.stop(scaffold.root, "iris")
    assert containers(engine) == []


def test_engine_image_llamacpp_serves_the_openai_api(engine, scaffold: Scaffold) -> None:
    image = docker_env.engine_image(engine, "llamacpp")
    document = engine_image_spec("tiny-llama", "tiny-llama", image, engine="docker")
    outcome = target.deploy(document, scaffold.root, True)
    try:
        assert outcome.ok, [f"{d.message}\n{d.hint}" for d in outcome.diagnostics]
        assert [r.name for r in outcome.smoke if r.passed] == ["hello", "complete"]
        url = outcome.endpoint.base_url
        with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as answer:
            assert [m["id"] for m in json.loads(answer.read())["data"]] == ["tiny-llama"]
        body = {"model": "tiny-llama", "prompt": "Hello", "max_tokens": 4}
        assert post(f"{url}/v1/completions", body)["object"] == "text_completion"
    finally:
        target.stop(scaffold.root, "tiny-llama")
    assert containers(engine) == []

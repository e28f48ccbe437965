"""`modelgate new`: every engine and format it allows gives a spec that validation refuses at
each placeholder it holds and for nothing else, and that, once a person has written the real
values in, validates, renders to manifests that pass their schemas, and passes yamllint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from validator import render
from validator.check import placeholders, policy, workspace
from validator.render import crds, kube_schemas

from .conftest import PROJECT, crd_dirs, fill_in, run_cli

ENGINES = policy.load_policy(PROJECT)[0].parameters["engines"]
COMBINATIONS = [
    (engine, fmt) for engine, allowed in sorted(ENGINES.items()) for fmt in allowed["formats"]
]
ZERO = placeholders.ZERO_DIGEST


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("new") / "repo"
    for part in ("templates", "policies"):
        shutil.copytree(PROJECT / part, root / part)
    (root / "models").mkdir()
    for engine, fmt in COMBINATIONS:
        result = run_cli(
            "--root",
            str(root),
            "new",
            f"{engine}-{fmt}",
            "--engine",
            engine,
            "--format",
            fmt,
            "--owner",
            "ml@example.com",
        )
        assert result.code == 0, result.err
    return root


@pytest.fixture(scope="module")
def filled(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffolds and their cards, with every placeholder replaced by a real value."""
    root = tmp_path_factory.mktemp("filled") / "repo"
    shutil.copytree(repo, root)
    for path in [*(root / "models").glob("*.yaml"), *(root / "docs" / "models").glob("*.md")]:
        text = fill_in(path.read_text(encoding="utf-8"))
        if path.stem in UNSCANNED_REMOTE:  # production takes no pickle it did not scan
            text = text.replace(
                'environments: ["staging", "production"]', 'environments: ["staging"]'
            )
        path.write_text(text.replace("TODO: ", "Written: "), encoding="utf-8")
    return root


# scaffolds whose runtime may load a pickle from a hub modelgate cannot scan (MG-SEC-009 keeps
# them out of production until the model is kept where it is scanned)
UNSCANNED_REMOTE = {"kserve-huggingface", "mlserver-huggingface"}


def placeholder_lines(text: str) -> set[int]:
    """Lines whose value (not the comment after it) holds a marker or a digest of zeros."""
    return {
        number
        for number, line in enumerate(text.splitlines(), 1)
        if not line.lstrip().startswith("#")
        and re.search(r"TODO|0{40}", line.split("  #")[0].split(": ", 1)[-1])
    }


def test_every_scaffold_is_refused_at_each_placeholder(repo: Path) -> None:
    """An error (MG122) at every value a person has to write, and the model card's sections
    (MG-CMP-004); nothing else but MG-OPS-050's warning, for the scaffolds of models the pull
    request's runner cannot serve, each of which says how to name a stand-in, and MG265's note
    on the GPU scaffolds of hub models, whose headers `modelgate fit refresh` records."""
    result = run_cli("--root", str(repo), "validate", "--env", "production", "--format", "json")
    assert result.code == 1, result.out
    found = json.loads(result.out)["diagnostics"]
    allowed = {"MG122", "MG-CMP-004", "MG-OPS-050", "MG265"}
    assert {d["rule"] for d in found} <= allowed | {"MG-SEC-009"}, result.out
    refused = {d["path"] for d in found if d["rule"] == "MG-SEC-009"}
    assert {Path(path).stem for path in refused} <= UNSCANNED_REMOTE, result.out
    for path in sorted((repo / "models").glob("*.yaml")):
        shown = f"models/{path.name}"
        text = path.read_text()
        refused = {d["line"] for d in found if d["path"] == shown and d["rule"] == "MG122"}
        assert refused == placeholder_lines(text), shown
        assert len(refused) >= 4, shown  # team, description, the model's pin, the licence
        errors = [d for d in found if d["path"] == shown and d["severity"] == "error"]
        assert all(d["hint"].startswith("write ") for d in errors if d["rule"] == "MG122")
        [card] = [d for d in found if d["path"] == shown and d["rule"] == "MG-CMP-004"]
        assert card["message"].endswith("Intended use, Limitations, Training data, Evaluation")
    warned = {Path(d["path"]).stem for d in found if d["rule"] == "MG-OPS-050"}
    untested = {
        path.stem
        for path in (repo / "models").glob("*.yaml")
        if "(MG-OPS-050). Name a small stand-in" in path.read_text()
    }
    assert warned == untested and "vllm-huggingface" in warned and "mlserver-sklearn" not in warned


def test_the_placeholders_are_refused_in_every_environment(repo: Path) -> None:
    for environment in ("staging", "production"):
        done = run_cli("--root", str(repo), "validate", "--env", environment)
        assert done.code == 1 and "MG122 metadata.team is a placeholder (TODO)" in done.out


def test_every_placeholder_the_scaffold_writes_is_of_a_kind_the_rule_knows() -> None:
    written = [
        placeholders.ZERO_SHA256,
        placeholders.ZERO_DIGEST,
        placeholders.ZERO_REVISION,
        placeholders.LICENSE,
        placeholders.ORGANISATION,
        placeholders.TEAM,
        placeholders.OWNER,
        placeholders.RUNTIME,
        placeholders.MARKED_TEXT.format("what it does."),
        "registry.example.com/ml/x@" + placeholders.ZERO_DIGEST,
    ]
    assert all(placeholders.find(text) for text in written)
    by_hand = ["FIXME", "CHANGEME-please", "s3://bucket/TODO/model.bin", "0" * 32]
    assert all(placeholders.find(text) for text in by_hand)
    real = ["llm-todo", "Todo list model", "TODOS", "sha256:" + "0" * 63 + "1", "v1.0.0"]
    assert not any(placeholders.find(text) for text in real)


def test_a_filled_in_scaffold_validates(filled: Path) -> None:
    result = run_cli("--root", str(filled), "validate", "--env", "production", "--format", "json")
    assert result.code == 0, result.out
    report = json.loads(result.out)
    # MG265: a hub model's GPU fit waits for `modelgate fit refresh` to record its headers
    assert {d["rule"] for d in report["diagnostics"]} <= {"MG-OPS-050", "MG265"}, result.out
    for path in (filled / "models").glob("*.yaml"):
        assert placeholder_lines(path.read_text()) == set(), path


def test_every_filled_in_scaffold_renders_valid_manifests(filled: Path) -> None:
    schemas = crds.load_dirs(crd_dirs())
    documents = workspace.validate(workspace.discover(filled, []), filled).valid_documents()
    assert len(documents) == len(COMBINATIONS)
    rendering = render.render_all(documents, filled, schemas)
    assert rendering.diagnostics == []


def test_an_llm_scaffold_runs_on_gpu_nodes(filled: Path) -> None:
    """The LLM engines' scaffolds ask for a GPU, tolerate the GPU nodes' taint and size the
    model cache and /dev/shm."""
    documents = workspace.validate(workspace.discover(filled, []), filled).valid_documents()
    rendering = render.render_all(documents, filled, kube_schemas.Schemas())
    for engine in ("vllm", "tgi"):
        [deployment] = [
            f
            for f in rendering.files
            if f.path.as_posix() == f"rendered/staging/{engine}-huggingface/deployment.yaml"
        ]
        pod = yaml.safe_load(deployment.content)["spec"]["template"]["spec"]
        assert pod["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        volumes = {volume["name"]: volume["emptyDir"] for volume in pod["volumes"]}
        assert volumes["shm"] == {"medium": "Memory", "sizeLimit": "2Gi"}
        assert volumes["model-cache"] == {"sizeLimit": "50Gi"}
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_every_scaffold_passes_yamllint(repo: Path) -> None:
    yamllint = Path(sys.executable).with_name("yamllint")
    if not yamllint.exists():
        pytest.skip("yamllint is not installed (pip install 'modelgate[dev]')")
    done = subprocess.run(
        [str(yamllint), "-c", str(PROJECT / ".yamllint.yaml"), "--strict", str(repo / "models")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_scaffold_keeps_its_comments_and_schema_line(repo: Path) -> None:
    text = (repo / "models" / "mlserver-sklearn.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../validator/schemas/")
    assert "# TODO: `modelgate hash ARTIFACT` prints it" in text


def test_refusals(repo: Path) -> None:
    taken = run_cli(
        "--root",
        str(repo),
        "new",
        "mlserver-sklearn",
        "--engine",
        "mlserver",
        "--format",
        "sklearn",
    )
    assert taken.code == 2 and "already exists" in taken.err
    mismatch = run_cli("--root", str(repo), "new", "x", "--engine", "vllm", "--format", "onnx")
    assert mismatch.code == 2 and "vllm does not serve format onnx" in mismatch.err
    bad_name = run_cli(
        "--root", str(repo), "new", "Bad_Name", "--engine", "mlserver", "--format", "sklearn"
    )
    assert bad_name.code == 2 and "DNS-1123" in bad_name.err


def test_a_transformer_and_an_explainer_are_scaffolded_beside_a_kserve_predictor(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    for part in ("templates", "policies"):
        shutil.copytree(PROJECT / part, root / part)
    (root / "models").mkdir()
    pinned = "registry.example.com/ml/churn-explainer@sha256:" + "a" * 64
    result = run_cli(
        "--root", str(root), "new", "churn", "--engine", "kserve", "--format", "sklearn",
        "--transformer", "--explainer", pinned, "--owner", "ml@example.com",
    )  # fmt: skip
    assert result.code == 0, result.err
    spec = root / "models" / "churn.yaml"
    text = spec.read_text()
    refused = run_cli("--root", str(root), "validate", "--format", "json")
    found = json.loads(refused.out)["diagnostics"]
    [image] = [d for d in found if d["rule"] == "MG122" and "transformer" in d["message"]]
    assert (
        image["line"]
        == text.splitlines().index(
            "    image: " + json.dumps("registry.example.com/ml/churn-transformer@" + ZERO)
        )
        + 1
    )
    filled_in = fill_in(text).replace(
        "churn-transformer@sha256:" + "a" * 64, "churn-transformer@sha256:" + "c" * 64
    )
    spec.write_text(filled_in)
    card = root / "docs" / "models" / "churn.md"
    card.write_text(card.read_text().replace("TODO: ", "Written: "))
    assert run_cli("--root", str(root), "validate", "--strict").code == 0
    schemas = crds.load_dirs(crd_dirs())
    documents = workspace.validate(workspace.discover(root, []), root).valid_documents()
    rendering = render.render_all(documents, root, schemas)
    assert rendering.diagnostics == []
    [isvc] = [f for f in rendering.files if f.path.name == "inferenceservice.yaml"][:1]
    spec = yaml.safe_load(isvc.content)["spec"]
    [transformer] = spec["transformer"]["containers"]
    assert transformer["image"] == "registry.example.com/ml/churn-transformer@sha256:" + "c" * 64
    assert transformer["args"] == ["--model_name", "churn"]
    assert spec["explainer"]["containers"][0]["image"] == pinned
    assert text.count("# TODO: the real image, pinned by digest") == 1


def test_components_are_refused_where_they_cannot_run(repo: Path) -> None:
    elsewhere = run_cli(
        "--root", str(repo), "new", "chat", "--engine", "vllm", "--format", "huggingface",
        "--transformer",
    )  # fmt: skip
    assert elsewhere.code == 2 and "vllm runs no transformer" in elsewhere.err
    tagged = run_cli(
        "--root", str(repo), "new", "churn", "--engine", "kserve", "--format", "sklearn",
        "--explainer", "docker.io/someone/explainer:latest",
    )  # fmt: skip
    assert tagged.code == 2 and "not an image pinned by digest" in tagged.err

"""`modelgate new`: every engine and format it allows gives a spec that validates as written,
renders to manifests that pass their schemas, and passes yamllint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from validator import render
from validator.check import policy, workspace
from validator.render import crds, kube_schemas

from .conftest import PROJECT, run_cli

ENGINES = policy.load_policy(PROJECT)[0].parameters["engines"]
COMBINATIONS = [
    (engine, fmt) for engine, allowed in sorted(ENGINES.items()) for fmt in allowed["formats"]
]
CRDS = PROJECT.parent / "shared" / "crds"


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


def test_every_scaffold_validates_as_written(repo: Path) -> None:
    """Valid as written; the one warning, MG-OPS-050, is for the scaffolds of models the pull
    request's runner cannot serve, each of which says how to name a stand-in."""
    result = run_cli("--root", str(repo), "validate", "--format", "json")
    assert result.code == 0, result.out
    report = json.loads(result.out)
    assert {d["rule"] for d in report["diagnostics"]} <= {"MG-OPS-050"}, result.out
    warned = {Path(d["path"]).stem for d in report["diagnostics"]}
    untested = {
        path.stem
        for path in (repo / "models").glob("*.yaml")
        if "(MG-OPS-050). Name a small stand-in" in path.read_text()
    }
    assert warned == untested and "vllm-huggingface" in warned and "mlserver-sklearn" not in warned


def test_every_scaffold_renders_valid_manifests(repo: Path) -> None:
    schemas = crds.load_dirs([CRDS]) if CRDS.is_dir() else kube_schemas.Schemas()
    documents = workspace.validate(workspace.discover(repo, []), repo).valid_documents()
    rendering = render.render_all(documents, repo, schemas)
    assert rendering.diagnostics == []


def test_an_llm_scaffold_runs_on_gpu_nodes(repo: Path) -> None:
    """The LLM engines' scaffolds ask for a GPU, tolerate the GPU nodes' taint and size the
    model cache and /dev/shm."""
    documents = workspace.validate(workspace.discover(repo, []), repo).valid_documents()
    rendering = render.render_all(documents, repo, kube_schemas.Schemas())
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
    assert run_cli("--root", str(root), "validate", "--strict").code == 0
    schemas = crds.load_dirs([CRDS]) if CRDS.is_dir() else kube_schemas.Schemas()
    documents = workspace.validate(workspace.discover(root, []), root).valid_documents()
    rendering = render.render_all(documents, root, schemas)
    assert rendering.diagnostics == []
    [isvc] = [f for f in rendering.files if f.path.name == "inferenceservice.yaml"][:1]
    spec = yaml.safe_load(isvc.content)["spec"]
    [transformer] = spec["transformer"]["containers"]
    assert transformer["image"] == (
        "registry.example.com/ml/churn-transformer@sha256:" + "0" * 64  # a placeholder
    )
    assert transformer["args"] == ["--model_name", "churn"]
    assert spec["explainer"]["containers"][0]["image"] == pinned
    text = (root / "models" / "churn.yaml").read_text()
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

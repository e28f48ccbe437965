"""The deployment ledger, `history`, the per-model deploy lock and `--changed-since`."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from validator.check import changes, workspace
from validator.deploy import ledger
from validator.deploy.lock import deploy_lock

from .conftest import IRIS_ARTIFACT, PROJECT, Scaffold, git, run_cli
from .test_deploy_local import engine_processes


@pytest.fixture
def repo(committed: Scaffold) -> Scaffold:
    return committed


def test_every_attempt_is_recorded_and_history_reads_it(repo: Scaffold) -> None:
    spec = repo.root / "models" / "iris.yaml"
    assert run_cli("--root", str(repo.root), "deploy", str(spec)).code == 0
    spec.write_text(spec.read_text().replace("equals: [0]}", "equals: [2]}"))
    assert run_cli("--root", str(repo.root), "deploy", str(spec)).code == 1
    records = ledger.history(repo.root, "iris")
    assert [r["result"] for r in records] == ["deployed", "failed"]
    first, second = records
    assert first["commit"] == git(repo.root, "rev-parse", "HEAD").strip()
    assert first["endpoint"].endswith("/v2/models/iris/infer") and first["error"] == ""
    assert first["artifact"] == "8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be"
    assert second["endpoint"] == "" and "endpoint not available" in second["error"]
    assert first["spec_hash"] != second["spec_hash"]
    text = run_cli("--root", str(repo.root), "history", "iris")
    assert text.code == 0 and text.out.count("\n") == 3 and "failed" in text.out
    assert text.out.split()[:6] == ["TIME", "RESULT", "TARGET", "COMMIT", "USER", "ENDPOINT"]
    as_json = json.loads(
        run_cli("--root", str(repo.root), "history", "iris", "--format", "json").out
    )
    assert as_json == records
    assert engine_processes(repo.root, keepers=True) == []


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    ledger.record(
        tmp_path,
        name="a",
        spec_hash="h",
        artifact="x",
        target="local",
        environment="local",
        result="deployed",
        error="",
        endpoint="e",
        seconds=1.0,
    )
    with (tmp_path / ledger.LEDGER).open("a") as stream:
        stream.write('{"name": "a", "result": "depl')  # a crash in the middle of a write
    assert [r["result"] for r in ledger.history(tmp_path, "a")] == ["deployed"]


def test_a_second_deploy_of_the_same_model_fails_clearly(repo: Scaffold) -> None:
    with deploy_lock(repo.root, "iris", timeout=1):
        result = run_cli(
            "--root",
            str(repo.root),
            "deploy",
            "models/iris.yaml",
            "--lock-timeout",
            "0.5",
            cwd=repo.root,
        )
    assert result.code == 1
    assert "MG507 model not deployed: another deploy of iris is in progress (pid" in result.err
    assert engine_processes(repo.root, keepers=True) == []
    assert ledger.history(repo.root, "iris")[-1]["result"] == "failed"


def test_changed_since_picks_edited_specs_and_engine_templates(repo: Scaffold) -> None:
    documents = workspace.validate(workspace.discover(repo.root, []), repo.root).valid_documents()
    assert changes.affected(documents, changes.changed_files(repo.root, "HEAD")) == []
    nothing = run_cli("--root", str(repo.root), "deploy", "--changed-since", "HEAD")
    assert nothing.code == 0 and "nothing to deploy" in nothing.out

    template = repo.root / "templates" / "mlserver" / "settings.json.j2"
    template.write_text(template.read_text() + "\n")
    touched = changes.affected(documents, changes.changed_files(repo.root, "HEAD"))
    assert [d.path for d in touched] == ["models/iris.yaml"]
    git(repo.root, "checkout", "--", "templates")

    (repo.root / "models" / "iris.yaml").write_text(
        (repo.root / "models" / "iris.yaml").read_text().replace("maxReplicas: 3", "maxReplicas: 4")
    )
    deployed = run_cli("--root", str(repo.root), "deploy", "--changed-since", "HEAD")
    assert deployed.code == 0, deployed.out + deployed.err
    assert "deployed iris in" in deployed.out
    assert engine_processes(repo.root, keepers=True) == []


def test_changed_since_an_unknown_ref_is_a_usage_error(repo: Scaffold) -> None:
    result = run_cli("--root", str(repo.root), "deploy", "--changed-since", "no-such-ref")
    assert result.code == 2 and "--changed-since no-such-ref" in result.err


def test_changed_since_outside_a_git_work_tree_says_so_in_one_line(scaffold: Scaffold) -> None:
    result = run_cli("--root", str(scaffold.root), "deploy", "--changed-since", "HEAD")
    assert result.code == 2
    assert "is not in a git work tree" in result.err
    assert len(result.err.strip().splitlines()) == 1  # not git's whole usage text


GOOD = {
    "time": "2026-02-20T09:15:00+00:00",
    "name": "iris",
    "user": "alice",
    "commit": "a" * 40,
    "spec_hash": "0" * 32,
    "artifact": "1" * 64,
    "target": "local",
    "environment": "local",
    "result": "deployed",
    "error": "",
    "endpoint": "http://127.0.0.1:8080/v2/models/iris/infer",
    "seconds": 1.5,
}
DAMAGE = {
    "torn UTF-8": b'{"name": "iris", "result": "deployed", "user": "zo\xc3"}',  # half an ë
    "invalid JSON": b'{"name": "iris", "result": "depl',
    "a list for a string": json.dumps({**GOOD, "time": ["2026"], "result": ["x"]}).encode(),
    "a number for a string": json.dumps({**GOOD, "user": 7, "name": 3}).encode(),
    "a number for the time": json.dumps({**GOOD, "time": 1e400}).encode(),
    "not a record": b'["iris"]',
    "nested too deep": b"[" * 100_000,
}


def damaged_ledger(root: Path, damage: bytes) -> None:
    path = root / ledger.LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    good = json.dumps(GOOD).encode()
    path.write_bytes(b"\n".join([good, damage, good]) + b"\n")


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_history_skips_a_damaged_line_and_says_so(scaffold: Scaffold, damage: bytes) -> None:
    damaged_ledger(scaffold.root, damage)
    assert ledger.read(scaffold.root, "iris").skipped == 1
    assert ledger.history(scaffold.root, "iris") == [GOOD, GOOD]
    text = run_cli("--root", str(scaffold.root), "history", "iris")
    assert text.code == 0, text.err
    assert text.out.count("deployed") == 2
    assert "skipped 1 damaged line of .modelgate/ledger.jsonl" in text.err
    as_json = run_cli("--root", str(scaffold.root), "history", "iris", "--format", "json")
    assert as_json.code == 0 and json.loads(as_json.out) == [GOOD, GOOD]
    assert "skipped 1 damaged line" in as_json.err


@pytest.mark.parametrize("option", ["--output={out}", "-o{out}"])
def test_changed_since_never_passes_an_option_to_git(
    repo: Scaffold, tmp_path: Path, option: str
) -> None:
    out = tmp_path / "written-by-git"
    ref = option.format(out=out)
    result = run_cli("--root", str(repo.root), "deploy", f"--changed-since={ref}")
    assert result.code == 2 and "--changed-since" in result.err
    assert not out.exists()
    with pytest.raises(changes.GitError):
        changes.changed_files(repo.root, ref)
    assert not out.exists()


def test_changed_since_counts_a_spec_whose_artifact_changed(repo: Scaffold) -> None:
    """The artifact lies outside models/, templates/ and policies/, and only its bytes
    differ from the ref (the spec's sha256 names the bytes in the working tree)."""
    reviewed = (repo.root / IRIS_ARTIFACT).read_bytes()
    artifact = repo.root / "weights" / "iris.joblib"
    artifact.parent.mkdir()
    artifact.write_bytes(b"the weights before the change under review")
    repo.iris(**{f"artifact: {IRIS_ARTIFACT}": "artifact: weights/iris.joblib"})
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "older weights")
    artifact.write_bytes(reviewed)
    assert git(repo.root, "status", "--porcelain").split() == ["M", "weights/iris.joblib"]
    deployed = run_cli("--root", str(repo.root), "deploy", "--changed-since", "HEAD")
    assert deployed.code == 0, deployed.out + deployed.err
    assert "deployed iris in" in deployed.out
    assert engine_processes(repo.root, keepers=True) == []


def test_affected_maps_a_changed_artifact_to_its_specs(repo: Scaffold) -> None:
    repo.iris("iris-copy")
    repo.iris("remote", **{"artifact: models/artifacts/iris/model.joblib": "artifact: s3://b/m"})
    found = workspace.validate(workspace.discover(repo.root, []), repo.root).documents
    documents = sorted(found, key=lambda doc: doc.path)

    def touched(*changed: str) -> list[str]:
        paths = [PurePosixPath(path) for path in changed]
        return [doc.path for doc in changes.affected(documents, paths)]

    assert touched("models/artifacts/iris/model.joblib") == [
        "models/iris-copy.yaml",
        "models/iris.yaml",
    ]
    assert touched("models/artifacts/iris/other.joblib", "README.md") == []
    assert touched("models/remote.yaml") == ["models/remote.yaml"]


def test_affected_maps_a_changed_engine_lock_to_the_specs_run_from_it(repo: Scaffold) -> None:
    """A new lock for an engine environment is a new engine: the specs the local target runs
    from it are deployed again; the embedded engine's specs are not."""
    xgboost = (PROJECT / "models" / "iris-xgboost.yaml").read_text(encoding="utf-8")
    repo.write_spec("iris-xgboost", xgboost)
    kserve = (PROJECT / "models" / "iris-kserve.yaml").read_text(encoding="utf-8")
    repo.write_spec("iris-kserve", kserve)
    found = workspace.validate(workspace.discover(repo.root, []), repo.root).documents
    documents = sorted(found, key=lambda doc: doc.path)

    def touched(*changed: str) -> list[str]:
        paths = [PurePosixPath(path) for path in changed]
        return [doc.path for doc in changes.affected(documents, paths)]

    assert touched("locks/engine-mlserver-boosting.txt") == ["models/iris-xgboost.yaml"]
    assert touched("locks/engine-kserve.txt") == ["models/iris-kserve.yaml"]
    assert touched("locks/engine-triton.txt", "locks/modelgate.txt", "locks/update.py") == []

"""An artifact kept in the repository is the one its spec names: a change to its bytes
alone is a finding at the spec's digest (MG119), `sha256` for a file, `treeSha256` for a
folder (docs/artifacts.md defines the tree digest; its test vector and recipes are checked
here). Links out of the repository, artifacts included, are in the corpus of repository trees
(tests/corpus/trees/)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest
import yaml

from validator.check import artifacts, changes, load, workspace
from validator.render import view

from .conftest import IRIS_FOLDER, IRIS_SHA256, PROJECT, Scaffold, run_cli, tree_sha256

DOCS = (PROJECT / "docs" / "artifacts.md").read_text(encoding="utf-8")
VECTOR_LISTING = (
    "c7c6541111ee53947140bac154f1275c6b1b244c40c045b190662f23226509c9  .gitattributes\n"
    "179b641362c33ebc224537861d97d509047abffca2125ac0c68acfc6cd9e275a  MLmodel\n"
    "a8076d3d28d21e02012b20eaf7dbf75409a6277134439025f282e368e3305abf  run.sh\n"
    "cf945b5236e101dbe0471d5200f28b1ae64f21c1f35bf55fcf40cd0fe42cd8e7  weights.txt\n"
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  weights/part-0.bin\n"
)
VECTOR_DIGEST = "1e4748498dcdc20697fdfc2298cb8b56cf82167f269e9e1eaec27dc213bb4394"
FOLDER = IRIS_FOLDER
VALUES = yaml.safe_load((PROJECT / "templates" / "values.yaml").read_text(encoding="utf-8"))


def docs_block(language: str, containing: str) -> str:
    """The fenced block of docs/artifacts.md in `language` that contains `containing`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS, re.S)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"docs/artifacts.md has no single {language} block with {containing}"
    return found[0]


def docs_python_recipe() -> Callable[[str], str]:
    namespace: dict = {}
    exec(docs_block("python", "def tree_sha256"), namespace)
    return namespace["tree_sha256"]


def docs_shell_recipe(folder: Path) -> str:
    command = docs_block("sh", "sha256sum").strip().replace("FOLDER", f"'{folder}'")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


@pytest.fixture
def vector(tmp_path: Path) -> Path:
    """The test vector's tree, made by the documented commands."""
    subprocess.run(["sh", "-e", "-c", docs_block("sh", "mkdir -p model")], cwd=tmp_path, check=True)
    return tmp_path / "model"


def test_the_documented_test_vector(vector: Path) -> None:
    assert (vector / "empty").is_dir() and os.access(vector / "run.sh", os.X_OK)
    assert artifacts.tree_listing(vector).decode() == VECTOR_LISTING
    assert artifacts.tree_sha256(vector) == VECTOR_DIGEST
    assert VECTOR_LISTING in DOCS and f"treeSha256: {VECTOR_DIGEST}" in DOCS


def test_modelgate_hash_prints_what_the_documented_recipes_compute(vector: Path) -> None:
    folder = run_cli("hash", str(vector), cwd=vector.parent)
    assert (folder.code, folder.out, folder.err) == (0, f"treeSha256: {VECTOR_DIGEST}\n", "")
    assert docs_python_recipe()(str(vector)) == VECTOR_DIGEST
    if (
        shutil.which("find")
        and b"GNU" in subprocess.run(["find", "--version"], capture_output=True).stdout
    ):
        assert docs_shell_recipe(vector) == VECTOR_DIGEST
    assert tree_sha256(vector) == VECTOR_DIGEST
    file = run_cli("hash", "weights.txt", cwd=vector)
    expected = hashlib.sha256((vector / "weights.txt").read_bytes()).hexdigest()
    assert (file.code, file.out) == (0, f"sha256: {expected}\n")


def _change_a_byte(folder: Path) -> None:
    (folder / "weights/part-0.bin").write_bytes(b"abd")


def _add_a_file(folder: Path) -> None:
    (folder / "weights/part-1.bin").write_bytes(b"")


def _add_a_hidden_file(folder: Path) -> None:
    (folder / "empty/.keep").write_bytes(b"")


def _rename_a_file(folder: Path) -> None:
    (folder / "MLmodel").rename(folder / "MLmodel.yaml")


def _move_a_file(folder: Path) -> None:
    (folder / "weights.txt").rename(folder / "empty/weights.txt")


@pytest.mark.parametrize(
    "change", [_change_a_byte, _add_a_file, _add_a_hidden_file, _rename_a_file, _move_a_file]
)
def test_every_change_of_content_or_name_changes_the_digest(
    vector: Path, change: Callable[[Path], None]
) -> None:
    change(vector)
    assert artifacts.tree_sha256(vector) != VECTOR_DIGEST
    assert artifacts.tree_sha256(vector) == docs_python_recipe()(str(vector))


def test_modes_and_empty_folders_do_not_count(vector: Path) -> None:
    (vector / "run.sh").chmod(0o644)
    (vector / "MLmodel").chmod(0o755)
    (vector / "another" / "empty").mkdir(parents=True)
    shutil.rmtree(vector / "empty")
    assert artifacts.tree_sha256(vector) == VECTOR_DIGEST


def _link_inside(folder: Path) -> str:
    (folder / "weights/alias.bin").symlink_to("part-0.bin")
    return "model/weights/alias.bin is a symbolic link"


def _link_out(folder: Path) -> str:
    outside = folder.parent / "secret.txt"
    outside.write_text("RUNNER-ONLY-CONTENT\n")
    (folder / "notes").symlink_to(outside)
    return "model/notes is a symbolic link"


def _folder_link(folder: Path) -> str:
    (folder / "more").symlink_to(folder / "weights", target_is_directory=True)
    return "model/more is a symbolic link"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "weights/pipe")
    return "model/weights/pipe is not a regular file or folder"


def _git_folder(folder: Path) -> str:
    (folder / ".git").mkdir()
    (folder / ".git/HEAD").write_text("ref: refs/heads/main\n")
    return "model/.git is a git repository's own data"


def _git_file(folder: Path) -> str:
    (folder / "weights/.git").write_text("gitdir: ../../.git/modules/weights\n")
    return "model/weights/.git is a git repository's own data"


def _name_not_utf8(folder: Path) -> str:
    (folder / os.fsdecode(b"caf\xe9.bin")).write_bytes(b"")
    return "model/caf\\udce9.bin has a name that is not UTF-8"


def _name_with_newline(folder: Path) -> str:
    (folder / "two\nlines").write_bytes(b"")
    return "model/two\\nlines has a backslash or a control character in its name"


def _name_with_backslash(folder: Path) -> str:
    (folder / "back\\slash").write_bytes(b"")
    return "model/back\\slash has a backslash or a control character in its name"


def _nothing_in_it(folder: Path) -> str:
    shutil.rmtree(folder)
    folder.mkdir()
    return "model holds no files"


@pytest.mark.parametrize(
    "plant",
    [
        _link_inside,
        _link_out,
        _folder_link,
        _fifo,
        _git_folder,
        _git_file,
        _name_not_utf8,
        _name_with_newline,
        _name_with_backslash,
        _nothing_in_it,
    ],
)
def test_modelgate_hash_refuses_what_has_no_tree_digest(
    vector: Path, plant: Callable[[Path], str]
) -> None:
    reason = plant(vector)
    result = run_cli("hash", "model", cwd=vector.parent)
    assert result.code == 1 and result.out == ""
    assert f"modelgate: MG120 {reason}" in result.err, result.err
    assert "hint:" in result.err and "RUNNER-ONLY" not in result.err


def test_modelgate_hash_refuses_a_path_that_leads_out_of_the_repository(
    scaffold: Scaffold, vector: Path
) -> None:
    shutil.rmtree(scaffold.root / FOLDER)
    (scaffold.root / FOLDER).symlink_to(vector, target_is_directory=True)
    result = run_cli("--root", str(scaffold.root), "hash", str(scaffold.root / FOLDER))
    assert result.code == 1 and result.out == ""
    assert "MG118" in result.err and "leads out of the repository" in result.err
    special = run_cli("hash", "/dev/null")
    assert special.code == 1 and "MG120 /dev/null is not a regular file or folder" in special.err
    missing = run_cli("hash", "nowhere")
    assert missing.code == 1 and "nowhere: no such file or folder" in missing.err
    assert run_cli("hash", "").code == 2


def line_of(spec: Path, field: str) -> int:
    lines = spec.read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.strip().startswith(f"{field}:"))


def validate(scaffold: Scaffold) -> tuple[int, str]:
    result = run_cli("--root", str(scaffold.root), "validate")
    return result.code, result.out + result.err


def test_a_folder_named_by_its_tree_digest_is_valid(scaffold: Scaffold) -> None:
    scaffold.iris_folder()
    code, shown = validate(scaffold)
    assert code == 0, shown


def test_validate_refuses_a_folder_whose_digest_differs(scaffold: Scaffold) -> None:
    spec = scaffold.iris_folder()
    (scaffold.root / FOLDER / "README.md").write_text("added after review\n")
    code, shown = validate(scaffold)
    assert code == 1
    assert f"models/iris.yaml:{line_of(spec, 'treeSha256')}:17: MG119 artifact {FOLDER} " in shown
    assert "has tree sha256" in shown and f"modelgate hash {FOLDER}" in shown


def test_validate_refuses_a_link_inside_a_folder_at_the_artifact(scaffold: Scaffold) -> None:
    spec = scaffold.iris_folder()
    (scaffold.root / FOLDER / "latest.joblib").symlink_to("model.joblib")
    code, shown = validate(scaffold)
    assert code == 1
    assert (
        f"models/iris.yaml:{line_of(spec, 'artifact')}:15: MG120 {FOLDER}/latest.joblib is a "
        "symbolic link; a tree digest never follows links"
    ) in shown


def test_validate_refuses_a_digest_field_that_does_not_fit_the_artifact(
    scaffold: Scaffold,
) -> None:
    spec = scaffold.iris_folder()
    text = spec.read_text()
    spec.write_text(re.sub(r"treeSha256: \w+", f"sha256: {IRIS_SHA256}", text))
    code, shown = validate(scaffold)
    assert code == 1 and f"models/iris.yaml:{line_of(spec, 'sha256')}:13: MG121" in shown
    assert f"artifact {FOLDER} is a folder; sha256 names the bytes of one file" in shown

    spec.write_text(re.sub(r"\n *treeSha256: \w+", "", text))
    code, shown = validate(scaffold)
    assert code == 1 and f"models/iris.yaml:{line_of(spec, 'artifact')}:15: MG121" in shown
    assert "the spec does not name its treeSha256" in shown

    file_spec = scaffold.iris(**{f"sha256: {IRIS_SHA256}": f"treeSha256: {IRIS_SHA256}"})
    code, shown = validate(scaffold)
    assert code == 1 and f"models/iris.yaml:{line_of(file_spec, 'treeSha256')}:17: MG121" in shown
    assert "is a file; treeSha256 names a folder's digest" in shown

    both = text.replace("    format: sklearn", f"    sha256: {IRIS_SHA256}\n    format: sklearn")
    spec.write_text(both)
    code, shown = validate(scaffold)
    assert code == 1 and "MG201 spec.model: set at most one of 'sha256'" in shown


def test_an_artifact_changed_alone_is_a_finding_at_its_sha256(scaffold: Scaffold) -> None:
    spec = scaffold.iris()
    artifact = scaffold.root / "models" / "artifacts" / "iris" / "model.joblib"
    with artifact.open("ab") as stream:
        stream.write(b"\x00appended")
    code, shown = validate(scaffold)
    assert code == 1
    assert f"models/iris.yaml:{line_of(spec, 'sha256')}:" in shown and "MG119" in shown


def loaded(spec: Path, root: Path) -> load.Document:
    result = workspace.validate([spec], root)
    assert not result.failed(), result.diagnostics
    return result.valid_documents()[0]


def test_a_folder_renders_as_a_folder(scaffold: Scaffold) -> None:
    spec = scaffold.iris_folder()
    result = run_cli("--root", str(scaffold.root), "render", str(spec))
    assert result.code == 0, result.out + result.err
    settings = (scaffold.root / "rendered/local/iris/model-settings.json").read_text()
    assert f'"uri": "../../../{FOLDER}/"' in settings
    seldon = yaml.safe_load((scaffold.root / "rendered/staging/iris/model.yaml").read_text())
    assert seldon["spec"]["storageUri"] == "s3://model-artifacts/modelgate/iris/1.0.0/iris/"

    document = loaded(spec, scaffold.root)
    document.data["spec"]["engine"]["name"] = "triton"
    triton = view.cluster(document, "staging", VALUES)
    assert triton["storage_uri"] == "s3://model-artifacts/modelgate/iris/1.0.0/iris/"
    fetch, check = triton["init_containers"]
    assert (fetch["args"][1], triton["model_file"]) == ("/models/iris/1/iris", "iris")
    assert check["args"][0] == "treeSha256" and check["args"][2] == "/models/iris/1/iris"


def test_a_file_renders_as_before(scaffold: Scaffold) -> None:
    document = loaded(scaffold.iris(), scaffold.root)
    document.data["spec"]["engine"]["name"] = "triton"
    file = view.cluster(document, "staging", VALUES)
    assert file["storage_uri"] == "s3://model-artifacts/modelgate/iris/1.0.0/model.joblib"
    fetch, check = file["init_containers"]
    assert (fetch["args"][1], file["model_file"]) == ("/models/iris/1", "model.joblib")
    assert check["args"][2] == "/models/iris/1/model.joblib"


def test_a_change_inside_a_folder_artifact_touches_its_spec(scaffold: Scaffold) -> None:
    document = loaded(scaffold.iris_folder(), scaffold.root)

    def touched(path: str) -> bool:
        return changes.affected([document], [PurePosixPath(path)]) == [document]

    assert touched(f"{FOLDER}/model.joblib") and touched(f"{FOLDER}/sub/weights.bin")
    assert not touched("models/artifacts/iris-v2/model.joblib")
    assert not touched("models/artifacts/model.joblib")

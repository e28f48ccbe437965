"""An artifact kept in the repository is the one its spec names: a change to its bytes
alone is a finding at the spec's sha256 (MG119). Links out of the repository, artifacts
included, are in the corpus of repository trees (tests/corpus/trees/)."""

from __future__ import annotations

from .conftest import Scaffold, run_cli


def test_an_artifact_changed_alone_is_a_finding_at_its_sha256(scaffold: Scaffold) -> None:
    spec = scaffold.iris()
    artifact = scaffold.root / "models" / "artifacts" / "iris" / "model.joblib"
    with artifact.open("ab") as stream:
        stream.write(b"\x00appended")
    result = run_cli("--root", str(scaffold.root), "validate")
    assert result.code == 1
    line = next(
        number
        for number, text in enumerate(spec.read_text().splitlines(), 1)
        if text.strip().startswith("sha256:")
    )
    assert f"models/iris.yaml:{line}:" in result.out and "MG119" in result.out

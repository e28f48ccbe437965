"""Repository hygiene that CI enforces: ruff is clean, the example artifact is reproducible."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PROJECT


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (pip install 'modelgate[dev]')")
    done = subprocess.run([str(ruff), "check", "."], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_iris_training_script_reproduces_the_committed_artifact(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    target = tmp_path / "model.joblib"
    subprocess.run(
        [sys.executable, str(PROJECT / "models/artifacts/iris/train.py"), str(target)],
        check=True,
        capture_output=True,
    )
    committed = (PROJECT / "models/artifacts/iris/model.joblib").read_bytes()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(committed).hexdigest()

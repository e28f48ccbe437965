"""The kubernetes target. Status parsing is tested on status documents shaped by the real
CRDs and Kubernetes schemas; deploying runs where a cluster answers (kind in CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from validator.deploy.kubernetes import not_ready
from validator.render import kube_schemas

from .conftest import PROJECT, run_cli

DATA = Path(__file__).parent / "data" / "kubernetes"
CRDS = PROJECT.parent / "shared" / "crds"


def status(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.json")))
def test_status_documents_fit_the_real_schemas(name: str) -> None:
    if not CRDS.is_dir():
        pytest.skip(f"the CRDs are not beside the checkout ({CRDS})")
    document = status(name)
    problem, found = kube_schemas.check(document, kube_schemas.Schemas.from_dirs([CRDS]))
    assert found and problem is None


def test_ready_workloads() -> None:
    assert not_ready(status("isvc-ready")) is None
    assert not_ready(status("deployment-available")) is None
    assert not_ready(status("seldon-model-ready")) is None


def test_reasons_are_reported_from_the_conditions() -> None:
    assert not_ready(status("isvc-load-failed")) == (
        "InferenceService churn-kserve: Ready=False (RevisionFailed: Revision "
        '"churn-kserve-predictor-00002" failed with message: .); model: ModelLoadFailed: '
        "Failed to load model: pickle data was truncated"
    )
    assert not_ready(status("deployment-stuck")) == (
        "Deployment chat-assistant: Progressing=False (ProgressDeadlineExceeded: ReplicaSet "
        '"chat-assistant-5c6d7e8f9a" has timed out progressing.)'
    )
    assert "no matching servers are available" in not_ready(status("seldon-model-no-server"))
    assert not_ready({"kind": "Deployment", "metadata": {"name": "x"}}) == (
        "Deployment x: no status reported yet"
    )


def cluster_answers() -> str | None:
    if not os.environ.get("KUBECONFIG"):
        return "KUBECONFIG is not set: no Kubernetes cluster here (CI makes one with kind)"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    done = subprocess.run(["kubectl", "version"], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"the cluster does not answer: {done.stderr[:200]}"


@pytest.mark.skipif(cluster_answers() is not None, reason=str(cluster_answers()))
def test_deploy_to_a_real_cluster_reports_kserve_specs() -> None:
    result = run_cli(
        "deploy", "models/churn-kserve.yaml", "--target", "kubernetes", "--env", "staging"
    )
    # an image from registry.example.com cannot be pulled in CI's kind cluster: the deploy must
    # fail with the cluster's own reason, and leave the ledger a record of it
    assert result.code == 1 and "endpoint not available" in result.err

"""Stores anyone may read (templates/values.yaml publicArtifactStores): a pod fetching from one
needs no credentials, and is rendered to read it anonymously; a store not listed still needs
them (MG-SEC-152), even one whose name only begins like a listed one; a malformed entry is
refused at its line (MG215). The base is churn-kserve with its model as an artifact, fetched by
the predictor's own storage initializer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import Scaffold, located, run_cli
from .test_pod_fields import BASES

IMAGE_LINE = (
    "    image: registry.example.com/ml/churn-sklearn@sha256:"
    "3b1f0c9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c\n"
)
NO_STORES = "publicArtifactStores: []"
STAGING_AND_PRODUCTION = "  environments: [staging, production]\n"
S3_SECRET = "artifactCredentials:\n  s3: {secret: model-artifacts-s3}\n"


def serve_from(
    scaffold: Scaffold, uri: str, stores: str, values: dict[str, str] | None = None
) -> Path:
    """churn-kserve fetching `uri`, with publicArtifactStores set to `stores` (YAML)."""
    replacements = {NO_STORES: f"publicArtifactStores: {stores}", **(values or {})}
    path = scaffold.root / "templates" / "values.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    spec = BASES["churn-kserve"].replace(
        IMAGE_LINE, f"    artifact: {uri}\n    sha256: {'a' * 64}\n", 1
    )
    assert STAGING_AND_PRODUCTION in spec
    # staging only: production refuses a pickle it cannot scan (MG-SEC-009) before any render
    spec = spec.replace(STAGING_AND_PRODUCTION, "  environments: [staging]\n", 1)
    scaffold.with_policies()
    return scaffold.write_spec("churn-kserve", spec)


def fetcher(scaffold: Scaffold, path: Path) -> dict[str, Any]:
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 0, result.out + result.err
    isvc = yaml.safe_load(
        (scaffold.root / "rendered/staging/churn-kserve/inferenceservice.yaml").read_text(
            encoding="utf-8"
        )
    )
    predictor = isvc["spec"]["predictor"]
    (fetch,) = [c for c in predictor["initContainers"] if c["name"] == "storage-initializer"]
    return {"container": fetch, "volumes": [v["name"] for v in predictor["volumes"]]}


def test_a_public_gs_bucket_is_read_with_no_credentials(scaffold: Scaffold) -> None:
    path = serve_from(scaffold, "gs://public-models/churn/model.joblib", "[gs://public-models/]")
    found = fetcher(scaffold, path)
    assert found["container"]["args"][0] == "gs://public-models/churn/model.joblib"
    assert "env" not in found["container"]  # KServe's client falls back to anonymous reads
    assert "artifact-store-credentials" not in found["volumes"]


def test_a_public_s3_bucket_is_read_with_unsigned_requests(scaffold: Scaffold) -> None:
    path = serve_from(
        scaffold,
        "s3://open-data/churn/model.joblib",
        "[s3://open-data/churn/]",
        {S3_SECRET: "artifactCredentials: {}\n"},
    )
    found = fetcher(scaffold, path)
    assert found["container"]["env"] == [{"name": "awsAnonymousCredential", "value": "true"}]
    assert "artifact-store-credentials" not in found["volumes"]


def test_a_store_that_only_begins_like_a_public_one_still_needs_credentials(
    scaffold: Scaffold,
) -> None:
    path = serve_from(
        scaffold, "gs://public-models-private/churn/model.joblib", "[gs://public-models/]"
    )
    result = run_cli("--root", str(scaffold.root), "render", str(path))
    assert result.code == 1, result.out + result.err
    assert "MG-SEC-152" in result.err
    assert "downloads gs://public-models-private/churn/model.joblib with no credentials" in (
        result.err
    )
    assert not (scaffold.root / "rendered/staging/churn-kserve").exists()


def test_a_malformed_public_store_is_refused_at_its_line(scaffold: Scaffold) -> None:
    path = serve_from(scaffold, "gs://public-models/churn/model.joblib", "[gs://public-models]")
    result = run_cli("--root", str(scaffold.root), "validate", str(path))
    assert result.code == 1, result.out + result.err
    values = (scaffold.root / "templates" / "values.yaml").read_text(encoding="utf-8")
    line, column = located(values, "publicArtifactStores: [gs://", "gs://")
    assert f"templates/values.yaml:{line}:{column}: MG215" in result.out
    assert "publicArtifactStores[0] is not an s3:// or gs:// bucket or folder ending in '/'" in (
        result.out
    )
    assert "Traceback" not in result.out

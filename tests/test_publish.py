"""`modelgate publish`: a repository artifact reaches an oci:// artifact store as its model
image (KServe's modelcar: the model under /models/, on a base image with a shell), pushed to
a real registry (Debian's docker-registry, tests/registry_env.py) at exactly the digest
`render` wrote into the InferenceService's storageUri; a second publish changes nothing, and a
published version is never replaced."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from validator.render import modelcar

from . import registry_env
from .conftest import (
    IRIS_ARTIFACT,
    IRIS_FOLDER,
    PROJECT,
    CliResult,
    Scaffold,
    located,
    run_cli,
)

IRIS_KSERVE = (PROJECT / "models" / "iris-kserve.yaml").read_text(encoding="utf-8")
STORE_LINE = "artifactStore: s3://model-artifacts/modelgate\n"
MIRROR_LINE = "imageMirror: registry.example.com/mirror\n"
BASE_REPOSITORY = "library/busybox"
RENDERED = Path("rendered/staging/iris-kserve/inferenceservice.yaml")
PASSWORD = "hunter2-not-to-be-printed"


def modelgate(scaffold: Scaffold, *args: str) -> CliResult:
    return run_cli("--root", str(scaffold.root), *args, cwd=scaffold.root)


def base_layer() -> bytes:
    """A base image's one layer: what a shell image holds (its bytes do not matter here)."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"#!/bin/busybox\n"
        info = tarfile.TarInfo("bin/sh")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return stream.getvalue()


def push_base(registry: registry_env.Registry, repository: str) -> dict:
    """A single-layer base image in `repository`; the modelImageBase block that names it."""
    layer = base_layer()
    digest = registry.push_blob(repository, layer)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": registry_env.OCI_MANIFEST,
        "config": {
            "mediaType": registry_env.OCI_CONFIG,
            "digest": registry.push_blob(repository, config),
            "size": len(config),
        },
        "layers": [{"mediaType": registry_env.OCI_LAYER, "digest": digest, "size": len(layer)}],
    }
    registry.push_manifest(repository, "1.37", manifest, registry_env.OCI_MANIFEST)
    return {
        "repository": BASE_REPOSITORY,
        "platform": {"os": "linux", "architecture": "amd64"},
        "layers": [
            {
                "mediaType": registry_env.OCI_LAYER,
                "digest": digest,
                "size": len(layer),
                "diffId": digest,
            }
        ],
    }


def oci_repository(
    scaffold: Scaffold, store: registry_env.Registry, mirror: registry_env.Registry | None = None
) -> dict:
    """The scaffold with iris-kserve, its artifact store oci://STORE/models and its base
    image in MIRROR/mirror/library/busybox (the store's registry unless named)."""
    mirror = mirror or store
    base = push_base(mirror, f"mirror/{BASE_REPOSITORY}")
    scaffold.write_spec("iris-kserve", IRIS_KSERVE)
    values = scaffold.root / "templates" / "values.yaml"
    text = values.read_text(encoding="utf-8")
    assert STORE_LINE in text and MIRROR_LINE in text
    text = text.replace(STORE_LINE, f"artifactStore: oci://{store.host}/models\n")
    text = text.replace(MIRROR_LINE, f"imageMirror: {mirror.host}/mirror\n")
    text += "modelImageBase: " + json.dumps(base) + "\n"
    values.write_text(text, encoding="utf-8")
    return base


def rendered_reference(scaffold: Scaffold) -> str:
    manifest = yaml.safe_load((scaffold.root / RENDERED).read_text(encoding="utf-8"))
    return manifest["spec"]["predictor"]["model"]["storageUri"]


def fetch(registry: registry_env.Registry, path: str, accept: str = "") -> tuple[dict, bytes]:
    headers = {"Accept": accept} if accept else {}
    status, answer, body = registry.request("GET", path, headers=headers)
    assert status == 200, (path, status, body)
    return answer, body


def manifest_of(registry: registry_env.Registry, reference: str) -> tuple[str, dict]:
    """(digest, manifest) the registry serves for models/iris-kserve:REFERENCE."""
    answer, body = fetch(
        registry, f"/v2/models/iris-kserve/manifests/{reference}", modelcar.MANIFEST_TYPE
    )
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert answer["Docker-Content-Digest"] == digest
    return digest, json.loads(body)


def test_publish_pushes_the_model_image_render_named(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    base = oci_repository(scaffold, registry)
    rendered = modelgate(scaffold, "render")
    assert rendered.code == 0, rendered.err
    reference = rendered_reference(scaffold)
    prefix = f"oci://{registry.host}/models/iris-kserve@sha256:"
    assert reference.startswith(prefix), reference
    inference_service = (scaffold.root / RENDERED).read_text(encoding="utf-8")
    assert "initContainers" not in inference_service  # the kubelet pulls the image by digest

    published = modelgate(scaffold, "publish")

    assert published.code == 0, published.err
    assert f"iris-kserve: pushed {reference} (tag 1.0.0" in published.out
    digest, manifest = manifest_of(registry, "1.0.0")
    assert reference == f"oci://{registry.host}/models/iris-kserve@{digest}"
    assert manifest_of(registry, digest)[0] == digest
    # the base's layer first (KServe runs its shell), then the model's
    layers = manifest["layers"]
    assert [layer["digest"] for layer in layers[:-1]] == [base["layers"][0]["digest"]]
    assert layers[-1]["mediaType"] == modelcar.LAYER_TYPE
    _, layer = fetch(registry, f"/v2/models/iris-kserve/blobs/{layers[-1]['digest']}")
    assert f"sha256:{hashlib.sha256(layer).hexdigest()}" == layers[-1]["digest"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert sorted(members) == ["models", "models/model.joblib"]
        model = members["models/model.joblib"]
        assert (model.mode, model.uid, model.gid, model.mtime) == (0o644, 0, 0, 0)
        extracted = tar.extractfile(model)
        assert extracted is not None
        assert extracted.read() == (scaffold.root / IRIS_ARTIFACT).read_bytes()
    _, config = fetch(registry, f"/v2/models/iris-kserve/blobs/{manifest['config']['digest']}")
    assert json.loads(config)["rootfs"]["diff_ids"] == [
        base["layers"][0]["diffId"],
        layers[-1]["digest"],
    ]

    again = modelgate(scaffold, "publish")

    assert again.code == 0, again.err
    assert f"iris-kserve: already published {reference}" in again.out
    assert manifest_of(registry, "1.0.0")[0] == digest


def test_a_changed_artifact_never_replaces_a_published_version(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    oci_repository(scaffold, registry)
    first = modelgate(scaffold, "publish", "models/iris-kserve.yaml")
    assert first.code == 0, first.err
    held, _ = manifest_of(registry, "1.0.0")
    # the same name and version, another artifact: a folder with a file more
    (scaffold.root / IRIS_FOLDER / "README.md").write_text("iris\n", encoding="utf-8")
    spec = scaffold.iris_folder("iris-kserve")
    spec.write_text(
        IRIS_KSERVE.replace(
            "    artifact: models/artifacts/iris/model.joblib\n"
            "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n",
            "".join(
                line + "\n"
                for line in spec.read_text(encoding="utf-8").splitlines()
                if line.startswith(("    artifact:", "    treeSha256:"))
            ),
        ),
        encoding="utf-8",
    )

    refused = modelgate(scaffold, "publish")

    assert refused.code == 1
    text = spec.read_text(encoding="utf-8")
    line, col = located(text, 'version: "1.0.0"', '"1.0.0"')
    assert (
        f"models/iris-kserve.yaml:{line}:{col}: MG251 "
        f"{registry.host}/models/iris-kserve:1.0.0 is {held}" in refused.err
    )
    assert "give it a new spec.model.version" in refused.err and "Traceback" not in refused.err
    assert manifest_of(registry, "1.0.0")[0] == held

    spec.write_text(text.replace('version: "1.0.0"', 'version: "1.0.1+folder"'), encoding="utf-8")
    assert modelgate(scaffold, "render").code == 0
    published = modelgate(scaffold, "publish")
    assert published.code == 0, published.err
    assert "(tag 1.0.1_folder" in published.out
    digest, manifest = manifest_of(registry, "1.0.1_folder")
    assert rendered_reference(scaffold).endswith(f"@{digest}")
    _, layer = fetch(registry, f"/v2/models/iris-kserve/blobs/{manifest['layers'][-1]['digest']}")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        assert tar.getnames() == ["models", "models/README.md", "models/model.joblib"]


def test_the_digest_depends_on_the_files_alone(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    oci_repository(scaffold, registry)
    assert modelgate(scaffold, "render").code == 0
    artifact = scaffold.root / IRIS_ARTIFACT
    os.utime(artifact, (1, 1))
    artifact.chmod(0o600)

    checked = modelgate(scaffold, "render", "--check")

    assert checked.code == 0, checked.out + checked.err


def test_publish_answers_the_token_challenge_and_prints_no_password(
    scaffold: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        guarded = registry_env.start(tmp_path / "registry", token_auth=True)
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        oci_repository(scaffold, guarded)
        assert guarded.tokens is not None
        guarded.tokens.requests.clear()
        monkeypatch.setenv("MODELGATE_REGISTRY_USERNAME", "ci")
        monkeypatch.setenv("MODELGATE_REGISTRY_PASSWORD", PASSWORD)

        published = modelgate(scaffold, "publish")

        assert published.code == 0, published.err
        assert "iris-kserve: pushed" in published.out
        scopes = [scope for request in guarded.tokens.requests for scope in request["scope"]]
        assert "repository:models/iris-kserve:pull,push" in scopes, scopes
        # the base's layer mounted from the mirror's repository on the same registry
        assert f"repository:mirror/{BASE_REPOSITORY}:pull" in scopes, scopes
        assert manifest_of(guarded, "1.0.0")[0] in rendered_reference_after_render(scaffold)

        guarded.tokens.grant = False  # the token service now grants nothing
        scaffold.root.joinpath("models/iris-kserve.yaml").write_text(
            IRIS_KSERVE.replace('version: "1.0.0"', 'version: "2.0.0"'), encoding="utf-8"
        )
        refused = modelgate(scaffold, "publish")
        assert refused.code == 1
        assert "MG252" in refused.err and "MODELGATE_REGISTRY_PASSWORD" in refused.err
        assert "Traceback" not in refused.err
        assert PASSWORD not in published.out + published.err + refused.out + refused.err
    finally:
        guarded.stop()


def rendered_reference_after_render(scaffold: Scaffold) -> str:
    assert modelgate(scaffold, "render").code == 0
    return rendered_reference(scaffold)


def test_base_layers_are_copied_from_a_mirror_on_another_registry(
    scaffold: Scaffold, registry: registry_env.Registry, tmp_path: Path
) -> None:
    try:
        store = registry_env.start(tmp_path / "store")
    except registry_env.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        base = oci_repository(scaffold, store, mirror=registry)
        published = modelgate(scaffold, "publish")
        assert published.code == 0, published.err
        _, manifest = manifest_of(store, "1.0.0")
        layer = base["layers"][0]["digest"]
        assert manifest["layers"][0]["digest"] == layer
        _, copied = fetch(store, f"/v2/models/iris-kserve/blobs/{layer}")
        assert copied == base_layer()
    finally:
        store.stop()


def test_a_store_modelgate_cannot_push_to_is_said_with_what_to_upload(
    scaffold: Scaffold,
) -> None:
    scaffold.write_spec("iris-kserve", IRIS_KSERVE)

    said = modelgate(scaffold, "publish")

    assert said.code == 0, said.err
    line, col = located(IRIS_KSERVE, "artifact: models/", "models/")
    assert (
        f"models/iris-kserve.yaml:{line}:{col}: MG253 warning: {IRIS_ARTIFACT} is not uploaded "
        "to s3://model-artifacts/modelgate/iris-kserve/1.0.0/model.joblib" in said.err
    )


def test_engines_that_cannot_pull_a_model_image_are_refused_at_render(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    oci_repository(scaffold, registry)
    iris = scaffold.iris()

    rendered = modelgate(scaffold, "render", str(iris))

    assert rendered.code == 1
    line, col = located(iris.read_text(encoding="utf-8"), "artifact: models/", "models/")
    assert (
        f"models/iris.yaml:{line}:{col}: MG250 the artifact store is an OCI registry, and "
        "engine mlserver cannot serve a model image" in rendered.err
    )

    published = modelgate(scaffold, "publish", str(iris))

    assert published.code == 1
    assert f"models/iris.yaml:{line}:{col}: MG250 " in published.err
    assert "pushed" not in published.out


def test_an_oci_store_without_a_base_image_is_refused(scaffold: Scaffold) -> None:
    scaffold.write_spec("iris-kserve", IRIS_KSERVE)
    values = scaffold.root / "templates" / "values.yaml"
    text = values.read_text(encoding="utf-8").replace(
        STORE_LINE, "artifactStore: oci://registry.example.com/models\n"
    )
    values.write_text(text, encoding="utf-8")

    rendered = modelgate(scaffold, "render")

    assert rendered.code == 1
    line, col = located(text, "\nartifactStore: oci://", "oci://")
    assert (
        f"templates/values.yaml:{line}:{col}: MG254 an oci:// artifactStore needs modelImageBase"
        in rendered.err
    )
    assert "Traceback" not in rendered.err


def test_changed_since_publishes_only_what_changed(
    scaffold: Scaffold, registry: registry_env.Registry
) -> None:
    oci_repository(scaffold, registry)
    scaffold.write_spec("iris-other", IRIS_KSERVE.replace("name: iris-kserve", "name: iris-other"))
    git = ("git", "-C", str(scaffold.root), "-c", "user.name=t", "-c", "user.email=t@example.com")
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)

    unchanged = modelgate(scaffold, "publish", "--changed-since", "main")

    assert unchanged.code == 0, unchanged.err
    assert "nothing to publish" in unchanged.out
    spec = scaffold.root / "models" / "iris-kserve.yaml"
    spec.write_text(IRIS_KSERVE.replace('version: "1.0.0"', 'version: "3.0.0"'), encoding="utf-8")

    changed = modelgate(scaffold, "publish", "--changed-since", "main")

    assert changed.code == 0, changed.err
    assert "iris-kserve: " in changed.out and "(tag 3.0.0" in changed.out
    assert "iris-other" not in changed.out
    assert "1 artifact(s) in the store" in changed.out
    elsewhere = modelgate(scaffold, "publish", "--env", "nowhere")
    assert "nothing to publish" in elsewhere.out


def test_the_model_layer_of_the_test_vector_is_byte_for_byte_fixed(tmp_path: Path) -> None:
    """docs/artifacts.md's test vector as a model layer: its digest is pinned here, so a
    change of layout (or of a Python's tar defaults) cannot change published digests unseen."""
    folder = tmp_path / "model"
    (folder / "empty").mkdir(parents=True)
    (folder / "weights").mkdir()
    (folder / ".gitattributes").write_bytes(b"*.bin binary\n")
    (folder / "MLmodel").write_bytes(b"flavor: sklearn\n")
    (folder / "run.sh").write_bytes(b"#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    (folder / "weights.txt").write_bytes(b"w\n")
    (folder / "weights" / "part-0.bin").write_bytes(b"abc")
    long_name = "d" * 120 + "/é.bin"  # past ustar's 100 bytes, and not ASCII: a pax header
    base = modelcar.Base("registry", "base", "linux", "amd64", ())

    image = modelcar.build(folder, "model", base, tmp_path)

    assert image.layer_digest == VECTOR_LAYER
    assert modelcar.image_digest(folder, "model", base) == image.digest
    with tarfile.open(image.layer_path) as tar:
        assert tar.getnames() == [
            "models",
            "models/.gitattributes",
            "models/MLmodel",
            "models/run.sh",
            "models/weights.txt",
            "models/weights",
            "models/weights/part-0.bin",
        ]
        assert {member.mode for member in tar.getmembers() if member.isfile()} == {0o644}
    (folder / long_name).parent.mkdir()
    (folder / long_name).write_bytes(b"x")
    longer = modelcar.build(folder, "model", base, tmp_path)
    with tarfile.open(longer.layer_path) as tar:
        extracted = tar.extractfile(f"models/{long_name}")
        assert extracted is not None and extracted.read() == b"x"


VECTOR_LAYER = "sha256:dd880540b12ce7d11580ad3fe8bc023c9cf1bb426415426cd6a4eea55416a822"

"""Publishing: a repository artifact reaches the artifact store clusters fetch it from.

For an oci:// store (templates/values.yaml `artifactStore`), the artifact becomes its model
image (render/modelcar.py), the same bytes whose digest `render` wrote into the storageUri;
it is pushed under the repository STORE/NAME with the tag spec.model.version. A tag already
naming that digest is left as it is; a tag naming another digest is never moved (MG251): a
published version is what a cluster may be running, so a changed model takes a new version.

Other stores (s3://, gs://) are uploaded by the tools of their cloud: publish says what to
upload where (MG253, a warning) and uploads nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check import artifacts
from ..check.load import Document
from ..diagnostics import Diagnostic, Severity
from ..paths import LinkOut
from ..render import modelcar, view
from ..render.registry import RegistryError, Repository, credentials_from

TAG_REPLACED = "MG251"
NOT_PUBLISHED = "MG252"
CANNOT_PUBLISH = "MG253"
PUSHED, TAGGED, PRESENT = "pushed", "tagged", "already published"


@dataclass(frozen=True)
class Published:
    name: str
    reference: str  # oci://HOST/PATH/NAME@sha256:..., as rendered
    tag: str
    state: str  # PUSHED, TAGGED (the image was there, not its tag) or PRESENT
    seconds: float


@dataclass
class Publishing:
    published: list[Published]
    diagnostics: list[Diagnostic]


def publishable(documents: list[Document]) -> list[Document]:
    """The specs whose model is an artifact kept in the repository."""
    return [d for d in documents if _repository_artifact(d.data["spec"]["model"])]


def run(
    documents: list[Document],
    root: Path,
    values: dict[str, Any],
    environ: Mapping[str, str],
    timeout: float = 30.0,
    each: Callable[[Published], None] = lambda _: None,
) -> Publishing:
    """Publish the repository artifact of each of `documents` to the artifact store."""
    result = Publishing([], [])
    store = modelcar.oci_store(values)
    if store is None:
        result.diagnostics = [_cannot_publish(d, values) for d in publishable(documents)]
        return result
    credentials = credentials_from(environ)
    with tempfile.TemporaryDirectory(prefix="modelgate-publish-") as work:
        for document in publishable(documents):
            unserved = modelcar.unserved(document)
            if unserved is not None:  # render refused it: nothing would pull the image
                result.diagnostics.append(unserved)
                continue
            name = document.data["metadata"]["name"]
            repository = Repository(store.host, store.repository(name), credentials, timeout)
            try:
                done = _publish(document, root, values, store, repository, Path(work))
            except RegistryError as exc:
                result.diagnostics.append(_finding(document, NOT_PUBLISHED, str(exc), exc.hint))
                if exc.unreachable:  # the next would wait as long for the same answer
                    break
                continue
            except (artifacts.Unhashable, LinkOut) as exc:
                result.diagnostics.append(
                    _finding(document, artifacts.ARTIFACT_UNHASHABLE, str(exc))
                )
                continue
            if isinstance(done, Diagnostic):
                result.diagnostics.append(done)
            else:
                result.published.append(done)
                each(done)
    return result


def _publish(
    document: Document,
    root: Path,
    values: dict[str, Any],
    store: modelcar.Store,
    repository: Repository,
    work: Path,
) -> Published | Diagnostic:
    started = time.monotonic()
    model = document.data["spec"]["model"]
    name = document.data["metadata"]["name"]
    path = modelcar.artifact_path(root, model["artifact"])
    base = modelcar.base_of(values)
    # the digest first, as render computes it: a version already published is not built
    digest = modelcar.image_digest(path, model["artifact"], base)
    tag = modelcar.tag_of(model["version"])
    held = repository.manifest_digest(tag)
    if held is not None and held != digest:
        return _finding(
            document,
            TAG_REPLACED,
            f"{repository.where}:{tag} is {held}, another model image than this artifact's "
            f"{digest}; it is not replaced",
            "the artifact changed under a published version: give it a new "
            "spec.model.version, or restore the artifact that was published",
            field="version",
        )
    if held == digest:
        state = PRESENT
    else:
        image = modelcar.build(path, model["artifact"], base, work)
        try:
            if image.digest != digest:  # the bytes moved between the two reads
                raise artifacts.Unhashable(model["artifact"], "changed while it was read", "")
            state = _push(repository, image, base, tag)
        finally:
            image.layer_path.unlink(missing_ok=True)
    return Published(name, store.reference(name, digest), tag, state, time.monotonic() - started)


def _push(repository: Repository, image: modelcar.ModelImage, base: modelcar.Base, tag: str) -> str:
    """Push the model image under `tag`; what was done (PUSHED or TAGGED)."""
    if repository.manifest_digest(image.digest) is not None:
        state = TAGGED
    else:
        _push_base(repository, base)
        _push_blobs(repository, image)
        state = PUSHED
    repository.put_manifest(tag, image.manifest, modelcar.MANIFEST_TYPE)
    return state


def _push_base(repository: Repository, base: modelcar.Base) -> None:
    """The base image's layers, each unless the repository holds it: mounted from the
    mirror's repository when both are on one registry, else copied from it (checked against
    its digest on the way)."""
    source: Repository | None = None
    for layer in base.layers:
        if repository.has_blob(layer.digest):
            continue
        same_registry = base.host == repository.host
        if same_registry and repository.mount_blob(layer.digest, base.repository):
            continue
        if source is None:  # the store's credentials only go to the store's own registry
            credentials = repository.credentials if same_registry else None
            source = Repository(
                base.host, base.repository, credentials, repository.timeout, access="pull"
            )
        data = source.fetch_blob(layer.digest, layer.size)
        repository.push_blob(layer.digest, len(data), data)


def _push_blobs(repository: Repository, image: modelcar.ModelImage) -> None:
    """The layer and the config, each unless the repository holds it already."""
    if not repository.has_blob(image.layer_digest):
        with image.layer_path.open("rb") as stream:
            repository.push_blob(image.layer_digest, image.layer_size, stream)
    if not repository.has_blob(image.config_digest):
        repository.push_blob(image.config_digest, len(image.config), image.config)


def _cannot_publish(document: Document, values: dict[str, Any]) -> Diagnostic:
    model = document.data["spec"]["model"]
    uri = view.storage_uri(document, values)
    return _finding(
        document,
        CANNOT_PUBLISH,
        f"{model['artifact']} is not uploaded to {uri}: modelgate publishes to oci:// "
        "artifact stores only",
        "copy it there before the rollout with the store's own tool (`aws s3 cp`, "
        "`gcloud storage cp`; `--recursive` for a folder), or make artifactStore an oci:// "
        "registry",
        severity=Severity.WARNING,
    )


def _finding(
    document: Document,
    rule: str,
    message: str,
    hint: str = "",
    *,
    field: str = "artifact",
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    line, col = document.locate(["spec", "model", field])
    return Diagnostic(document.path, line, col, rule, severity, message, hint)


def _repository_artifact(model: dict[str, Any]) -> bool:
    artifact = model.get("artifact", "")
    return bool(artifact) and "://" not in artifact

"""A repository artifact as a model image: the OCI image KServe serves from an oci://
storageUri (a "modelcar"), whose one layer holds the model files under /models/.

Built from the files alone, so that `render` (offline) and `publish` (which pushes the bytes)
name the same digest: an uncompressed tar in a fixed order, with fixed times, owners and
modes, and a config and manifest serialized one way. Same files, same digest, on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..check import artifacts
from ..paths import LinkOut, leads_out

OCI_PREFIX = "oci://"
UNSERVED = "MG250"  # the spec's engine cannot pull a model image
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: gzip adds nothing
MODELS_DIR = "models"  # KServe links /mnt/models to the image's /models
FILE_MODE, DIR_MODE = 0o644, 0o755
CHUNK = 1024 * 1024
# OCI tags: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; a version's `+` (build metadata) becomes `_`,
# as Helm does for charts kept in OCI registries
TAG_REPLACEMENTS = str.maketrans({"+": "_"})


@dataclass(frozen=True)
class Store:
    """An oci:// artifact store: a registry host and a repository path under it."""

    host: str
    path: str

    def repository(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name

    def reference(self, name: str, digest: str) -> str:
        return f"{OCI_PREFIX}{self.host}/{self.repository(name)}@{digest}"


def oci_store(values: dict[str, Any]) -> Store | None:
    """The artifact store of templates/values.yaml when it is an OCI registry repository."""
    store = str(values.get("artifactStore") or "")
    if not store.startswith(OCI_PREFIX):
        return None
    host, _, path = store.removeprefix(OCI_PREFIX).strip("/").partition("/")
    return Store(host, path.strip("/"))


def tag_of(version: str) -> str:
    """The tag a model image carries beside its digest: spec.model.version."""
    return version.translate(TAG_REPLACEMENTS)


@dataclass(frozen=True)
class ModelImage:
    """The three blobs of a model image; the layer stays in a file (models can be large)."""

    layer_path: Path
    layer_digest: str
    layer_size: int
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return _sha256(self.config)


def image_digest(artifact: Path, shown: str) -> str:
    """The digest of the model image of `artifact`, without keeping the layer."""
    sink = _HashingSink()
    _write_layer(artifact, shown, sink)
    config = _config(f"sha256:{sink.digest.hexdigest()}")
    return _sha256(_manifest(config, f"sha256:{sink.digest.hexdigest()}", sink.size))


def build(artifact: Path, shown: str, work: Path) -> ModelImage:
    """The model image of `artifact`, its layer written under `work`."""
    descriptor, name = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=work)
    layer = Path(name)
    with os.fdopen(descriptor, "wb") as stream:
        sink = _HashingSink(stream)
        _write_layer(artifact, shown, sink)
    layer_digest = f"sha256:{sink.digest.hexdigest()}"
    config = _config(layer_digest)
    return ModelImage(
        layer, layer_digest, sink.size, config, _manifest(config, layer_digest, sink.size)
    )


def _write_layer(artifact: Path, shown: str, sink: _HashingSink) -> None:
    """/models/FILE for a file artifact; a folder's contents under /models/ (where KServe's
    storage initializer puts them for other stores). Files in the order of the tree digest's
    listing, each folder just before its first file; every entry owned by root, with a fixed
    mode and time 0."""
    written: set[str] = set()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.addfile(_entry(MODELS_DIR, tarfile.DIRTYPE, 0, DIR_MODE))
        for relative, path in _members(artifact, shown):
            for folder in _new_folders(relative, written):
                tar.addfile(_entry(f"{MODELS_DIR}/{folder}", tarfile.DIRTYPE, 0, DIR_MODE))
            with _open(path, f"{shown}/{relative}" if artifact.is_dir() else shown) as stream:
                size = os.fstat(stream.fileno()).st_size
                tar.addfile(
                    _entry(f"{MODELS_DIR}/{relative}", tarfile.REGTYPE, size, FILE_MODE), stream
                )


def _members(artifact: Path, shown: str) -> list[tuple[str, Path]]:
    """(path under /models, file) for every file of the artifact, sorted by the path's bytes
    as the tree digest lists them; a folder holding what a tree digest refuses is refused
    here too (artifacts.Unhashable)."""
    if not artifact.is_dir():
        return [(Path(shown).name, artifact)]
    listing = artifacts.tree_listing(artifact, shown)  # refuses links, .git, special files
    names = [line.split(b"  ", 1)[1].decode() for line in listing.splitlines()]
    return [(name, artifact / name) for name in names]


def _new_folders(relative: str, written: set[str]) -> Iterator[str]:
    """The folders on `relative`'s way that the archive does not hold yet."""
    parts = relative.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        if folder not in written:
            written.add(folder)
            yield folder


def _entry(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, size, mode
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _open(path: Path, shown: str) -> IO[bytes]:
    """A regular file, opened without following a link or waiting on a FIFO."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise artifacts.Unhashable(shown, f"cannot be read ({exc.strerror})", "") from exc
    stream = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        stream.close()
        raise artifacts.Unhashable(shown, "is not a regular file", "")
    return stream


def _config(layer_digest: str) -> bytes:
    """The image config: no command (KServe runs its own in the image) and one layer."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.title": "model"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    return _canonical(config)


def _manifest(config: bytes, layer_digest: str, layer_size: int) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size}],
    }
    return _canonical(manifest)


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class _HashingSink:
    """A write-only stream that hashes and counts what passes, and hands it on if asked."""

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._stream = stream

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self._stream is not None:
            self._stream.write(data)
        return len(data)


def artifact_path(root: Path, artifact: str) -> Path:
    """The repository artifact's path, links inside the repository followed; paths.LinkOut
    when it leads out of it."""
    path = root / artifact
    if leads_out(path, root):
        raise LinkOut(path, root)
    return path.resolve()

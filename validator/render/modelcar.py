"""A repository artifact as a model image: the OCI image KServe serves from an oci://
storageUri (a "modelcar"), whose last layer holds the model files under /models/.

KServe runs `sh -c "ln -sf /proc/$$/root/models /mnt/models && sleep infinity"` in the model
image, so the model's layer goes on a small base image with a shell (templates/values.yaml
`modelImageBase`: its layers by digest, under imageMirror).

Built from the files and the base's digests alone, so that `render` (offline) and `publish`
(which pushes the bytes) name the same digest: an uncompressed tar in a fixed order, with
fixed times, owners and modes, and a config and manifest serialized one way. Same files,
same digest, on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..check import artifacts
from ..check.load import Document
from ..diagnostics import Diagnostic
from ..engines import engine_for
from ..paths import LinkOut, leads_out
from . import images

OCI_PREFIX = "oci://"
UNSERVED = "MG250"  # the spec's engine cannot pull a model image
INVALID_STORE = "MG254"  # an oci:// artifactStore or modelImageBase that cannot be used
STORE_KEY, BASE_KEY = "artifactStore", "modelImageBase"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: gzip adds nothing
# a base layer's media type as an OCI manifest names it (Docker's are the same bytes)
BASE_LAYER_TYPES = {
    LAYER_TYPE: LAYER_TYPE,
    f"{LAYER_TYPE}+gzip": f"{LAYER_TYPE}+gzip",
    f"{LAYER_TYPE}+zstd": f"{LAYER_TYPE}+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": f"{LAYER_TYPE}+gzip",
}
# the base's shell is found on this PATH: an image config without Env leaves it to the runtime
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MODELS_DIR = "models"  # KServe links /mnt/models to the image's /models
FILE_MODE, DIR_MODE = 0o644, 0o755
BLOCK = 512
REGULAR, DIRECTORY, PAX = b"0", b"5", b"x"
PAX_NAME = "././@PaxHeader"
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
    """The artifact store of templates/values.yaml when it is an OCI registry repository
    (check_values refused one that is not HOST[:PORT]/PATH)."""
    store = values.get(STORE_KEY)
    if not isinstance(store, str) or not store.startswith(OCI_PREFIX):
        return None
    found = images.MIRROR.fullmatch(store.removeprefix(OCI_PREFIX))
    return Store(found["host"], found["path"] or "") if found else None


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    diff_id: str  # the digest of its uncompressed tar, as the image config lists it

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Base:
    """values.modelImageBase: the image the model's layer goes on, under imageMirror."""

    host: str
    repository: str  # on the mirror's registry
    os: str
    architecture: str
    layers: tuple[Layer, ...]


def base_of(values: dict[str, Any]) -> Base:
    """The base image values.yaml names (check_values refused one that cannot be used)."""
    base = values[BASE_KEY]
    mirror = images.Mirror.of(values)
    assert mirror is not None  # check_values: an oci:// store needs imageMirror
    repository = f"{mirror.path}/{base['repository']}" if mirror.path else base["repository"]
    layers = tuple(
        Layer(BASE_LAYER_TYPES[layer["mediaType"]], layer["digest"], layer["size"], layer["diffId"])
        for layer in base["layers"]
    )
    platform = base["platform"]
    return Base(mirror.host, repository, platform["os"], platform["architecture"], layers)


def check_values(document: Document) -> list[Diagnostic]:
    """MG254 for an oci:// artifactStore that cannot be used: not HOST[:PORT]/PATH, or
    without a modelImageBase (and the imageMirror it is under) that names its layers."""
    data = document.data
    store = data.get(STORE_KEY)
    if not isinstance(store, str) or not store.startswith(OCI_PREFIX):
        return []
    if images.MIRROR.fullmatch(store.removeprefix(OCI_PREFIX)) is None:
        return [
            document.finding(
                [STORE_KEY],
                INVALID_STORE,
                f"artifactStore {store[:200]} is not oci://HOST[:PORT]/PATH",
                "write e.g. `artifactStore: oci://registry.example.com/models` (lowercase "
                "repository path)",
            )
        ]
    if BASE_KEY not in data:
        return [
            document.finding(
                [STORE_KEY],
                INVALID_STORE,
                "an oci:// artifactStore needs modelImageBase: KServe runs a shell in the "
                "model image, from the base image its layer goes on",
                "add modelImageBase (a small image with sh, e.g. busybox) as docs/artifacts.md "
                "shows",
            )
        ]
    return _check_base(document, data[BASE_KEY])


def _check_base(document: Document, base: Any) -> list[Diagnostic]:
    def wrong(where: list[str | int], what: str) -> list[Diagnostic]:
        return [
            document.finding(
                [BASE_KEY, *where],
                INVALID_STORE,
                f"modelImageBase: {what}",
                "see docs/artifacts.md: repository (under imageMirror), platform {os, "
                "architecture} and layers [{mediaType, digest, size, diffId}] of one image",
            )
        ]

    if images.Mirror.of(document.data) is None:
        return wrong([], "needs imageMirror, the registry its repository is on")
    if not isinstance(base, dict):
        return wrong([], "is not a mapping")
    repository = base.get("repository")
    if not isinstance(repository, str) or images.MIRROR.fullmatch(f"h/{repository}") is None:
        return wrong(["repository"] if "repository" in base else [], "repository is not a name")
    platform = base.get("platform")
    if not isinstance(platform, dict) or not all(
        isinstance(platform.get(key), str) and platform[key] for key in ("os", "architecture")
    ):
        return wrong(
            ["platform"] if "platform" in base else [], "platform needs os and architecture"
        )
    layers = base.get("layers")
    if not isinstance(layers, list) or not layers:
        return wrong(["layers"] if "layers" in base else [], "layers is not a list of layers")
    for index, layer in enumerate(layers):
        if not (
            isinstance(layer, dict)
            and layer.get("mediaType") in BASE_LAYER_TYPES
            and all(_is_digest(layer.get(key)) for key in ("digest", "diffId"))
            and isinstance(layer.get("size"), int)
            and not isinstance(layer.get("size"), bool)
            and layer["size"] > 0
        ):
            return wrong(
                ["layers", index],
                "a layer needs mediaType (an OCI or Docker layer type), digest, size and "
                "diffId (sha256:...)",
            )
    return []


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and images.DIGEST.fullmatch(value) is not None


def unserved(document: Document) -> Diagnostic | None:
    """MG250 for a spec whose pods cannot pull a model image: only a KServe InferenceService
    does (modelcar, Engine.model_images); every other engine's storage initializer reads
    object stores alone."""
    spec = document.data["spec"]
    if engine_for(spec).model_images:
        return None
    return document.finding(
        ["spec", "model", "artifact"],
        UNSERVED,
        f"the artifact store is an OCI registry, and engine {spec['engine']['name']} cannot "
        "serve a model image: only a KServe InferenceService pulls one (oci:// storageUri)",
        "serve the model with engine kserve, or name it by its store URI in "
        "spec.model.artifact (s3://, gs://) and upload it there",
    )


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


def image_digest(artifact: Path, shown: str, base: Base) -> str:
    """The digest of the model image of `artifact` on `base`, without keeping the layer."""
    sink = _HashingSink()
    _write_layer(artifact, shown, sink)
    layer = f"sha256:{sink.digest.hexdigest()}"
    config = _config(base, layer)
    return _sha256(_manifest(base, config, layer, sink.size))


def build(artifact: Path, shown: str, base: Base, work: Path) -> ModelImage:
    """The model image of `artifact` on `base`, its layer written under `work`."""
    descriptor, name = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=work)
    path = Path(name)
    with os.fdopen(descriptor, "wb") as stream:
        sink = _HashingSink(stream)
        _write_layer(artifact, shown, sink)
    layer = f"sha256:{sink.digest.hexdigest()}"
    config = _config(base, layer)
    return ModelImage(path, layer, sink.size, config, _manifest(base, config, layer, sink.size))


def _write_layer(artifact: Path, shown: str, sink: _HashingSink) -> None:
    """/models/FILE for a file artifact; a folder's contents under /models/ (where KServe's
    storage initializer puts them for other stores). Files in the order of the tree digest's
    listing, each folder just before its first file; every entry owned by root, with a fixed
    mode and time 0."""
    written: set[str] = set()
    sink.write(_header(f"{MODELS_DIR}/", DIRECTORY, 0))
    for relative, path in _members(artifact, shown):
        for folder in _new_folders(relative, written):
            sink.write(_header(f"{MODELS_DIR}/{folder}/", DIRECTORY, 0))
        where = f"{shown}/{relative}" if artifact.is_dir() else shown
        with _open(path, where) as stream:
            size = os.fstat(stream.fileno()).st_size
            sink.write(_header(f"{MODELS_DIR}/{relative}", REGULAR, size))
            _copy(stream, sink, size, where)
    sink.write(bytes(2 * BLOCK))  # the end of the archive


def _header(name: str, kind: bytes, size: int) -> bytes:
    """A ustar header written here rather than by tarfile, whose fields have changed between
    Python versions: a digest must not depend on the Python that computed it. A name too
    long or not ASCII, or a size past ustar's 8 GiB, goes in a pax header before it."""
    encoded = name.encode()
    extended = {}
    if len(encoded) > 100 or not encoded.isascii():
        extended["path"] = encoded
    if size >= 8**11:
        extended["size"] = str(size).encode()
    prefix = _pax(extended) if extended else b""
    fields = [
        encoded[:100].ljust(100, b"\0"),
        b"%07o\0" % (DIR_MODE if kind == DIRECTORY else FILE_MODE),
        b"0000000\0",  # uid
        b"0000000\0",  # gid
        b"%011o\0" % (size if size < 8**11 else 0),
        b"00000000000\0",  # mtime
        b" " * 8,  # the checksum, counted as spaces
        kind,
        bytes(100),  # link name
        b"ustar\x0000",
        bytes(32 + 32),  # owner and group names
        b"0000000\0" * 2,  # device numbers
        bytes(155 + 12),  # prefix, padding
    ]
    header = bytearray(b"".join(fields))
    header[148:156] = b"%06o\0 " % sum(header)
    return prefix + bytes(header)


def _pax(records: dict[str, bytes]) -> bytes:
    """A pax extended header: `LENGTH key=value\\n` records, LENGTH counting itself."""
    body = b""
    for key, value in records.items():
        record = b" %s=%s\n" % (key.encode(), value)
        length = len(record) + 1
        while len(str(length).encode()) + len(record) != length:
            length += 1
        body += str(length).encode() + record
    return _header_for_pax(len(body)) + body + bytes(-len(body) % BLOCK)


def _header_for_pax(size: int) -> bytes:
    return _header(PAX_NAME, PAX, size)


def _copy(stream: IO[bytes], sink: _HashingSink, size: int, where: str) -> None:
    """`size` bytes of `stream` into the archive, padded to its block size; a file that
    changes size while it is read is refused rather than archived torn."""
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise artifacts.Unhashable(where, "changed while it was read", "run again")
        sink.write(chunk)
        left -= len(chunk)
    if stream.read(1):
        raise artifacts.Unhashable(where, "changed while it was read", "run again")
    sink.write(bytes(-size % BLOCK))


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


def _config(base: Base, layer_digest: str) -> bytes:
    """The image config: the base's platform and layers, then the model's; no command
    (KServe names its own) and no time of creation (it would change the digest)."""
    config = {
        "architecture": base.architecture,
        "os": base.os,
        "config": {"Env": [PATH_ENV]},
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(layer.diff_id for layer in base.layers), layer_digest],
        },
    }
    return _canonical(config)


def _manifest(base: Base, config: bytes, layer_digest: str, layer_size: int) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": _sha256(config), "size": len(config)},
        "layers": [
            *(layer.descriptor() for layer in base.layers),
            {"mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size},
        ],
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

"""Pickle-based artifacts from https:// hosts, fetched at validate time so that the bytes
modelgate scans are the bytes the pod checks.

A digest alone says only that the pod will load the bytes the author chose; it says nothing
of what they hold. A pickle from a web host therefore reaches an environment that takes only
scanned pickles (pickleArtifacts: scanned, MG-SEC-009) when validate fetched it, found the
sha256 the spec pins, and scanned those very bytes, and the pod checks that sha256 again
before its server starts. The copy is kept in the user's cache under its digest and hashed
again before each use: a cache entry never decides a verdict by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache
from ..engines import loads_pickles
from . import pickles

SCHEME = "https://"
MAX_BYTES = 4 * 1024**3  # a model file larger than 4 GiB is not fetched to be scanned
TIMEOUT_SECONDS = 60
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    """Where the artifact's bytes are kept, or why they could not be fetched and checked."""

    path: Path | None
    problem: str = ""


_DONE: dict[tuple[str, str], Fetched] = {}  # this process's fetches, by (url, sha256)


def located(spec: Mapping[str, Any]) -> Path | None:
    """Where a pickle-based artifact from an https:// host (by its format, its runtime or its
    file name) was fetched to, checked against its sha256; None for any other artifact, or
    one that could not be fetched."""
    model = spec["model"]
    if not fetchable(model) or not (
        model["format"] in pickles.PICKLE_FORMATS
        or loads_pickles(spec)
        or pickles.is_pickle_based(model["artifact"])
    ):
        return None
    return fetch(model).path


def fetchable(model: Mapping[str, Any]) -> bool:
    """An artifact file on an https:// host with a sha256 to check it by."""
    return str(model.get("artifact", "")).startswith(SCHEME) and "sha256" in model


def fetch(model: Mapping[str, Any]) -> Fetched:
    """The artifact's bytes, fetched once per digest and checked against spec.model.sha256."""
    url, expected = str(model["artifact"]), str(model["sha256"]).lower()
    if (url, expected) not in _DONE:
        _DONE[url, expected] = _fetch(url, expected)
    return _DONE[url, expected]


def _fetch(url: str, expected: str) -> Fetched:
    directory = cache.cache_dir()
    if directory is None:
        return Fetched(None, "there is no cache folder to fetch it into")
    folder = directory / "artifacts"
    kept = folder / expected
    with contextlib.suppress(OSError):
        if _sha256(kept) == expected:
            return Fetched(kept)
    import http.client

    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _download(url, expected, folder, kept)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Fetched(None, f"it cannot be fetched ({getattr(exc, 'reason', None) or exc})")


def _download(url: str, expected: str, folder: Path, kept: Path) -> Fetched:
    digest, size = hashlib.sha256(), 0
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fetch-")
    try:
        with os.fdopen(handle, "wb") as out, _open(url) as response:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > MAX_BYTES:
                    return Fetched(None, f"it is larger than {MAX_BYTES // 1024**3} GiB")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            return Fetched(None, f"the bytes fetched have sha256 {digest.hexdigest()}")
        os.replace(temporary, kept)
        return Fetched(kept)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _open(url: str) -> Any:
    import urllib.request

    class HttpsOnly(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, request: Any, fp: Any, code: int, msg: str, headers: Any,
                             newurl: str) -> Any:  # fmt: skip
            if not newurl.startswith(SCHEME):
                raise urllib.error.URLError(f"it redirects to {newurl}, which is not https")
            return super().redirect_request(request, fp, code, msg, headers, newurl)

    import urllib.error

    opener = urllib.request.build_opener(HttpsOnly)
    request = urllib.request.Request(url, headers={"User-Agent": "modelgate"})
    return opener.open(request, timeout=TIMEOUT_SECONDS)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

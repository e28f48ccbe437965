"""Object stores anyone may read, as templates/values.yaml declares them.

`publicArtifactStores` lists URI prefixes (a bucket, or a folder in one) whose objects are
read with no credentials: KServe's storage initializer falls back to an anonymous client for
gs:// and sends unsigned requests to s3:// when told to (render/view.py). A pod downloading
from anywhere else needs the credentials `artifactCredentials` names (MG-SEC-152). The list is
an allow-list the platform's owners review like the rest of the values; each entry ends at a
folder boundary, so that `gs://examples/` does not also admit `gs://examples-private/`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..diagnostics import Diagnostic
from . import load

KEY = "publicArtifactStores"
INVALID = "MG215"
SCHEMES = ("s3://", "gs://")
_PREFIX = re.compile(r"^(s3|gs)://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/([^\s/]+/)*$")


def public_prefixes(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The declared prefixes (lenient: an entry of the wrong shape is left out, check_values
    reports it)."""
    listed = values.get(KEY)
    if not isinstance(listed, list):
        return ()
    return tuple(item for item in listed if isinstance(item, str) and _PREFIX.match(item))


def is_public(uri: str, values: Mapping[str, Any]) -> bool:
    return any(uri.startswith(prefix) for prefix in public_prefixes(values))


def check_values(document: load.Document) -> list[Diagnostic]:
    listed = document.data.get(KEY)
    if listed is None:
        return []
    if not isinstance(listed, list):
        return [_bad(document, [KEY], f"{KEY} must be a list of store URI prefixes")]
    return [
        _bad(
            document,
            [KEY, index],
            f"{KEY}[{index}] is not an s3:// or gs:// bucket or folder ending in '/'",
        )
        for index, item in enumerate(listed)
        if not (isinstance(item, str) and _PREFIX.match(item))
    ]


def _bad(document: load.Document, where: list, message: str) -> Diagnostic:
    return document.finding(
        where,
        INVALID,
        message,
        "write each store as s3://BUCKET/ or gs://BUCKET/FOLDER/ (docs/spec.md, "
        "'Pinned artifacts')",
    )

"""The cross-file facts of every spec of the repository, at the cost of the specs that changed.

Checks across files (unique names, endpoint hosts and ports, the environments Argo CD gets an
ApplicationSet for) need a few fields of every spec (scan.FIELDS), not every spec validated.
Each spec's facts come from, in order:

1. the facts index: a cache entry (validator/cache.py: the user's own directory, sealed)
   mapping the git blob id of a spec's content to its facts. Git's index knows the blob id of
   every file whose work-tree content it has staged, so a clean spec is never read at all;
2. the scan (scan.py), for the specs the index does not know: a few lines of each file;
3. the strict loader, for a file the scan cannot read exactly.

The index is keyed by content, so an entry cannot be stale: a changed file has another id.
A damaged entry fails its seal and is rebuilt. It only saves reading files: what it holds is
what steps 2 and 3 give for the same bytes, and every spec a cross-file finding names is read
again from disk (confirm()) before the finding is reported.
"""

from __future__ import annotations

import errno
import marshal
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import cache, parallel, paths
from ..engines import ENGINES
from ..git import blob_id, clean_blobs
from . import load, scan
from .load import Document
from .scan import FIELDS, Facts

CACHE_KIND = "facts"
FORMAT = "2"  # part of the key: change it when Facts or what the scan reads changes
PARALLEL_FROM = 512  # files to read; below this a second process costs more than it saves
_PLAIN = (str, int, float, bool, type(None))


def read(raw: bytes) -> Facts | None:
    """The facts of a spec file's bytes; None when the file does not load (too large, not
    UTF-8, not YAML the loader accepts): such a spec takes no part in cross-file checks."""
    if len(raw) > load.MAX_BYTES:
        return None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    found = scan.scan(text)
    if found is None:
        document, _ = load.load_text(text, "")
        if document is None:
            return None
        found = scan.facts_of(document.data)
    return tuple(_plain(value) for value in found)


def _plain(value: Any) -> Any:
    """Scalars and tuples of scalars as they are; any other value (a mapping where a name
    belongs) as False, which no check accepts: the index holds plain data only."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple) and all(isinstance(item, _PLAIN) for item in value):
        return value
    return False


def of_document(document: Document) -> Facts:
    return tuple(_plain(value) for value in scan.facts_of(document.data))


# --- every spec's facts ----------------------------------------------------------------------


def collect(
    paths: Sequence[Path | str], root: Path, shown: Sequence[str]
) -> dict[str, Facts | None]:
    """The facts of each file in `paths` (displayed as `shown`), by its shown path."""
    index = Index(root)
    blobs = clean_blobs(root, "models") or {}
    result: dict[str, Facts | None] = {}
    misses: list[tuple[Path | str, str]] = []
    for path, name in zip(paths, shown, strict=True):
        blob = blobs.get(name)
        if blob is not None and blob in index.entries:
            result[name] = index.use(blob)
        else:
            misses.append((path, name))
    reader = _Reader(root, frozenset(blobs.items()) if misses else frozenset())
    for (_, name), (blob, facts) in zip(
        misses, parallel.fork_map(reader, misses, PARALLEL_FROM), strict=True
    ):
        result[name] = facts
        if blob is not None:
            index.add(blob, facts)
    index.save()
    return result


class _Reader:
    """Reads one missed file: (the blob id it is indexed under, its facts)."""

    def __init__(self, root: Path, blobs: frozenset[tuple[str, str]]) -> None:
        self.root = root
        self.blobs = dict(blobs)

    def __call__(self, item: tuple[Path | str, str]) -> tuple[str | None, Facts | None]:
        path, name = item
        raw = _read_spec(path, self.root)
        if raw is None:
            return None, None
        # a clean file is indexed under the id git looks it up by (with a checkout filter
        # the two differ), any other file under its content's own
        return self.blobs.get(name) or blob_id(raw), read(raw)


def _read_spec(path: Path | str, root: Path) -> bytes | None:
    """A spec's bytes, as validation would read them: not through a link out of the
    repository, never from a FIFO or device, at most one byte past the size limit."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not hold the run up
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EMLINK):
            return None
        try:  # a link: followed only inside the repository
            if not Path(path).resolve().is_relative_to(root.resolve()):
                return None
            descriptor = os.open(path, flags)
        except (OSError, RuntimeError):
            return None
    with os.fdopen(descriptor, "rb") as stream:
        try:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                return None
            return paths.read_at_most(stream, load.MAX_BYTES)
        except OSError:
            return None


class Index:
    """Facts by blob id, for one repository root, in one sealed cache entry."""

    def __init__(self, root: Path) -> None:
        self.key = f"{FORMAT}|{root}"
        self.entries: dict[str, Facts | None] = _valid(cache.load(CACHE_KIND, self.key))
        self.used: set[str] = set()
        self.added = False

    def use(self, blob: str) -> Facts | None:
        self.used.add(blob)
        return self.entries[blob]

    def add(self, blob: str, facts: Facts | None) -> None:
        self.entries[blob] = facts
        self.used.add(blob)
        self.added = True

    def save(self) -> None:
        """Store the entries of this run's files (the others' blobs are gone or elsewhere)
        when any was added or dropped."""
        if not self.added and len(self.used) == len(self.entries):
            return
        shared: dict[Any, Any] = {}  # one object per distinct value: marshal writes the
        kept = {  # others as references, and reads them back in a fraction of the time
            blob: None if facts is None else shared.setdefault(facts, _shared(facts, shared))
            for blob, facts in ((blob, self.entries[blob]) for blob in self.used)
        }
        cache.store(CACHE_KIND, self.key, marshal.dumps(kept))


def _shared(facts: Facts, shared: dict[Any, Any]) -> Facts:
    return tuple(shared.setdefault((type(value), value), value) for value in facts)


def _valid(payload: bytes | None) -> dict[str, Facts | None]:
    """The entries of a cached index, or none when anything in it is not what an index
    holds: plain data only, shaped as Facts."""
    if payload is None:
        return {}
    try:
        entries = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return {}
    # the shape only: each value's type is checked where it is used (named, checkable)
    if type(entries) is not dict or not all(
        type(blob) is str and (facts is None or (type(facts) is tuple and len(facts) == _SIZE))
        for blob, facts in entries.items()
    ):
        return {}
    return entries


_SIZE = len(FIELDS)


# --- the other specs, as documents the cross-file checks read ----------------------------


def peer(path: str, facts: Facts) -> Document:
    """A stand-in document for a spec that is not checked: its facts at their places (as
    scan.FIELDS lists them), nothing else. Cross-file checks read only these fields; no
    finding is made at a peer."""
    name, environments, engine, artifact, image, host, port, stand_in, script = facts
    model = {key: value for key, value in (("artifact", artifact), ("image", image)) if value}
    endpoint = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    spec: dict[str, Any] = {"model": model, "endpoint": endpoint}
    if stand_in or script:
        made = {key: value for key, value in (("artifact", stand_in), ("script", script)) if value}
        spec["smoke"] = {"standIn": made}
    if environments is not None:
        spec["environments"] = list(environments) if isinstance(environments, tuple) else []
    if engine is not None:
        spec["engine"] = {"name": engine}
    return Document(path, {"metadata": {"name": name}, "spec": spec}, "")


# the facts that name files a change may touch: the artifact, the stand-in and its script
FILES = tuple(FIELDS.index(path) for path in (
    ("spec", "model", "artifact"),
    ("spec", "smoke", "standIn", "artifact"),
    ("spec", "smoke", "standIn", "script"),
))  # fmt: skip


def of_environments(environments: Iterable[str]) -> Facts:
    """Facts that hold environments alone (all an ApplicationSet is made from)."""
    values: list[Any] = [None] * _SIZE
    values[FIELDS.index(("spec", "environments"))] = tuple(environments)
    return tuple(values)


def named(facts: Facts | None) -> bool:
    """The spec takes part in the unique-name check: it loads and has a name."""
    return facts is not None and isinstance(facts[0], str)


def checkable(facts: Facts | None) -> bool:
    """The spec takes part in the policy's cross-file rules: its facts have the types the
    schema gives them (a valid spec's always do)."""
    if not named(facts):
        return False
    assert facts is not None
    _, environments, engine, artifact, image, host, port, stand_in, script = facts
    return (
        isinstance(environments, tuple)
        and bool(environments)
        and all(isinstance(name, str) for name in environments)
        and isinstance(engine, str)
        and engine in ENGINES
        and all(
            value is None or isinstance(value, str)
            for value in (artifact, image, host, stand_in, script)
        )
        and (port is None or (isinstance(port, int) and not isinstance(port, bool)))
    )


IDENTITIES = (0, 5, 6)  # the facts no two specs may share: name, endpoint host and port


def sharing(found: Mapping[str, Facts | None], checked: Iterable[Facts]) -> set[str]:
    """The shown paths in `found` whose spec shares an identity with one of `checked`."""
    checked = list(checked)
    taken = [
        (index, values)
        for index in IDENTITIES
        if (values := {_key(value[index]) for value in checked} - {None})
    ]
    return {
        shown
        for shown, value in found.items()
        if value is not None and any(_key(value[index]) in values for index, values in taken)
    }


def _key(item: Any) -> Any:
    """A fact as a set member: a value of any other type (from a damaged entry) as False."""
    return item if isinstance(item, _PLAIN) else False


def every_name(known: Mapping[str, Facts | None]) -> set[str]:
    return {facts[0] for facts in known.values() if named(facts)}  # type: ignore[index]

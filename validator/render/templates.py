"""The repository's Jinja templates: one sandboxed environment, compiled once, cached on disk.

Templates run in Jinja's sandbox with StrictUndefined; values reach them through `tojson`
(encode.scalar, no HTML escaping: these files are not HTML) or `toyaml` (encode.block).

A cold `modelgate render` would spend a tenth of its time compiling templates and checking
which of them may be read back by the fast parser (see plain), so both are cached under the
modelgate cache directory, like .pyc files: compiled code keyed by each template's source,
the checks by the fingerprint of templates/ (every file's path, size and modification time).
An edit changes the fingerprint, so a long-lived process never renders stale templates.
Both go through validator/cache.py, which hands back only sealed entries from a directory
no one else can write: Jinja's own file cache would unpickle whatever a file holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import cache, paths
from . import encode, readback

TEMPLATE_DIR = "templates"
# Part of the compiled-code cache key: the environment's options change the generated code.
ENVIRONMENT_OPTIONS = "sandboxed,strict-undefined,trim-blocks,lstrip-blocks,keep-newline"
PLAIN_KIND = "plain"  # cache entries: which templates the fast parser may read back
BYTECODE_KIND = "jinja"  # cache entries: compiled templates


def environment(root: Path) -> Any:
    """The sandboxed Jinja environment for the repository's templates/ as they are now."""
    template_dir = root / TEMPLATE_DIR
    return _environment(str(template_dir), _fingerprint(template_dir))


class Templates:
    """templates/ for one run: each template compiled once, and whether its output may be read
    back by the fast parser."""

    def __init__(self, root: Path) -> None:
        template_dir = root / TEMPLATE_DIR
        self.fingerprint = _fingerprint(template_dir)
        self.environment = _environment(str(template_dir), self.fingerprint)
        self._compiled: dict[str, Any] = {}
        self._plain_key = _plain_key(self.fingerprint)
        self._plain_safe: dict[str, bool] = _verdicts(cache.load(PLAIN_KIND, self._plain_key))

    def get(self, name: str) -> Any:
        found = self._compiled.get(name)
        if found is None:
            found = self._compiled[name] = self.environment.get_template(name)
        return found

    def plain_safe(self, name: str) -> bool:
        known = self._plain_safe.get(name)
        if known is None:
            known = self._plain_safe[name] = readback.template_is_plain_safe(self.environment, name)
        return known

    def written_at(self, name: str, keys: list[str]) -> str | None:
        """templates/FILE:LINE where the last of `keys` (mapping keys from the document's
        root) is written, in `name` or the templates it extends or includes; None when it is
        nowhere. Of several places, the one under the most of its nearest parent keys wins."""
        best: tuple[tuple[int, ...], str] | None = None
        for current, source in self._sources(name):
            places = _key_places(source, keys[-1])
            for place in places:
                score = _parents_above(source, keys[:-1], place)
                if best is None or score > best[0]:
                    line = source.count("\n", 0, place) + 1
                    best = (score, f"{TEMPLATE_DIR}/{current}:{line}")
        return best[1] if best else None

    def _sources(self, name: str) -> list[tuple[str, str]]:
        """`name` and every template it extends or includes, breadth first, with sources."""
        from jinja2 import TemplateError, meta

        found, seen, pending = [], set(), [name]
        overridden: set[str] = set()  # blocks a template below replaces in what it extends
        while pending:
            current = pending.pop(0)
            if current in seen:
                continue
            seen.add(current)
            try:
                source = self.environment.loader.get_source(self.environment, current)[0]
                referenced = meta.find_referenced_templates(self.environment.parse(source))
            except TemplateError:
                continue
            blocks = {block[1] for block in _BLOCK.finditer(source)}
            found.append((current, _without_blocks(source, overridden)))
            overridden |= blocks
            pending.extend(other for other in referenced if other)
        return found

    def preload(self, names: list[str]) -> None:
        """Compile and check `names` now (before forking workers, which inherit them)."""
        from jinja2 import TemplateError

        known = dict(self._plain_safe)
        for name in names:
            try:
                self.get(name)
                self.plain_safe(name)
            except TemplateError:
                pass  # reported, with the spec that needs it, when it is rendered
        if self._plain_safe != known:
            verdicts = json.dumps(self._plain_safe, sort_keys=True).encode()
            cache.store(PLAIN_KIND, self._plain_key, verdicts)


_BLOCK = re.compile(r"{%-?\s*block\s+(\w+)\s*-?%}.*?{%-?\s*endblock(?:\s+\w+)?\s*-?%}", re.S)


def _without_blocks(source: str, names: set[str]) -> str:
    """`source` with the blocks `names` blanked out (line breaks kept: lines still count)."""
    return _BLOCK.sub(
        lambda found: re.sub(r"[^\n]", " ", found[0]) if found[1] in names else found[0], source
    )


def _key_places(source: str, key: str) -> list[int]:
    """Offsets in a template's text where `key` is written as a mapping key."""
    pattern = rf"(?:^|(?<=[\s{{,]))[\"']?{re.escape(key)}[\"']?\s*:(?=[\s{{]|$)"
    return [found.start() for found in re.finditer(pattern, source, re.M)]


def _parents_above(source: str, parents: list[str], place: int) -> tuple[int, ...]:
    """For each parent key, nearest first: whether it is written above `place` (and above
    the nearer parents found); then how close the nearest one found is (closer is better)."""
    flags, nearest, start = [], None, place
    for parent in reversed(parents):
        above = [offset for offset in _key_places(source, parent) if offset < place]
        flags.append(int(bool(above)))
        if above:
            place = above[-1]
            nearest = place if nearest is None else nearest
    distance = source.count("\n", nearest, start) if nearest is not None else len(source)
    return (*flags, -distance)


def _fingerprint(template_dir: Path) -> tuple:
    """Every template file's path, size and modification time."""
    found = []
    for directory, _, names in os.walk(template_dir):
        for name in names:
            stat = os.stat(os.path.join(directory, name))
            found.append((directory, name, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def _plain_key(fingerprint: tuple) -> str:
    from jinja2 import __version__ as jinja_version

    # the check's own code is part of the key: a changed check never reads old verdicts
    check_code = hashlib.sha256(Path(readback.__file__).read_bytes()).hexdigest()
    material = json.dumps([check_code, jinja_version, readback.versions(), fingerprint])
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _verdicts(payload: bytes | None) -> dict[str, bool]:
    try:
        loaded = json.loads(payload or b"{}")
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {key: value for key, value in loaded.items() if isinstance(value, bool)}


@lru_cache(maxsize=4)
def _environment(template_dir: str, fingerprint: tuple) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
    from jinja2.sandbox import SandboxedEnvironment

    class RepositoryLoader(FileSystemLoader):
        """Templates are files of the repository: one that is a link out of it is refused
        (the sandbox does not stop `{% include %}` from reading what a link points at)."""

        def get_source(self, environment: Any, template: str) -> Any:
            source, filename, uptodate = super().get_source(environment, template)
            if paths.leads_out(filename, template_dir):
                refused = TemplateNotFound(template, f"templates/{template} leads out of the "
                                           "templates through a symbolic link")  # fmt: skip
                refused.link_out = True  # type: ignore[attr-defined]
                raise refused
            return source, filename, uptodate

    environment = SandboxedEnvironment(
        loader=RepositoryLoader(template_dir),
        undefined=StrictUndefined,
        autoescape=False,
        auto_reload=False,  # the fingerprint in the cache key notices edits, once per run
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )
    environment.policies["json.dumps_function"] = encode.scalar
    environment.policies["json.dumps_kwargs"] = {}
    environment.filters["tojson"] = encode.scalar
    environment.filters["toyaml"] = encode.block
    environment.filters["combine"] = lambda first, second: dict(sorted({**first, **second}.items()))
    environment.filters["pbtxt"] = _pbtxt_string
    return environment


def _bytecode_cache() -> Any:
    from jinja2 import BytecodeCache
    from jinja2 import __version__ as jinja_version

    options = hashlib.sha256(ENVIRONMENT_OPTIONS.encode()).hexdigest()[:12]

    class VerifiedBytecodeCache(BytecodeCache):
        """Compiled templates kept in the modelgate cache (Jinja checks the source checksum
        inside an entry; the cache checks the entry's seal and directory before that)."""

        def load_bytecode(self, bucket: Any) -> None:
            payload = cache.load(BYTECODE_KIND, self._key(bucket))
            if payload is not None:
                bucket.bytecode_from_string(payload)

        def dump_bytecode(self, bucket: Any) -> None:
            cache.store(BYTECODE_KIND, self._key(bucket), bucket.bytecode_to_string())

        def _key(self, bucket: Any) -> str:
            return f"{jinja_version}|{options}|{bucket.key}"

    return VerifiedBytecodeCache()


def _pbtxt_string(value: Any) -> str:
    """A protobuf text-format string literal: C escapes, bytes outside printable ASCII octal."""
    out = []
    for byte in str(value).encode("utf-8"):
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
